#!/bin/sh
# Installs the Debian packages named on the command line that are missing,
# for `make deps` and `make deb`, the way a shared machine wants it:
# - no system service starts (a temporary policy-rc.d answers 101), so
#   nothing listens on port 80 behind the tests' back;
# - the system Apache keeps the modules it had: a package that enables its
#   own module when installed (libapache2-mod-fcgid does, and its
#   `AddHandler fcgid-script .fcgi` would take .fcgi from us) is disabled
#   again, and the line says so. On a machine without Apache before, its
#   fresh defaults stay.
set -eu
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -n "$missing" ] || exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
enabled() { a2query -m 2>/dev/null | awk '{print $1}' | sort; }
had_apache=0
before=""
if command -v a2query >/dev/null 2>&1; then
    had_apache=1
    before=$(enabled)
fi

echo "apt: installing$missing"
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

if [ "$had_apache" -eq 1 ]; then
    new=$(enabled | while read -r m; do printf '%s\n' "$before" | grep -qx "$m" || echo "$m"; done)
    for m in $new; do
        $SUDO a2dismod -q -f "$m" >/dev/null
        echo "apt: disabled the Apache module $m that installing its package enabled (the system Apache keeps the modules it had)"
    done
fi
