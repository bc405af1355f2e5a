#!/usr/bin/env bash
# The capstone over HTTPS against Debian's nginx (`ssl`, same certificate, same
# number of workers), side by side in one run, on loopback.
#
#   scripts/bench/https.sh [SECONDS_PER_CASE]      (default 5; ports 19600-19601;
#                                                  ACCEPT=fill|shared|reuseport picks
#                                                  the capstone's accept mode)
#
# Cases (each server measured alone while the other idles):
#   keep-alive   wrk -t1 -c64 over TLS 1.3, 600 B file: req/s and the server's CPU
#                per request (utime+stime of its whole process tree, from /proc)
#   handshakes   ab -c64 -f TLS1.3 (and TLS1.2), no keep-alive: a new TLS connection,
#                full handshake, per request: handshakes/s and CPU per handshake
#   64 MiB       one curl download of a 64 MiB file, over HTTP/1.1 and over HTTP/2:
#                MiB/s (files over TLS are streamed through the session: no
#                sendfile for either server)
#   h2 600 B     h2load -c64 -m10 (64 connections, 10 streams each) over TLS 1.3,
#                ALPN h2: req/s and CPU per request
# The certificate is one ECDSA P-256 key made by `openssl req` for both. nginx runs
# two worker processes; the capstone one process with two event-loop threads.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$SYSNET_ROOT"

SECS=${1:-5}
PORT_CAP=19600
PORT_NGX=19601

need_pkgs nginx-light wrk apache2-utils openssl curl procps nghttp2-client

step "building capstone (release)"
cargo build --release --locked --bin capstone -q
CAPSTONE="$SYSNET_ROOT/target/release/capstone"

WORK=$(mktemp -d /tmp/https-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

DOCROOT="$WORK/www"
mkdir -p "$DOCROOT"
head -c 600 /dev/urandom | base64 -w 76 | head -c 600 > "$DOCROOT/600b.html"
head -c $((64 << 20)) /dev/urandom > "$DOCROOT/64m.bin"
chmod 644 "$DOCROOT"/*
openssl req -x509 -nodes -days 30 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
chmod 644 "$WORK/key.pem"
ulimit -n "$(ulimit -Hn)"

cat > "$WORK/capstone.toml" <<CONF
listen = [{ addr = "127.0.0.1:$PORT_CAP", tls = true }]
root = "$DOCROOT"
processes = 1
workers = 2
accept = "${ACCEPT:-fill}"
max_clients = 20000
status_path = ""
[timeouts]
idle = 60
[tls]
cert = "$WORK/cert.pem"
key = "$WORK/key.pem"
CONF

mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes 2;
worker_rlimit_nofile 30000;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 20000; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  types { text/html html; application/octet-stream bin; }
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:SSL:10m;
  ssl_session_tickets on;
  server {
    listen 127.0.0.1:$PORT_NGX ssl http2;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    root $DOCROOT;
  }
}
CONF

RUST_LOG=warn "$CAPSTONE" --config "$WORK/capstone.toml" 2>"$WORK/capstone.log" >/dev/null &
PID_CAP=$!
PIDS+=("$PID_CAP")
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
PID_NGX=$!
PIDS+=("$PID_NGX")

for port in $PORT_CAP $PORT_NGX; do
  for i in $(seq 100); do
    curl -fsS --cacert "$WORK/cert.pem" -o /dev/null "https://localhost:$port/600b.html" 2>/dev/null && break
    [ "$i" -eq 100 ] && { echo "nothing answers HTTPS on $port" >&2; cat "$WORK/capstone.log" >&2; exit 1; }
    sleep 0.1
  done
done

TCK=$(getconf CLK_TCK)
tree_pids() {
  local p=$1 t c
  echo "$p"
  for t in /proc/"$p"/task/*; do
    for c in $(cat "$t/children" 2>/dev/null); do tree_pids "$c"; done
  done
}
cpu_ticks() {
  local sum=0 p
  for p in $(tree_pids "$1"); do
    sum=$((sum + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$sum"
}
# us_per PID_TICKS_DELTA COUNT: server CPU microseconds per unit.
us_per() { awk -v t="$1" -v h="$TCK" -v n="$2" 'BEGIN { if (n > 0) printf "%.1f", t / h * 1e6 / n; else print "nan" }'; }

RESULTS="$WORK/results.tsv"
printf 'case\tserver\trate\tcpu_us\n' > "$RESULTS"

keepalive() { # name pid port
  local out="$WORK/$1-ka.out" t0 t1 reqs rps
  t0=$(cpu_ticks "$2")
  timeout $((SECS + 30)) wrk -t1 -c64 -d"${SECS}s" "https://127.0.0.1:$3/600b.html" > "$out" 2>&1 || true
  t1=$(cpu_ticks "$2")
  reqs=$(awk '/requests in/ {print $1}' "$out")
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  if grep -q "Non-2xx\|Socket errors" "$out"; then echo "  $1: $(grep 'Non-2xx\|Socket errors' "$out")"; fi
  printf 'keep-alive 600B c64\t%s\t%s\t%s\n' "$1" "${rps:-0}" "$(us_per $((t1 - t0)) "${reqs:-0}")" >> "$RESULTS"
  printf '  %-9s keep-alive  %10s req/s\n' "$1" "${rps:-?}"
}

handshakes() { # name pid port proto
  local out="$WORK/$1-hs-$4.out" t0 t1 n rps failed
  t0=$(cpu_ticks "$2")
  timeout $((SECS * 6 + 30)) ab -q -c64 -t "$SECS" -n 1000000 -f "$4" "https://127.0.0.1:$3/600b.html" > "$out" 2>&1 || true
  t1=$(cpu_ticks "$2")
  rps=$(awk '/^Requests per second:/ {print $4}' "$out")
  n=$(awk '/^Complete requests:/ {print $3}' "$out")
  failed=$(awk '/^Failed requests:/ {print $3}' "$out")
  printf 'new TLS conn/request %s\t%s\t%s\t%s\n' "$4" "$1" "${rps:-0}" "$(us_per $((t1 - t0)) "${n:-0}")" >> "$RESULTS"
  printf '  %-9s handshakes %s %10s /s  (%s done, %s failed)\n' "$1" "$4" "${rps:-?}" "${n:-?}" "${failed:-?}"
}

bigfile() { # name pid port --http1.1|--http2
  local t0 t1 secs
  t0=$(cpu_ticks "$2")
  secs=$(curl -fsS "$4" --cacert "$WORK/cert.pem" -o /dev/null -w '%{time_total}' "https://localhost:$3/64m.bin")
  t1=$(cpu_ticks "$2")
  printf '64 MiB download %s\t%s\t%s\t%s\n' "${4#--}" "$1" "$(awk -v s="$secs" 'BEGIN {printf "%.0f", 64 / s}')" "$(us_per $((t1 - t0)) 64)" >> "$RESULTS"
  printf '  %-9s 64 MiB %s in %s s\n' "$1" "${4#--}" "$secs"
}

h2small() { # name pid port
  local out="$WORK/$1-h2.out" t0 t1 n rps
  t0=$(cpu_ticks "$2")
  timeout $((SECS + 30)) h2load -t1 -c64 -m10 -D "$SECS" "https://127.0.0.1:$3/600b.html" > "$out" 2>&1 || true
  t1=$(cpu_ticks "$2")
  rps=$(awk '/^finished in/ {print $4}' "$out")
  n=$(awk '/^requests:/ {print $8}' "$out")
  if ! grep -q "Application protocol: h2" "$out"; then echo "  $1: h2 not negotiated" >&2; fi
  printf 'h2 600B c64 m10\t%s\t%s\t%s\n' "$1" "${rps:-0}" "$(us_per $((t1 - t0)) "${n:-0}")" >> "$RESULTS"
  printf '  %-9s h2 %10s req/s  (%s succeeded)\n' "$1" "${rps:-?}" "${n:-?}"
}

step "HTTPS/1.1 keep-alive, 600 B, wrk -t1 -c64, ${SECS}s"
keepalive capstone "$PID_CAP" "$PORT_CAP"
keepalive nginx "$PID_NGX" "$PORT_NGX"
step "a new TLS connection per request, ab -c64"
for proto in TLS1.3 TLS1.2; do
  handshakes capstone "$PID_CAP" "$PORT_CAP" "$proto"
  handshakes nginx "$PID_NGX" "$PORT_NGX" "$proto"
done
step "HTTP/2, 600 B, h2load -c64 -m10, ${SECS}s"
h2small capstone "$PID_CAP" "$PORT_CAP"
h2small nginx "$PID_NGX" "$PORT_NGX"
step "one 64 MiB download"
for proto in --http1.1 --http2; do
  bigfile capstone "$PID_CAP" "$PORT_CAP" "$proto"
  bigfile nginx "$PID_NGX" "$PORT_NGX" "$proto"
done

mkdir -p "$SYSNET_ROOT/target/bench"
cp "$RESULTS" "$SYSNET_ROOT/target/bench/https.tsv"
step "results (rate: req/s, handshakes/s or MiB/s; CPU µs per request, handshake or MiB)"
awk -F'\t' '
  NR == 1 { next }
  { rate[$1, $2] = $3; cpu[$1, $2] = $4; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
  END {
    printf "%-28s %12s %12s %8s %12s %12s %8s\n", "case", "capstone", "nginx", "ratio", "cap CPU", "nginx CPU", "ratio"
    for (i = 1; i <= n; i++) {
      c = order[i]
      r = (rate[c, "nginx"] > 0) ? rate[c, "capstone"] / rate[c, "nginx"] : 0
      q = (cpu[c, "nginx"] > 0) ? cpu[c, "capstone"] / cpu[c, "nginx"] : 0
      printf "%-28s %12s %12s %7.2fx %12s %12s %7.2fx\n", c, rate[c, "capstone"], rate[c, "nginx"], r, cpu[c, "capstone"], cpu[c, "nginx"], q
    }
  }' "$RESULTS"
