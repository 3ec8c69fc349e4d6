#!/bin/bash
# What the scoreboard (issue 13) costs a 13-byte GET: instructions per request
# of `apache2 -X` under callgrind, with the scoreboard on (the default) and
# with `FastCgiScoreboard Off`, same module. Each case runs twice, with 300 and
# 300+N requests on one keep-alive connection (curl), so start-up and shutdown
# cancel out: Ir/request = (Ir(300+N) - Ir(300)) / N. Run as root (Apache runs
# as www-data); needs valgrind, curl, libfcgi-dev.
#   scripts/metrics-cost.sh [N] [module]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-2000}
module=${2:-$top/target/release/mod_fastcgi_rs.so}
work=$(mktemp -d /tmp/metrics-cost.XXXXXX)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/app" "$top/scripts/bench/app.c" -lfcgi

# run REQUESTS EXTRA_CONF -> total Ir of Apache's process
run() {
    local n=$1 extra=$2 dir port vg app i urls
    dir=$(mktemp -d "$work/run.XXXX")
    chmod 755 "$dir"
    mkdir -p "$dir/htdocs" "$dir/logs" "$dir/sock"
    chmod 755 "$dir/htdocs" "$dir/sock"
    chown www-data "$dir" "$dir/logs"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat > "$dir/httpd.conf" <<CONF
ServerRoot "$dir"
ServerName 127.0.0.1
Listen 127.0.0.1:$port
PidFile "$dir/logs/httpd.pid"
DefaultRuntimeDir "$dir/logs"
ErrorLog "$dir/logs/error.log"
LogLevel warn
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so
LoadModule fastcgi_module $module
MaxKeepAliveRequests 0
DocumentRoot "$dir/htdocs"
<Directory "$dir/htdocs">
    Require all granted
</Directory>
Alias /ours "$dir/htdocs/ours"
FastCgiExternalServer "$dir/htdocs/ours" -socket "$dir/sock/ours.sock"
$extra
CONF
    "$work/app" "$dir/sock/ours.sock" 2 &
    app=$!
    setsid runuser -u www-data -- valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" \
        apache2 -X -f "$dir/httpd.conf" > "$dir/valgrind.log" 2>&1 &
    sleep 1
    vg=$(pgrep -o -f "valgrind.bin --tool=callgrind --callgrind-out-file=$dir")
    for i in $(seq 200); do
        curl -fsS "http://127.0.0.1:$port/ours/small" > /dev/null 2>&1 && break
        sleep 0.3
    done
    urls=""
    for i in $(seq $((n - 1))); do urls="$urls http://127.0.0.1:$port/ours/small"; done
    curl -fsS $urls > /dev/null
    kill -TERM "$vg"
    for i in $(seq 120); do kill -0 "$vg" 2> /dev/null || break; sleep 0.5; done
    kill -9 "$vg" 2> /dev/null || true
    pkill -P "$app" 2> /dev/null || true
    kill "$app" 2> /dev/null || true
    awk '/^totals:/ { print $2 }' "$dir/cg.$vg"
}

per_request() {
    local a b
    a=$(run 300 "$1")
    b=$(run $((300 + N)) "$1")
    echo $(((b - a) / N))
}

on=$(per_request "")
off=$(per_request "FastCgiScoreboard Off")
echo "13-byte GET, instructions per request under callgrind ($N requests):"
echo "  FastCgiScoreboard Off: $off"
echo "  scoreboard on:         $on"
awk -v on="$on" -v off="$off" 'BEGIN { printf "  cost: %d instructions, %.2f %%\n", on - off, (on - off) * 100 / off }'
