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
# make bench-cost: callgrind, strace, and mod_fcgid to compare with.
PKGS="$PKGS valgrind strace libapache2-mod-fcgid"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if [ -n "$missing" ]; then
    echo "deps: installing$missing"
    policy=/usr/sbin/policy-rc.d
    created=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod 755 "$policy"
        created=1
    fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
    [ "$created" -eq 1 ] && $SUDO rm -f "$policy"
fi

# flup for /usr/bin/python3 (the interpreter www-data can reach; Debian has no python3-flup).
if ! /usr/bin/python3 -c 'import flup.server.fcgi' 2>/dev/null; then
    echo "deps: installing flup for /usr/bin/python3"
    $SUDO /usr/bin/python3 -m pip install -q --break-system-packages flup
fi
echo "deps: ok"
