#!/bin/sh
# Installs every Debian package the build, the tests and the benchmark need,
# plus flup for the system Python. Idempotent: does nothing when all is there.
# Never starts system services (policy-rc.d), so nothing listens on port 80.
set -eu

PKGS="apache2 apache2-dev apache2-suexec-custom libclang-dev clang libfcgi-dev php-fpm python3-pip curl wrk pkg-config fcgiwrap perl"
# `make deb` and its test: Debian's packaging tools (dh_apache2 comes with apache2-dev).
PKGS="$PKGS dpkg-dev debhelper fakeroot lintian"
# tests/netns.rs: ip netns, veth, tc (iproute2); nsenter, unshare (util-linux).
PKGS="$PKGS iproute2 util-linux"
# tests/metrics.rs: the status page in a real browser.
PKGS="$PKGS chromium"
# make bench-cost: callgrind and strace (mod_fcgid below).
PKGS="$PKGS valgrind strace"

"$(dirname "$0")/apt-install.sh" $PKGS
# mod_fcgid, to compare with, once Apache is there: its package enables the
# module, and apt-install.sh disables it again (its AddHandler would take
# .fcgi from the system Apache); make bench-cost loads it in its own server.
"$(dirname "$0")/apt-install.sh" libapache2-mod-fcgid

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# flup for /usr/bin/python3 (the interpreter www-data can reach; Debian has no python3-flup).
if ! /usr/bin/python3 -c 'import flup.server.fcgi' 2>/dev/null; then
    echo "deps: installing flup for /usr/bin/python3"
    $SUDO /usr/bin/python3 -m pip install -q --break-system-packages flup
fi
echo "deps: ok"
