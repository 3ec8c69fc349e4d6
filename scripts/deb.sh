#!/bin/sh
# `make deb`: builds libapache2-mod-fastcgi-rs_<version>_<arch>.deb with
# dpkg-buildpackage (debhelper + dh_apache2, debian/), writes it and its
# .changes/.buildinfo to build/deb/ instead of the parent directory, and runs
# lintian on it: an error or a warning fails the build (the tags that do not
# apply are overridden in debian/*.lintian-overrides, each with its reason).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

# Rust first: without it nothing is built, so nothing is installed either.
if ! command -v cargo >/dev/null 2>&1; then
    echo "deb: cargo is not on PATH: install Rust (https://rustup.rs, then \". \$HOME/.cargo/env\") and run make deb again"
    exit 1
fi
# Only what building the package needs (debian/control's Build-Depends, and
# the tools that run dpkg-buildpackage and lintian); the test suite's
# packages stay with make deps / make test.
"$top/scripts/apt-install.sh" debhelper dpkg-dev fakeroot lintian apache2-dev libclang-dev clang pkg-config
out=build/deb
version=$(dpkg-parsechangelog -S Version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
base="mod-fastcgi-rs_${version}_${arch}"

rm -rf "$out"
mkdir -p "$out"
dpkg-buildpackage -b -us -uc \
    --buildinfo-option="-u$out" --buildinfo-file="$out/$base.buildinfo" \
    --changes-option="-u$out" --changes-file="$out/$base.changes"
# dh_builddeb wrote the packages into $out (debian/rules); the staging tree
# under debian/ goes (debian/rules clean keeps target/ and build/).
debian/rules clean >/dev/null
deb="$out/libapache2-mod-fastcgi-rs_${version}_${arch}.deb"
test -f "$deb" || { echo "deb: $deb was not built"; exit 1; }
echo "deb: built $deb"

if command -v lintian >/dev/null; then
    lintian --fail-on error,warning --info "$deb"
    echo "deb: lintian reports no errors and no warnings (overrides: debian/*.lintian-overrides)"
else
    echo "deb: lintian not installed (make deps installs it)"; exit 1
fi
