#!/bin/sh
# `make run`: Apache in the foreground on 127.0.0.1:8080 with mod_fastcgi_rs,
# serving the tutorial's flup app at / in static mode: the module's process
# manager (fcgi-pm) starts it, as in the tutorial. Ctrl-C stops everything.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
module="$top/target/release/mod_fastcgi_rs.so"
run="$top/build/run"
port="${PORT:-8080}"
mods=/usr/lib/apache2/modules

rm -rf "$run"
mkdir -p "$run/htdocs" "$run/logs"
cp "$top/examples/app.py" "$run/htdocs/app.py"
chmod 755 "$run" "$run/htdocs" "$run/htdocs/app.py"

user=""
if [ "$(id -u)" -eq 0 ]; then
    user="User www-data
Group www-data"
    chown www-data:www-data "$run/htdocs/app.py" "$run/logs"
fi

cat > "$run/httpd.conf" <<CONF
ServerRoot "$run"
ServerName 127.0.0.1
Listen 127.0.0.1:$port
PidFile "$run/logs/httpd.pid"
DefaultRuntimeDir "$run/logs"
ErrorLog "$run/logs/error.log"
LogLevel info
$user
LoadModule mpm_event_module $mods/mod_mpm_event.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule mime_module $mods/mod_mime.so
LoadModule alias_module $mods/mod_alias.so
LoadModule fastcgi_module $module
TypesConfig /etc/mime.types
LogFormat "%h %l %u %t \"%r\" %>s %b" common
CustomLog "$run/logs/access.log" common

DocumentRoot "$run/htdocs"
AliasMatch "^/$" "$run/htdocs/app.py"
FastCgiIpcDir "$run/fastcgi"
<Directory "$run/htdocs">
    Options +FollowSymLinks +ExecCGI
    Require all granted
</Directory>
<Files app.py>
    SetHandler fastcgi-script
</Files>
FastCgiServer "$run/htdocs/app.py" -processes 4 -socket fcgi.sock
CONF

cleanup() {
    [ -n "${httpd:-}" ] && kill "$httpd" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

echo "mod_fastcgi_rs: http://127.0.0.1:$port/  (logs in $run/logs; Ctrl-C stops)"
setsid apache2 -f "$run/httpd.conf" -DFOREGROUND &
httpd=$!
wait "$httpd"
