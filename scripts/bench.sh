#!/bin/sh
# `make bench`: wrk on loopback against one Apache that serves the same libfcgi
# backend two ways, through mod_fastcgi_rs and through mod_proxy_fcgi with
# enablereuse=on (throughput ratio) and without it (p99 latency compared), and
# prints req/s, p99 latency and the ratios. Then the same for PHP through
# php-fpm, both sides configured as Debian configures them: a pool as
# Debian's www.conf sets it (pm dynamic, 5 children; Debian's php.ini), ours
# with the PHP-FPM recipe (AddType, Action, FastCgiExternalServer -socket),
# mod_proxy_fcgi as Debian's php-fpm package maps it (SetHandler proxy:unix
# in <FilesMatch>), with a worker enablereuse=on max=2 and without one.
# BENCH_PHP=0 leaves PHP out. With ORIGINAL_FASTCGI_MODULE naming a built
# original mod_fastcgi (docs/development.md), a second Apache with the same
# MPM settings serves the same backend through it (FastCgiExternalServer on
# a Unix socket, as issue 25 measured it), and a table compares ours and
# the original case by case. Each case's gateways are measured in turn,
# BENCH_ROUNDS times over (3), BENCH_SECONDS each (5), and the medians
# shown, with the CPU time per request of Apache and the application
# (utime + stime from /proc); the wall clock of this shared machine drifts
# 10-25 % from one run to the next.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
module="${FASTCGI_RS_MODULE:-$top/target/release/mod_fastcgi_rs.so}"
dir=$(mktemp -d /tmp/fcgi-bench.XXXXXX)
chmod 755 "$dir"
port="${PORT:-18080}"
secs="${BENCH_SECONDS:-5}"
rounds="${BENCH_ROUNDS:-3}"
conns="${BENCH_CONNECTIONS:-16}"
# One backend per gateway, same program, same process count: mod_proxy_fcgi
# with enablereuse pins a backend process per pooled connection, so a shared
# backend would let one side starve the other.
nproc="${BENCH_BACKEND_PROCS:-$conns}"
mods=/usr/lib/apache2/modules

cc -O2 -o "$dir/app" "$top/scripts/bench/app.c" -lfcgi
mkdir -p "$dir/htdocs" "$dir/logs" "$dir/sock" "$dir/cgi-bin"
chmod 755 "$dir/htdocs" "$dir/sock" "$dir/cgi-bin"
fpm=$(ls /usr/sbin/php-fpm* 2>/dev/null | sort | tail -n 1)
php=""
[ "${BENCH_PHP:-1}" != 0 ] && [ -n "$fpm" ] && php=1
# One php-fpm pool per gateway, as Debian's www.conf sets it.
fpm_start() {
    cat > "$dir/fpm-$1.conf" <<FPM
[global]
pid = $dir/logs/fpm-$1.pid
error_log = $dir/logs/fpm-$1.log
daemonize = no
[www]
$([ "$(id -u)" -eq 0 ] && printf 'user = www-data\ngroup = www-data')
listen = $dir/sock/fpm-$1.sock
listen.mode = 0666
pm = dynamic
pm.max_children = 5
pm.start_servers = 2
pm.min_spare_servers = 1
pm.max_spare_servers = 3
FPM
    "$fpm" -F -y "$dir/fpm-$1.conf" >/dev/null 2>&1 &
}
if [ -n "$php" ]; then
    for side in ours theirs plain; do
        mkdir -p "$dir/htdocs/php-$side"
        printf '<?php echo "Hello, world\\n";\n' > "$dir/htdocs/php-$side/small.php"
        printf "<?php echo str_repeat('x', 1048576);\n" > "$dir/htdocs/php-$side/big.php"
        printf "<?php header('Content-Type: application/octet-stream');\nreadfile('php://input');\n" > "$dir/htdocs/php-$side/echo.php"
    done
fi
user=""
[ "$(id -u)" -eq 0 ] && { user="User www-data
Group www-data"; chown www-data "$dir/logs"; }

# The start of both Apaches' configurations (ours and the peers', the
# original's), given its ServerRoot and port: one child of 64 threads,
# keep-alive without a limit, the same document root; the root directory
# as Debian's apache2.conf sets it (without `AllowOverride None` httpd
# looks for an .htaccess in every directory of a mapped path, four failed
# opens per request here, which mod_proxy_fcgi's ProxyPass never walks).
server_conf() {
    cat <<CONF
ServerRoot "$1"
ServerName 127.0.0.1
Listen 127.0.0.1:$2
PidFile "$1/logs/httpd.pid"
DefaultRuntimeDir "$1/logs"
ErrorLog "$1/logs/error.log"
LogLevel warn
$user
LoadModule mpm_event_module $mods/mod_mpm_event.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule alias_module $mods/mod_alias.so
StartServers 1
ServerLimit 1
ThreadsPerChild 64
MaxRequestWorkers 64
KeepAliveTimeout 30
MaxKeepAliveRequests 0
DocumentRoot "$dir/htdocs"
<Directory />
    Options FollowSymLinks
    AllowOverride None
    Require all denied
</Directory>
<Directory "$dir/htdocs">
    Require all granted
</Directory>
CONF
}
cat > "$dir/httpd.conf" <<CONF
$(server_conf "$dir" "$port")
LoadModule proxy_module $mods/mod_proxy.so
LoadModule proxy_fcgi_module $mods/mod_proxy_fcgi.so
LoadModule mime_module $mods/mod_mime.so
TypesConfig /etc/mime.types
LoadModule actions_module $mods/mod_actions.so
LoadModule fastcgi_module $module
Alias /ours "$dir/htdocs/ours"
FastCgiExternalServer "$dir/htdocs/ours" -socket "$dir/sock/ours.sock" ${OURS_OPTS:-}
# Distinct worker names: mod_proxy keys workers by the fcgi:// URL, not the
# socket, so two ProxyPass to fcgi://localhost/ would share one worker.
ProxyPass /theirs/ "unix:$dir/sock/theirs.sock|fcgi://theirs/" enablereuse=on
ProxyPass /plain/ "unix:$dir/sock/plain.sock|fcgi://plain/"
CONF
if [ -n "$php" ]; then
    cat >> "$dir/httpd.conf" <<CONF
# PHP: ours as the PHP-FPM recipe maps it, mod_proxy_fcgi as Debian's package does.
<Directory "$dir/htdocs/php-ours">
    AddType application/x-httpd-fastphp .php
    Action application/x-httpd-fastphp /php-fcgi virtual
</Directory>
Alias /php-fcgi "$dir/cgi-bin/php-fcgi"
FastCgiExternalServer "$dir/cgi-bin/php-fcgi" -socket "$dir/sock/fpm-ours.sock" ${OURS_OPTS:-}
<Directory "$dir/cgi-bin">
    Require all granted
</Directory>
<Proxy "unix:$dir/sock/fpm-theirs.sock|fcgi://fpmtheirs" enablereuse=on max=2>
</Proxy>
<Directory "$dir/htdocs/php-theirs">
    <FilesMatch ".+\.ph(?:ar|p|tml)\$">
        SetHandler "proxy:unix:$dir/sock/fpm-theirs.sock|fcgi://fpmtheirs"
    </FilesMatch>
</Directory>
<Directory "$dir/htdocs/php-plain">
    <FilesMatch ".+\.ph(?:ar|p|tml)\$">
        SetHandler "proxy:unix:$dir/sock/fpm-plain.sock|fcgi://fpmplain"
    </FilesMatch>
</Directory>
CONF
    fpm_start ours; fpm_ours=$!
    fpm_start theirs; fpm_theirs=$!
    fpm_start plain; fpm_plain=$!
fi

"$dir/app" "$dir/sock/ours.sock" "$nproc" &
app_ours=$!
"$dir/app" "$dir/sock/theirs.sock" "$nproc" &
app_theirs=$!
"$dir/app" "$dir/sock/plain.sock" "$nproc" &
app_plain=$!
setsid apache2 -f "$dir/httpd.conf" -DFOREGROUND &
httpd=$!
original="${ORIGINAL_FASTCGI_MODULE:-}"
if [ -n "$original" ]; then
    # Its own Apache: the original defines fastcgi_module and our directives.
    oport=$((port + 1))
    mkdir -p "$dir/original/logs"
    [ "$(id -u)" -eq 0 ] && chown www-data "$dir/original/logs"
    cat > "$dir/original/httpd.conf" <<CONF
$(server_conf "$dir/original" "$oport")
LoadModule fastcgi_module $original
FastCgiIpcDir "$dir/original/ipc"
Alias /ours "$dir/htdocs/ours"
FastCgiExternalServer "$dir/htdocs/ours" -socket "$dir/sock/original.sock"
CONF
    "$dir/app" "$dir/sock/original.sock" "$nproc" &
    app_original=$!
    setsid apache2 -f "$dir/original/httpd.conf" -DFOREGROUND &
    httpd_original=$!
fi
cleanup() {
    kill "$httpd" ${httpd_original:-} 2>/dev/null || true
    for app in $app_ours $app_theirs $app_plain ${app_original:-}; do
        pkill -P "$app" 2>/dev/null || true
        kill "$app" 2>/dev/null || true
    done
    for p in ${fpm_ours:-} ${fpm_theirs:-} ${fpm_plain:-}; do
        kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT INT TERM

for i in $(seq 50); do
    curl -fsS "http://127.0.0.1:$port/ours/small" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/ours/small" | grep -q Hello || { echo "bench: ours does not answer"; cat "$dir/logs/error.log"; exit 1; }
for p in theirs plain; do
    curl -fsS "http://127.0.0.1:$port/$p/small" | grep -q Hello || { echo "bench: mod_proxy_fcgi ($p) does not answer"; cat "$dir/logs/error.log"; exit 1; }
done

# cpu_ticks PID...: the CPU time (user + system, in clock ticks) the
# processes PID and their children have used so far: an Apache and its
# children, an application and the processes it forked.
cpu_ticks() {
    set +f
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v roots=" $* " '{
        rest = substr($0, index($0, ") ") + 2); split(rest, f, " ")
        if (index(roots, " " $1 " ") || index(roots, " " f[2] " ")) t += f[12] + f[13]
    } END { print t + 0 }'
}
hz=$(getconf CLK_TCK)

# wrk_run URL script [PID...] -> "req/s p99-in-ms cpu errors": one wrk run;
# cpu is the CPU time the processes PID... and their children used per
# request, in microseconds (0 without PIDs).
wrk_run() {
    local url=$1 script=$2 before after out rps p99 n errs
    shift 2
    before=$(cpu_ticks "$@")
    out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency ${script:+-s "$script"} "$url")
    after=$(cpu_ticks "$@")
    rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" { v = $2 + 0; if ($2 ~ /us$/) v /= 1000; else if ($2 ~ /[^m]s$/) v *= 1000; print v }')
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
    echo "${rps:-0} ${p99:-0} $(awk -v t=$((after - before)) -v n="${n:-0}" -v hz="$hz" \
        'BEGIN { printf "%.1f", (n > 0 && t > 0 ? t * 1e6 / hz / n : 0) }') $errs"
}

# median N...
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# compare [-s SCRIPT] PORTPATH:PID,... ...: each URL (127.0.0.1:PORTPATH)
# measured in turn, $rounds times over, so that the machine's drift
# touches each alike; sets m_rps_I, m_p99_I (ms) and m_cpu_I (CPU µs per
# request of the PIDs and their children), I = 1, 2, ...: the medians;
# and m_errs, what wrk reported beyond 2xx answers.
compare() {
    local script="" specs i r spec out
    if [ "$1" = -s ]; then script=$2; shift 2; fi
    set -f
    specs="$*"
    m_errs=""
    i=0
    for spec in $specs; do i=$((i + 1)); eval "all_rps_$i='' all_p99_$i='' all_cpu_$i=''"; done
    for r in $(seq "$rounds"); do
        i=0
        for spec in $specs; do
            i=$((i + 1))
            out=$(wrk_run "http://127.0.0.1:${spec%%:*}" "$script" $(echo "${spec#*:}" | tr , ' '))
            set -- $out
            eval "all_rps_$i=\"\$all_rps_$i $1\" all_p99_$i=\"\$all_p99_$i $2\" all_cpu_$i=\"\$all_cpu_$i $3\""
            shift 3
            [ $# -eq 0 ] || m_errs="$m_errs [${spec%%:*}: $*]"
        done
    done
    i=0
    for spec in $specs; do
        i=$((i + 1))
        eval "m_rps_$i=\$(median \$all_rps_$i) m_p99_$i=\$(median \$all_p99_$i) m_cpu_$i=\$(median \$all_cpu_$i)"
    done
    set +f
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

# The table of a backend's cases: ours against mod_proxy_fcgi with reuse
# (req/s ratio, CPU per request of Apache and the application) and
# without (p99 latency ratio, lower is better).
table() {
    printf '%-14s %10s %8s %8s %10s %8s %8s %10s %8s %6s %6s %6s\n' "$1" "ours r/s" "p99 ms" "CPU µs" \
        "reuse r/s" "p99 ms" "CPU µs" "plain r/s" "p99 ms" ratio CPU p99/pl
}
row() {
    local name=$1 ours=$2 reuse=$3 plain=$4 script=$5
    compare ${script:+-s "$script"} "$port$ours:$httpd,$6" "$port$reuse:$httpd,$7" "$port$plain:$httpd,$8"
    printf '%-14s %10s %8s %8s %10s %8s %8s %10s %8s %6s %6s %6s\n' "$name" "$m_rps_1" "$m_p99_1" "$m_cpu_1" \
        "$m_rps_2" "$m_p99_2" "$m_cpu_2" "$m_rps_3" "$m_p99_3" "$(ratio "$m_rps_1" "$m_rps_2")" \
        "$(ratio "$m_cpu_1" "$m_cpu_2")" "$(ratio "$m_p99_1" "$m_p99_3")"
    [ -z "$m_errs" ] || echo "   errors:$m_errs"
}
echo "median of $rounds rounds of ${secs} s, $conns connections; CPU: Apache and the application, per request"
table case
# Paths with PATH_INFO cost us a sub-request for PATH_TRANSLATED (as mod_cgi
# and the original compute it); mod_proxy_fcgi computes none, so the
# query-string case compares like with like.
for case in "GET 13 B:/ours/small:/small:" "GET 13 B query:/ours?small:/?small:" "GET 64 KiB:/ours/mid:/mid:" \
            "GET 1 MiB:/ours/big:/big:" "POST 1 MiB:/ours/echo:/echo:$top/scripts/bench/post.lua"; do
    name=${case%%:*}; rest=${case#*:}; ours=${rest%%:*}; rest=${rest#*:}; theirs=${rest%%:*}; script=${rest#*:}
    row "$name" "$ours" "/theirs$theirs" "/plain$theirs" "$script" "$app_ours" "$app_theirs" "$app_plain"
done

if [ -n "$original" ]; then
    for i in $(seq 50); do
        curl -fsS "http://127.0.0.1:$oport/ours/small" >/dev/null 2>&1 && break
        sleep 0.2
    done
    curl -fsS "http://127.0.0.1:$oport/ours/small" | grep -q Hello || { echo "bench: the original does not answer"; cat "$dir/original/logs/error.log"; exit 1; }
    echo
    printf '%-14s %10s %8s %8s %10s %8s %8s %6s %6s\n' "original case" "ours r/s" "p99 ms" "CPU µs" \
        "orig r/s" "p99 ms" "CPU µs" ratio CPU
    for case in "GET 13 B:/ours/small:" "GET 13 B query:/ours?small:" "GET 64 KiB:/ours/mid:" \
                "GET 1 MiB:/ours/big:" "POST 1 MiB:/ours/echo:$top/scripts/bench/post.lua"; do
        name=${case%%:*}; rest=${case#*:}; path=${rest%%:*}; script=${rest#*:}
        compare ${script:+-s "$script"} "$port$path:$httpd,$app_ours" "$oport$path:$httpd_original,$app_original"
        printf '%-14s %10s %8s %8s %10s %8s %8s %6s %6s\n' "$name" "$m_rps_1" "$m_p99_1" "$m_cpu_1" \
            "$m_rps_2" "$m_p99_2" "$m_cpu_2" "$(ratio "$m_rps_1" "$m_rps_2")" "$(ratio "$m_cpu_1" "$m_cpu_2")"
        [ -z "$m_errs" ] || echo "   errors:$m_errs"
    done
fi

[ -n "$php" ] || exit 0
# PHP through php-fpm: the same cases, ratio against mod_proxy_fcgi with reuse.
for p in ours theirs plain; do
    for i in $(seq 50); do
        curl -fsS "http://127.0.0.1:$port/php-$p/small.php" 2>/dev/null | grep -q Hello && break
        sleep 0.2
    done
    curl -fsS "http://127.0.0.1:$port/php-$p/small.php" | grep -q Hello || { echo "bench: php-fpm ($p) does not answer"; cat "$dir/logs/error.log"; exit 1; }
done
echo
table "php-fpm case"
for case in "GET 13 B:small.php:" "GET 1 MiB:big.php:" "POST 1 MiB:echo.php:$top/scripts/bench/post.lua"; do
    name=${case%%:*}; rest=${case#*:}; file=${rest%%:*}; script=${rest#*:}
    row "$name" "/php-ours/$file" "/php-theirs/$file" "/php-plain/$file" "$script" "$fpm_ours" "$fpm_theirs" "$fpm_plain"
done
