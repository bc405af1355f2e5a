#!/usr/bin/env bash
# HTTP static-file benchmark: httpd against Debian's nginx and lighttpd, side by side
# in one run, on the same files, each server one process on loopback.
#
#   scripts/bench/http.sh [SECONDS_PER_CASE]     (default 5; ports 18000-18499;
#                                                 ROUNDS=3)
#
# For every server x file (600 B, 64 KiB, 1 MiB, and "20k.html+gz": a 20 KiB HTML page
# asked for with Accept-Encoding: gzip and served from its precompressed 20k.html.gz,
# by httpd --precompressed, nginx gzip_static and lighttpd rewriting to the same file)
# x client:
#   wrk -t1 -c50 --latency  (HTTP/1.1 keep-alive)
#   ab  -c50               (HTTP/1.0, one connection per request)
# it records req/s, p50/p99 latency and the server's CPU time (utime+stime ticks from
# /proc/PID/stat over the run). All servers run at once (idle but for the one being
# measured); every case runs ROUNDS times per server, the servers taking turns going
# first, and the table gives the median of each figure. It prints ratios to httpd
# and draws target/bench/http.png.
#
# Adding a server = one `start_NAME PORT DOCROOT` function that runs it in the
# foreground as ONE process (so its CPU is that process's) and echoes nothing, plus
# its name in SERVERS. Example: SERVERS="httpd nginx lighttpd capstone".
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "$(dirname "$0")/lib.sh"
cd "$SYSNET_ROOT"

SECS=${1:-5}
ROUNDS=${ROUNDS:-3}
SERVERS=${SERVERS:-"httpd nginx lighttpd capstone"}
PORT_BASE=${PORT_BASE:-18000}
CONNS=50

need_pkgs nginx-light lighttpd wrk apache2-utils python3 python3-matplotlib procps

step "building httpd (release)"
cargo build --release --locked --bin httpd --bin capstone -q
HTTPD="$SYSNET_ROOT/target/release/httpd"
CAPSTONE="$SYSNET_ROOT/target/release/capstone"

WORK=$(mktemp -d /tmp/http-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# make_20k_html FILE: about 20 KiB of text-like HTML (words, not random bytes, so it
# compresses as a real page does: to about a sixth).
make_20k_html() {
  awk 'BEGIN {
    srand(7); nw = split("the of and server request file static compressed header response client cache socket event loop kernel buffer page", w, " ")
    print "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>bench</title></head><body>"
    while (n < 20200) {
      line = "<p class=\"p" (i++ % 7) "\">"
      for (j = 0; j < 12; j++) line = line w[int(rand() * nw) + 1] " "
      line = line "</p>"; print line; n += length(line) + 1
    }
    print "</body></html>"
  }' > "$1"
}

DOCROOT="$WORK/www"
mkdir -p "$DOCROOT"
head -c 600 /dev/urandom | base64 -w 76 | head -c 600 > "$DOCROOT/600b.html"
head -c 65536 /dev/urandom > "$DOCROOT/64k.bin"
head -c 1048576 /dev/urandom > "$DOCROOT/1m.bin"
make_20k_html "$DOCROOT/20k.html"
gzip -9 -k -n "$DOCROOT/20k.html"
FILES=${FILES:-"600b.html 64k.bin 1m.bin 20k.html+gz"}

# ---- servers: start_NAME PORT DOCROOT runs it in the foreground -------------------

start_httpd() {
  RUST_LOG=warn exec "$HTTPD" --listen "127.0.0.1:$1" --root "$2" --io epoll --precompressed
}

# The capstone as one process (no master; its two event-loop threads share it), so
# this script's per-process CPU accounting holds. scripts/bench/capstone.sh runs it
# with its master and workers against a two-worker nginx.
start_capstone() {
  printf 'listen = ["127.0.0.1:%s"]\nroot = "%s"\nprocesses = 0\nworkers = 2\nstatus_path = ""\nprecompressed = true\n' "$1" "$2" \
    > "$WORK/capstone-$1.toml"
  RUST_LOG=warn exec "$CAPSTONE" --config "$WORK/capstone-$1.toml"
}

start_nginx() {
  local d="$WORK/nginx-$1"
  mkdir -p "$d"
  cat > "$d/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  gzip_static on;
  keepalive_requests 1000000;
  keepalive_timeout 30s;
  types { text/html html; application/octet-stream bin; }
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  server {
    listen 127.0.0.1:$1;
    root $2;
  }
}
CONF
  exec nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log"
}

start_lighttpd() {
  local d="$WORK/lighttpd-$1"
  mkdir -p "$d"
  lighttpd_conf "$d/lighttpd.conf" "$2" "$1" "$d/error.log" 30 8192 4096
  exec lighttpd -D -f "$d/lighttpd.conf"
}

# ---- measurement -----------------------------------------------------------------

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)

wait_port() {
  local i
  for i in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$1/600b.html" && return 0
    sleep 0.1
  done
  echo "server on port $1 never answered" >&2
  return 1
}

RESULTS="$WORK/results.tsv"
printf 'server\tclient\tfile\treqs\trps\tp50_ms\tp99_ms\tcpu_s\terrors\tround\n' > "$RESULTS"

run_case() { # server pid port client file round
  local server=$1 pid=$2 port=$3 client=$4 file=$5 round=$6 out t0 t1 reqs rps p50 p99 errs
  out="$WORK/$server-$client-$file.out"
  # "NAME+gz": NAME asked for with Accept-Encoding: gzip.
  local path=${file%+gz} hdr=()
  [ "$path" = "$file" ] || hdr=(-H "Accept-Encoding: gzip")
  t0=$(cpu_ticks "$pid")
  if [ "$client" = wrk ]; then
    timeout $((SECS + 30)) wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "${hdr[@]}" "http://127.0.0.1:$port/$path" > "$out" 2>&1 || true
    t1=$(cpu_ticks "$pid")
    read -r reqs rps p50 p99 errs < <(wrk_stats "$out")
  else
    # Plain HTTP/1.0: a new connection per request.
    timeout $((SECS + 30)) ab -q -t "$SECS" -n 5000000 -c "$CONNS" "${hdr[@]}" "http://127.0.0.1:$port/$path" > "$out" 2>&1 || true
    t1=$(cpu_ticks "$pid")
    rps=$(awk '/^Requests per second:/ {print $4}' "$out")
    reqs=$(awk '/^Complete requests:/ {print $3}' "$out")
    p50=$(awk '$1 == "50%" {print $2}' "$out")
    p99=$(awk '$1 == "99%" {print $2}' "$out")
    errs=$(awk '/^Failed requests:/ {n += $3} /^Non-2xx responses:/ {n += $3} END {print n + 0}' "$out")
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$client" "$file" "${reqs:-0}" "${rps:-0}" \
    "${p50:-0}" "${p99:-0}" "$(awk -v t=$((t1 - t0)) -v h="$TCK" 'BEGIN {printf "%.2f", t / h}')" "${errs:-0}" "$round" >> "$RESULTS"
  printf '  %-9s %-4s %-10s %10s req/s  p50 %8s ms  p99 %8s ms  errors %s\n' "$server" "$client" "$file" "${rps:-?}" "${p50:-?}" "${p99:-?}" "${errs:-?}"
}

start_servers
# Every server must really send the precompressed file, or the 20k.html+gz row
# compares unlike work.
want=$(stat -c %s "$DOCROOT/20k.html.gz")
for server in $SERVERS; do
  hdrs=$(curl -sS -o "$WORK/check.gz" -D - -H "Accept-Encoding: gzip" "http://127.0.0.1:${PORT_OF[$server]}/20k.html" | tr -d '\r')
  grep -qi '^content-encoding: gzip$' <<<"$hdrs" && cmp -s "$WORK/check.gz" "$DOCROOT/20k.html.gz" \
    || { echo "$server does not serve 20k.html.gz ($want bytes) for Accept-Encoding: gzip:" >&2; echo "$hdrs" >&2; exit 1; }
done
run_rounds wrk ab

mkdir -p "$SYSNET_ROOT/target/bench"
cp "$RESULTS" "$SYSNET_ROOT/target/bench/http.tsv"
step "results (ratios: peer / httpd; CPU/req in microseconds of server CPU per request)"
# Debian's interpreter (where python3-matplotlib lives), not whatever is first in PATH.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
"$PY" "$(dirname "$0")/http_report.py" "$RESULTS" "$SYSNET_ROOT/target/bench/http.png"
