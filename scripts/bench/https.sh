#!/usr/bin/env bash
# The capstone over HTTPS against Debian's nginx (`ssl`, `http2`, same certificate,
# same number of workers) and lighttpd (mod_openssl, h2 on, one process), side by
# side in one run, on loopback.
#
#   scripts/bench/https.sh [SECONDS_PER_CASE]      (default 5; ports 19600-19602;
#                                                  ACCEPT=fill|shared|reuseport picks
#                                                  the capstone's accept mode;
#                                                  SERVERS and CASES narrow a run:
#                                                  CASES="keepalive handshakes h2 big";
#                                                  SMOKE=N: a check that the script
#                                                  works, not a measurement: N (64
#                                                  or more) requests per case,
#                                                  1 MiB files)
#
# Cases (each server measured alone while the others idle):
#   keep-alive   wrk -t1 -c64 over TLS 1.3, 600 B file: req/s and the server's CPU
#                per request (utime+stime of its whole process tree, from /proc)
#   handshakes   ab -c64 -f TLS1.3 (and TLS1.2), no keep-alive: a new TLS connection,
#                full handshake, per request: handshakes/s and CPU per handshake
#   64 MiB       BIG_RUNS (3) curl downloads of a 64 MiB file one after another, over
#                HTTP/1.1 and over HTTP/2: MiB/s and CPU per MiB (files over TLS are
#                streamed through the session: no sendfile for any server)
#   h2 600 B     h2load -c64 -m10 (64 connections, 10 streams each) over TLS 1.3,
#                ALPN h2: req/s and CPU per request
# lighttpd is left out, with a note, when it or its mod_openssl cannot be had.
# The certificate is one ECDSA P-256 key made by `openssl req` for all three. nginx
# runs two worker processes; the capstone one process with two event-loop threads;
# lighttpd is one single-threaded process. The table gives ratios to the faster peer
# (and CPU ratios to the cheaper one).
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "$(dirname "$0")/lib.sh"
cd "$SYSNET_ROOT"

SECS=${1:-5}
PORT_CAP=19600
PORT_NGX=19601
PORT_LTD=19602
SERVERS=${SERVERS:-"capstone nginx lighttpd"}
CASES=${CASES:-"keepalive handshakes h2 big"}
BIG_RUNS=${BIG_RUNS:-3}
BIG_MIB=64
SMOKE=${SMOKE:-}
if [ -n "$SMOKE" ]; then BIG_RUNS=1; BIG_MIB=1; fi
want() { [[ " $CASES " == *" $1 "* ]]; }

need_pkgs wrk apache2-utils openssl curl procps nghttp2-client
has() { [[ " $SERVERS " == *" $1 "* ]]; }
drop() { SERVERS=$(printf '%s\n' $SERVERS | grep -vx "$1" | tr '\n' ' ' || true); }
has nginx && need_pkgs nginx-light
# lighttpd is a peer when it and its TLS module can be had; without them the run
# goes on with the others.
if has lighttpd && ! need_pkgs lighttpd lighttpd-mod-openssl; then
  echo "lighttpd with mod_openssl is not installed: running without it" >&2
  drop lighttpd
fi

step "building capstone (release)"
[ -n "${NO_BUILD:-}" ] || cargo build --release --locked --bin capstone -q
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
head -c $((BIG_MIB << 20)) /dev/urandom > "$DOCROOT/big.bin"
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

nginx_tls_conf "$WORK/nginx" "$PORT_NGX" "$DOCROOT" "$WORK/cert.pem" "$WORK/key.pem" 60 30000 20000

lighttpd_tls_conf "$WORK/lighttpd" "$PORT_LTD" "$DOCROOT" "$WORK/cert.pem" "$WORK/key.pem" 60 16384 5000
if has lighttpd; then
  # A config test loads the modules: it fails without mod_openssl, and on a
  # lighttpd older than 1.4.56 (no server.h2proto), which then runs without h2.
  if ! lighttpd -tt -f "$WORK/lighttpd/lighttpd.conf" >/dev/null 2>&1; then
    sed -i '/server.h2proto/d' "$WORK/lighttpd/lighttpd.conf"
    if lighttpd -tt -f "$WORK/lighttpd/lighttpd.conf" >/dev/null 2>&1; then
      echo "$(lighttpd -v | head -1): no HTTP/2 (server.h2proto came in 1.4.56): its h2 rows stay empty" >&2
    else
      echo "lighttpd cannot load its TLS configuration (mod_openssl missing?): running without it" >&2
      lighttpd -tt -f "$WORK/lighttpd/lighttpd.conf" >&2 || true
      drop lighttpd
    fi
  fi
fi

declare -A PID PORT
PORT[capstone]=$PORT_CAP
PORT[nginx]=$PORT_NGX
PORT[lighttpd]=$PORT_LTD
for name in $SERVERS; do
  case $name in
    capstone) RUST_LOG=warn "$CAPSTONE" --config "$WORK/capstone.toml" 2>"$WORK/capstone.log" >/dev/null & ;;
    nginx) nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" & ;;
    lighttpd) lighttpd -D -f "$WORK/lighttpd/lighttpd.conf" & ;;
    *) echo "unknown server $name" >&2; exit 2 ;;
  esac
  PID[$name]=$!
  PIDS+=("$!")
done

for name in $SERVERS; do
  port=${PORT[$name]}
  for i in $(seq 100); do
    curl -fsS --cacert "$WORK/cert.pem" -o /dev/null "https://localhost:$port/600b.html" 2>/dev/null && break
    [ "$i" -eq 100 ] && { echo "$name answers no HTTPS on $port" >&2; cat "$WORK/capstone.log" "$WORK/lighttpd/error.log" >&2 2>/dev/null; exit 1; }
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
  if [ -n "$SMOKE" ]; then
    timeout 60 h2load --h1 -t1 -c8 -n "$SMOKE" "https://127.0.0.1:$3/600b.html" > "$out" 2>&1 || true
    t1=$(cpu_ticks "$2")
    reqs=$(awk '/^requests:/ {print $8}' "$out")
    rps=$(awk '/^finished in/ {print $4}' "$out")
  else
    timeout $((SECS + 30)) wrk -t1 -c64 -d"${SECS}s" "https://127.0.0.1:$3/600b.html" > "$out" 2>&1 || true
    t1=$(cpu_ticks "$2")
    reqs=$(awk '/requests in/ {print $1}' "$out")
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  fi
  if grep -q "Non-2xx\|Socket errors" "$out"; then echo "  $1: $(grep 'Non-2xx\|Socket errors' "$out")"; fi
  printf 'keep-alive 600B c64\t%s\t%s\t%s\n' "$1" "${rps:-0}" "$(us_per $((t1 - t0)) "${reqs:-0}")" >> "$RESULTS"
  printf '  %-9s keep-alive  %10s req/s\n' "$1" "${rps:-?}"
}

handshakes() { # name pid port proto
  local out="$WORK/$1-hs-$4.out" t0 t1 n rps failed
  t0=$(cpu_ticks "$2")
  local bound=(-t "$SECS" -n 1000000)
  [ -z "$SMOKE" ] || bound=(-n "$SMOKE")
  timeout $((SECS * 6 + 30)) ab -q -c64 "${bound[@]}" -f "$4" "https://127.0.0.1:$3/600b.html" > "$out" 2>&1 || true
  t1=$(cpu_ticks "$2")
  rps=$(awk '/^Requests per second:/ {print $4}' "$out")
  n=$(awk '/^Complete requests:/ {print $3}' "$out")
  failed=$(awk '/^Failed requests:/ {print $3}' "$out")
  printf 'new TLS conn/request %s\t%s\t%s\t%s\n' "$4" "$1" "${rps:-0}" "$(us_per $((t1 - t0)) "${n:-0}")" >> "$RESULTS"
  printf '  %-9s handshakes %s %10s /s  (%s done, %s failed)\n' "$1" "$4" "${rps:-?}" "${n:-?}" "${failed:-?}"
}

bigfile() { # name pid port --http1.1|--http2: BIG_RUNS downloads one after another
  local t0 t1 secs=0 s i
  t0=$(cpu_ticks "$2")
  for i in $(seq "$BIG_RUNS"); do
    s=$(curl -fsS "$4" --cacert "$WORK/cert.pem" -o /dev/null -w '%{time_total}' "https://localhost:$3/big.bin")
    secs=$(awk -v a="$secs" -v b="$s" 'BEGIN {print a + b}')
  done
  t1=$(cpu_ticks "$2")
  printf '%s MiB download %s\t%s\t%s\t%s\n' "$BIG_MIB" "${4#--}" "$1" "$(awk -v s="$secs" -v n="$((BIG_MIB * BIG_RUNS))" 'BEGIN {printf "%.0f", n / s}')" "$(us_per $((t1 - t0)) $((BIG_MIB * BIG_RUNS)))" >> "$RESULTS"
  printf '  %-9s %s MiB %s x%s in %s s\n' "$1" "$BIG_MIB" "${4#--}" "$BIG_RUNS" "$secs"
}

h2small() { # name pid port
  local out="$WORK/$1-h2.out" t0 t1 n rps
  t0=$(cpu_ticks "$2")
  local bound=(-D "$SECS")
  [ -z "$SMOKE" ] || bound=(-n "$SMOKE")
  timeout $((SECS + 30)) h2load -t1 -c64 -m10 "${bound[@]}" "https://127.0.0.1:$3/600b.html" > "$out" 2>&1 || true
  t1=$(cpu_ticks "$2")
  rps=$(awk '/^finished in/ {print $4}' "$out")
  n=$(awk '/^requests:/ {print $8}' "$out")
  if ! grep -q "Application protocol: h2" "$out"; then echo "  $1: h2 not negotiated" >&2; fi
  printf 'h2 600B c64 m10\t%s\t%s\t%s\n' "$1" "${rps:-0}" "$(us_per $((t1 - t0)) "${n:-0}")" >> "$RESULTS"
  printf '  %-9s h2 %10s req/s  (%s succeeded)\n' "$1" "${rps:-?}" "${n:-?}"
}

if want keepalive; then
  if [ -n "$SMOKE" ]; then step "HTTPS/1.1 keep-alive, 600 B, h2load --h1 -c8 -n $SMOKE"; else step "HTTPS/1.1 keep-alive, 600 B, wrk -t1 -c64, ${SECS}s"; fi
  for name in $SERVERS; do keepalive "$name" "${PID[$name]}" "${PORT[$name]}"; done
fi
if want handshakes; then
  step "a new TLS connection per request, ab -c64"
  for proto in TLS1.3 TLS1.2; do
    for name in $SERVERS; do handshakes "$name" "${PID[$name]}" "${PORT[$name]}" "$proto"; done
  done
fi
if want h2; then
  step "HTTP/2, 600 B, h2load -c64 -m10, $([ -n "$SMOKE" ] && echo "-n $SMOKE" || echo "${SECS}s")"
  for name in $SERVERS; do h2small "$name" "${PID[$name]}" "${PORT[$name]}"; done
fi
if want big; then
  step "$BIG_MIB MiB downloads, $BIG_RUNS one after another"
  for proto in --http1.1 --http2; do
    for name in $SERVERS; do bigfile "$name" "${PID[$name]}" "${PORT[$name]}" "$proto"; done
  done
fi

mkdir -p "$SYSNET_ROOT/target/bench"
cp "$RESULTS" "$SYSNET_ROOT/target/bench/https.tsv"
step "results (rate: req/s, handshakes/s or MiB/s; CPU µs per request, handshake or MiB; ratios to the faster peer, CPU to the cheaper)"
awk -F'\t' '
  NR == 1 { next }
  { rate[$1, $2] = $3; cpu[$1, $2] = $4; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
  END {
    printf "%-28s %10s %10s %10s %7s %9s %9s %9s %7s\n", "case", "capstone", "nginx", "lighttpd", "ratio", "cap CPU", "ngx CPU", "ltd CPU", "ratio"
    for (i = 1; i <= n; i++) {
      c = order[i]
      best = 0; cheap = 0
      if (rate[c, "nginx"] > best) best = rate[c, "nginx"]
      if (rate[c, "lighttpd"] > best) best = rate[c, "lighttpd"]
      if (cpu[c, "nginx"] > 0) cheap = cpu[c, "nginx"]
      if (cpu[c, "lighttpd"] > 0 && (cheap == 0 || cpu[c, "lighttpd"] < cheap)) cheap = cpu[c, "lighttpd"]
      r = (best > 0) ? rate[c, "capstone"] / best : 0
      q = (cheap > 0) ? cpu[c, "capstone"] / cheap : 0
      printf "%-28s %10s %10s %10s %6.2fx %9s %9s %9s %6.2fx\n", c, rate[c, "capstone"], rate[c, "nginx"], rate[c, "lighttpd"], r, cpu[c, "capstone"], cpu[c, "nginx"], cpu[c, "lighttpd"], q
    }
  }' "$RESULTS"
