#!/usr/bin/env bash
# The capstone against Debian's nginx (master + 2 workers, sendfile on) and lighttpd
# (one process), side by side in one run, on the same files, on loopback.
#
#   scripts/bench/capstone.sh [SECONDS_PER_CASE]     (default 5; ports 19000-19499;
#                                                     ROUNDS=3; SERVERS, FILES and
#                                                     IDLE narrow a run)
#
# For every server x file (600 B, 64 KiB, 1 MiB, and "20k.html+gz": a 20 KiB HTML page
# asked for with Accept-Encoding: gzip and served from its precompressed 20k.html.gz,
# by the capstone's `precompressed`, nginx gzip_static and lighttpd rewriting to the
# same file) x connections (64, 256):
#   wrk -t1 -cN --latency  (HTTP/1.1 keep-alive)
# records req/s, p50/p99 and the CPU the server's whole process tree used during the
# run (utime+stime from /proc). All servers run at once (idle but for the one being
# measured); every case runs ROUNDS times per server, the servers taking turns going
# first, and the table gives the median of each figure: one 5-second run's p99 on two
# shared cores moves by a factor of two from run to run. It prints ratios to the
# faster peer and draws target/bench/capstone.png. The capstone runs four times: with
# two loops once per accept mode (`fill`, the default: one shared socket, the first
# loop takes connections until it is saturated; `shared`: every loop always waits on
# the socket with EPOLLEXCLUSIVE; `reuseport`: one SO_REUSEPORT socket per loop), and
# with one loop (`workers = 1`). Then each server holds 10,000 idle keep-alive
# connections and its memory is read (capstone target: < 100 MiB RSS).
# `capstone-nometrics` is capstone-fill with `metrics_path = ""` (no request timing):
# the report compares the two, same run, on 600 B keep-alive (target: within ±5%).
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "$(dirname "$0")/lib.sh"
cd "$SYSNET_ROOT"

SECS=${1:-5}
ROUNDS=${ROUNDS:-3}
SERVERS=${SERVERS:-"capstone-fill capstone-nometrics capstone-shared capstone-reuseport capstone-1loop nginx lighttpd"}
PORT_BASE=${PORT_BASE:-19000}
IDLE=${IDLE:-10000}

need_pkgs nginx-light lighttpd wrk python3 python3-matplotlib procps curl

step "building capstone (release)"
cargo build --release --locked --bin capstone -q
CAPSTONE="$SYSNET_ROOT/target/release/capstone"

WORK=$(mktemp -d /tmp/capstone-bench.XXXXXX)
# nginx's workers drop to nobody when started as root: they must reach the files.
chmod 755 "$WORK"
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
ulimit -n "$(ulimit -Hn)"

# ---- servers: start_NAME PORT DOCROOT runs it in the foreground -------------------

capstone_conf() { # port docroot accept [workers [metrics_path]]
  cat > "$WORK/capstone-$1.toml" <<CONF
listen = ["127.0.0.1:$1"]
root = "$2"
processes = 1
workers = ${4:-2}
accept = "$3"
max_clients = 20000
status_path = ""
metrics_path = "${5-/metrics}"
precompressed = true
[timeouts]
idle = 60
CONF
  echo "$WORK/capstone-$1.toml"
}
start_capstone-fill() { RUST_LOG=warn exec "$CAPSTONE" --config "$(capstone_conf "$1" "$2" fill)"; }
# The same without metrics: requests are not timed.
start_capstone-nometrics() { RUST_LOG=warn exec "$CAPSTONE" --config "$(capstone_conf "$1" "$2" fill 2 "")"; }
start_capstone-shared() { RUST_LOG=warn exec "$CAPSTONE" --config "$(capstone_conf "$1" "$2" shared)"; }
start_capstone-reuseport() { RUST_LOG=warn exec "$CAPSTONE" --config "$(capstone_conf "$1" "$2" reuseport)"; }
# One loop in the worker: on two cores shared with a one-thread load generator, a
# second loop mostly competes with the generator for a core.
start_capstone-1loop() { RUST_LOG=warn exec "$CAPSTONE" --config "$(capstone_conf "$1" "$2" shared 1)"; }

start_nginx() {
  local d="$WORK/nginx-$1"
  mkdir -p "$d"
  cat > "$d/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes 2;
worker_rlimit_nofile 30000;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 20000; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  gzip_static on;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
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
  lighttpd_conf "$d/lighttpd.conf" "$2" "$1" "$d/error.log" 60 30000 15000
  exec lighttpd -D -f "$d/lighttpd.conf"
}

# ---- measurement -----------------------------------------------------------------

TCK=$(getconf CLK_TCK)
tree_pids() { # pid and every descendant
  local p=$1 t c
  echo "$p"
  for t in /proc/"$p"/task/*; do
    for c in $(cat "$t/children" 2>/dev/null); do tree_pids "$c"; done
  done
}
# CPU ticks of the tree, the dead included: a process's cutime/cstime hold its reaped children.
cpu_ticks() {
  local sum=0 p
  for p in $(tree_pids "$1"); do
    sum=$((sum + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$sum"
}

wait_port() {
  local i
  for i in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$1/600b.html" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server on port $1 never answered" >&2
  return 1
}

RESULTS="$WORK/results.tsv"
printf 'server\tconns\tfile\treqs\trps\tp50_ms\tp99_ms\tcpu_s\terrors\tround\n' > "$RESULTS"
IDLE_RESULTS="$WORK/idle.txt"
: > "$IDLE_RESULTS"

run_case() { # server pid port conns file round
  local server=$1 pid=$2 port=$3 conns=$4 file=$5 round=$6 out t0 t1 reqs rps p50 p99 errs
  out="$WORK/$server-$conns-$file.out"
  t0=$(cpu_ticks "$pid")
  local path=${file%+gz} hdr=()
  [ "$path" = "$file" ] || hdr=(-H "Accept-Encoding: gzip")
  timeout $((SECS + 30)) wrk -t1 -c"$conns" -d"${SECS}s" --latency "${hdr[@]}" "http://127.0.0.1:$port/$path" > "$out" 2>&1 || true
  t1=$(cpu_ticks "$pid")
  read -r reqs rps p50 p99 errs < <(wrk_stats "$out")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$conns" "$file" "${reqs:-0}" "${rps:-0}" \
    "${p50:-0}" "${p99:-0}" "$(awk -v t=$((t1 - t0)) -v h="$TCK" 'BEGIN {printf "%.2f", t / h}')" "${errs:-0}" "$round" >> "$RESULTS"
  printf '  %-18s c%-4s %-10s %10s req/s  p50 %8s ms  p99 %8s ms  errors %s\n' "$server" "$conns" "$file" "${rps:-?}" "${p50:-?}" "${p99:-?}" "${errs:-?}"
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
run_rounds 64 256

for server in $SERVERS; do
  step "$server: $IDLE idle keep-alive connections"
  printf '%-18s ' "$server" >> "$IDLE_RESULTS"
  python3 scripts/bench/idle-conns.py "127.0.0.1:${PORT_OF[$server]}" "${PID_OF[$server]}" "$IDLE" /600b.html >> "$IDLE_RESULTS" 2>&1 || echo "idle run failed" >> "$IDLE_RESULTS"
  kill "${PID_OF[$server]}" 2>/dev/null || true
  wait "${PID_OF[$server]}" 2>/dev/null || true
done

mkdir -p "$SYSNET_ROOT/target/bench"
cp "$RESULTS" "$SYSNET_ROOT/target/bench/capstone.tsv"
step "results (ratios to the faster of nginx and lighttpd; CPU µs/req = server CPU per request)"
# Debian's interpreter (where python3-matplotlib lives), not whatever is first in PATH.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
"$PY" "$(dirname "$0")/capstone_report.py" "$RESULTS" "$SYSNET_ROOT/target/bench/capstone.png"
step "$IDLE idle keep-alive connections (memory of the whole process tree)"
cat "$IDLE_RESULTS"
