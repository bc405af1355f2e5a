#!/usr/bin/env bash
# The memory of N idle TLS connections: the capstone, nginx and lighttpd, one
# certificate for all three, on loopback.
#
#   scripts/bench/tls-idle.sh [N]        (default 10000; ports 19610-19612)
#
# For each server and each of HTTP/1.1 and HTTP/2 (ALPN http/1.1, then h2), a fresh
# server is started, its resident memory (RSS of all its processes) read, and
# scripts/bench/idle-conns.py opens N TLS 1.3 connections: handshake, one request
# for a 600 B file, its whole answer read, then the connection left idle. With all
# N open, the servers' RSS and PSS are read again; the table gives the growth per
# connection. Memory is not timing: a busy machine gives the same figures.
#
# Bounds: each run stops opening connections after 300 s (the row then says how
# many made it), the servers keep idle connections for 10 minutes, and
# RLIMIT_NOFILE is raised to what N needs (or the run stops). SERVERS narrows it
# ("capstone nginx lighttpd"); the capstone runs as https.sh runs it (one process,
# two event loops), nginx with two workers, lighttpd as one process.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "$(dirname "$0")/lib.sh"
cd "$SYSNET_ROOT"

N=${1:-10000}
SERVERS=${SERVERS:-"capstone nginx lighttpd"}
PORT_CAP=19610
PORT_NGX=19611
PORT_LTD=19612

need_pkgs openssl curl python3 nginx-light lighttpd lighttpd-mod-openssl
want_fds=$((N + 1000))
ulimit -Hn "$((2 * N + 2000))" 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt "$want_fds" ]; then
  echo "RLIMIT_NOFILE $(ulimit -n) is below $want_fds: N=$N cannot be held" >&2
  exit 1
fi

step "building capstone (release)"
[ -n "${NO_BUILD:-}" ] || cargo build --release --locked --bin capstone -q
CAPSTONE=${CAPSTONE:-$SYSNET_ROOT/target/release/capstone}

WORK=$(mktemp -d /tmp/tls-idle.XXXXXX)
chmod 755 "$WORK"
PID=
cleanup() {
  [ -z "$PID" ] || { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
  rm -rf "$WORK"
}
trap cleanup EXIT

DOCROOT="$WORK/www"
mkdir -p "$DOCROOT"
head -c 600 /dev/urandom | base64 -w 76 | head -c 600 > "$DOCROOT/600b.html"
chmod 644 "$DOCROOT"/*
openssl req -x509 -nodes -days 30 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
chmod 644 "$WORK/key.pem"

cat > "$WORK/capstone.toml" <<CONF
listen = [{ addr = "127.0.0.1:$PORT_CAP", tls = true }]
root = "$DOCROOT"
processes = 1
workers = 2
max_clients = $((N + 1000))
status_path = ""
[timeouts]
idle = 600
[tls]
cert = "$WORK/cert.pem"
key = "$WORK/key.pem"
CONF

nginx_tls_conf "$WORK/nginx" "$PORT_NGX" "$DOCROOT" "$WORK/cert.pem" "$WORK/key.pem" 600 $((N + 2000)) $((N + 1000))

lighttpd_tls_conf "$WORK/lighttpd" "$PORT_LTD" "$DOCROOT" "$WORK/cert.pem" "$WORK/key.pem" 600 "$(ulimit -n)" $((N + 1000))

declare -A PORT=([capstone]=$PORT_CAP [nginx]=$PORT_NGX [lighttpd]=$PORT_LTD)
start() {
  case $1 in
    capstone) RUST_LOG=warn "$CAPSTONE" --config "$WORK/capstone.toml" 2>"$WORK/capstone.log" >/dev/null & ;;
    nginx) nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" & ;;
    lighttpd) lighttpd -D -f "$WORK/lighttpd/lighttpd.conf" & ;;
  esac
  PID=$!
  local i
  for i in $(seq 100); do
    curl -fsS -k -o /dev/null "https://127.0.0.1:${PORT[$1]}/600b.html" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$1 answers no HTTPS on ${PORT[$1]}" >&2
  return 1
}
stop() {
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=
  sleep 1
}
tree_rss_kib() {
  local p=$1 sum t c
  sum=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
  for t in /proc/"$p"/task/*; do
    for c in $(cat "$t/children" 2>/dev/null); do sum=$((sum + $(tree_rss_kib "$c"))); done
  done
  echo "$sum"
}

RESULTS="$WORK/results.tsv"
for proto in http1.1 h2; do
  for name in $SERVERS; do
    step "$name, $proto: $N idle TLS connections"
    start "$name"
    sleep 1
    before=$(tree_rss_kib "$PID")
    flags=(--tls)
    [ "$proto" = h2 ] && flags+=(--h2)
    line=$(timeout 900 python3 scripts/bench/idle-conns.py "127.0.0.1:${PORT[$name]}" "$PID" "$N" /600b.html \
      "${flags[@]}" --before-kib "$before" || echo "failed")
    echo "  rss before $((before / 1024)) MiB; $line"
    printf '%s\t%s\t%s\t%s\n' "$proto" "$name" "$before" "$line" >> "$RESULTS"
    stop
  done
done

mkdir -p "$SYSNET_ROOT/target/bench"
cp "$RESULTS" "$SYSNET_ROOT/target/bench/tls-idle.tsv"
step "results: $N idle TLS 1.3 connections (RSS of all the server's processes)"
awk -F'\t' '
  {
    n = "?"; rss = "?"; per = "?"; open = "?"
    split($4, kv, " ")
    for (i in kv) {
      split(kv[i], p, "=")
      if (p[1] == "answered") n = p[2]
      if (p[1] == "still_open") open = p[2]
      if (p[1] == "rss_mib") rss = p[2]
      if (p[1] == "kib_per_conn") per = p[2]
    }
    printf "%-8s %-9s before %6.1f MiB  after %7s MiB  answered %6s  open %6s  %7s KiB per connection\n", $1, $2, $3 / 1024, rss, n, open, per
  }' "$RESULTS"
