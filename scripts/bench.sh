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
# the original case by case, each pair measured back to back.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
module="${FASTCGI_RS_MODULE:-$top/target/release/mod_fastcgi_rs.so}"
dir=$(mktemp -d /tmp/fcgi-bench.XXXXXX)
chmod 755 "$dir"
port="${PORT:-18080}"
secs="${BENCH_SECONDS:-5}"
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
# keep-alive without a limit, the same document root.
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

# wrk_run URL [script] -> "req/s p99"
wrk_run() {
    out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency ${2:+-s "$2"} "$1")
    rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
    echo "$rps $p99 $errs"
}

# ratio: ours / mod_proxy_fcgi with reuse, in req/s; p99 vs plain: ours
# against mod_proxy_fcgi without reuse, in p99 latency (lower is better).
printf '%-14s %11s %9s %11s %9s %11s %9s %7s %9s\n' case "ours req/s" "ours p99" "reuse req/s" "reuse p99" \
    "plain req/s" "plain p99" ratio "p99/plain"
# name:ours path:theirs path:wrk script. Paths with PATH_INFO cost us a
# sub-request for PATH_TRANSLATED (as mod_cgi and the original compute it);
# mod_proxy_fcgi computes none, so the query-string case compares like with like.
ms() { awk -v t="$1" 'BEGIN { v = t + 0; if (t ~ /us$/) v /= 1000; else if (t ~ /ms$/) v = v; else if (t ~ /s$/) v *= 1000; print v }'; }
# One row of the table: wrk on our, the reusing and the plain mod_proxy_fcgi
# URL of a case, the ratio ours/reuse and the p99 against plain.
row() {
    local name=$1 ours=$2 reuse=$3 plain=$4 script=$5 o_rps o_p99 o_err t_rps t_p99 t_err p_rps p_p99 p_err ratio p99r
    set -- $(wrk_run "http://127.0.0.1:$port$ours" "$script"); o_rps=$1; o_p99=$2; shift 2; o_err="$*"
    set -- $(wrk_run "http://127.0.0.1:$port$reuse" "$script"); t_rps=$1; t_p99=$2; shift 2; t_err="$*"
    set -- $(wrk_run "http://127.0.0.1:$port$plain" "$script"); p_rps=$1; p_p99=$2; shift 2; p_err="$*"
    ratio=$(awk -v a="$o_rps" -v b="$t_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    p99r=$(awk -v a="$(ms "$o_p99")" -v b="$(ms "$p_p99")" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    printf '%-14s %11s %9s %11s %9s %11s %9s %7s %9s\n' "$name" "$o_rps" "$o_p99" "$t_rps" "$t_p99" \
        "$p_rps" "$p_p99" "$ratio" "$p99r"
    if [ -n "$o_err$t_err$p_err" ]; then echo "   errors: ours: $o_err reuse: $t_err plain: $p_err"; fi
}
for case in "GET 13 B:/ours/small:/small:" "GET 13 B query:/ours?small:/?small:" "GET 64 KiB:/ours/mid:/mid:" \
            "GET 1 MiB:/ours/big:/big:" "POST 1 MiB:/ours/echo:/echo:$top/scripts/bench/post.lua"; do
    name=${case%%:*}; rest=${case#*:}; ours=${rest%%:*}; rest=${rest#*:}; theirs=${rest%%:*}; script=${rest#*:}
    row "$name" "$ours" "/theirs$theirs" "/plain$theirs" "$script"
done

if [ -n "$original" ]; then
    for i in $(seq 50); do
        curl -fsS "http://127.0.0.1:$oport/ours/small" >/dev/null 2>&1 && break
        sleep 0.2
    done
    curl -fsS "http://127.0.0.1:$oport/ours/small" | grep -q Hello || { echo "bench: the original does not answer"; cat "$dir/original/logs/error.log"; exit 1; }
    echo
    printf '%-14s %11s %9s %11s %9s %7s\n' "original case" "ours req/s" "ours p99" "orig req/s" "orig p99" ratio
    for case in "GET 13 B:/ours/small:" "GET 13 B query:/ours?small:" "GET 64 KiB:/ours/mid:" \
                "GET 1 MiB:/ours/big:" "POST 1 MiB:/ours/echo:$top/scripts/bench/post.lua"; do
        name=${case%%:*}; rest=${case#*:}; path=${rest%%:*}; script=${rest#*:}
        set -- $(wrk_run "http://127.0.0.1:$port$path" "$script"); o_rps=$1; o_p99=$2; shift 2; o_err="$*"
        set -- $(wrk_run "http://127.0.0.1:$oport$path" "$script"); g_rps=$1; g_p99=$2; shift 2; g_err="$*"
        ratio=$(awk -v a="$o_rps" -v b="$g_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
        printf '%-14s %11s %9s %11s %9s %7s\n' "$name" "$o_rps" "$o_p99" "$g_rps" "$g_p99" "$ratio"
        if [ -n "$o_err$g_err" ]; then echo "   errors: ours: $o_err original: $g_err"; fi
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
printf '%-14s %11s %9s %11s %9s %11s %9s %7s %9s\n' "php-fpm case" "ours req/s" "ours p99" "reuse req/s" "reuse p99" \
    "plain req/s" "plain p99" ratio "p99/plain"
for case in "GET 13 B:small.php:" "GET 1 MiB:big.php:" "POST 1 MiB:echo.php:$top/scripts/bench/post.lua"; do
    name=${case%%:*}; rest=${case#*:}; file=${rest%%:*}; script=${rest#*:}
    row "$name" "/php-ours/$file" "/php-theirs/$file" "/php-plain/$file" "$script"
done
