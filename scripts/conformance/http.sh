#!/usr/bin/env bash
# HTTP conformance battery: the same ~180 raw requests (request-line and header syntax,
# Host forms, methods, conditionals, ranges, transfer codings, traversal) sent to httpd,
# the capstone, Debian's nginx and lighttpd, all serving one small tree on free
# loopback ports; prints a table of status codes, a column per server, and marks with
# `<<` every row where ours answer differently from both peers.
#
#   scripts/conformance/http.sh            (as root: installs nginx-light and lighttpd)
#   PROFILE=release scripts/conformance/http.sh
#
# Every request goes to 127.0.0.1 only; each waits at most 3 s for its status line.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

need_pkgs nginx-light lighttpd python3 curl

PROFILE=${PROFILE:-debug}
step "building httpd and capstone ($PROFILE)"
if [ "$PROFILE" = release ]; then
  cargo build --release --locked --bin httpd --bin capstone -q
else
  cargo build --locked --bin httpd --bin capstone -q
fi
TARGET=${CARGO_TARGET_DIR:-$SYSNET_ROOT/target}
HTTPD="$TARGET/$PROFILE/httpd"
CAPSTONE="$TARGET/$PROFILE/capstone"

WORK=$(mktemp -d /tmp/http-conformance.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The tree: a secret beside (not inside) the root, a symlink pointing at it.
ROOT="$WORK/www"
mkdir -p "$ROOT/dir" "$ROOT/noindex"
printf '0123456789' > "$ROOT/digits.txt"
printf '<h1>home</h1>\n' > "$ROOT/index.html"
printf 'dir index\n' > "$ROOT/dir/index.html"
head -c 102400 /dev/zero | tr '\0' 'b' > "$ROOT/big.bin"
printf 'SECRET\n' > "$WORK/secret.txt"
ln -s ../secret.txt "$ROOT/link-out"
chmod -R a+rX "$WORK"

read -r P_HTTPD P_CAP P_NGINX P_LIGHTTPD < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
PY
)

step "starting servers (httpd :$P_HTTPD, capstone :$P_CAP, nginx :$P_NGINX, lighttpd :$P_LIGHTTPD)"
RUST_LOG=error "$HTTPD" --listen "127.0.0.1:$P_HTTPD" --root "$ROOT" 2> "$WORK/httpd.log" &
PIDS+=($!)
printf 'listen = ["127.0.0.1:%s"]\nroot = "%s"\nprocesses = 0\nworkers = 1\nstatus_path = ""\n' \
  "$P_CAP" "$ROOT" > "$WORK/capstone.toml"
RUST_LOG=error "$CAPSTONE" --config "$WORK/capstone.toml" 2> "$WORK/capstone.log" &
PIDS+=($!)

mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  types { text/html html; text/plain txt; application/octet-stream bin; }
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  server {
    listen 127.0.0.1:$P_NGINX;
    root $ROOT;
  }
}
CONF
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
PIDS+=($!)

cat > "$WORK/lighttpd.conf" <<CONF
server.document-root = "$ROOT"
server.bind = "127.0.0.1"
server.port = $P_LIGHTTPD
server.errorlog = "$WORK/lighttpd-error.log"
index-file.names = ( "index.html" )
mimetype.assign = ( ".html" => "text/html", ".txt" => "text/plain", ".bin" => "application/octet-stream" )
CONF
lighttpd -D -f "$WORK/lighttpd.conf" &
PIDS+=($!)

for port in "$P_HTTPD" "$P_CAP" "$P_NGINX" "$P_LIGHTTPD"; do
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/digits.txt" && break
    sleep 0.1
  done
  curl -fsS -o /dev/null "http://127.0.0.1:$port/digits.txt" || { echo "server on :$port never answered" >&2; exit 1; }
done
printf 'nginx %s, lighttpd %s\n' "$(nginx -v 2>&1 | sed 's/.*\///')" "$(lighttpd -v 2>&1 | head -1 | sed 's/ (.*//;s/.*\///')"

step "sending the battery"
python3 "$(dirname "$0")/http_battery.py" \
  "httpd=$P_HTTPD" "capstone=$P_CAP" "nginx=$P_NGINX" "lighttpd=$P_LIGHTTPD"
