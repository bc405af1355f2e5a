#!/usr/bin/env bash
# What one cached small-file request costs the capstone and lighttpd, counted rather
# than timed, so the figures repeat on a busy machine:
#
#   scripts/bench/profile-request.sh [--help] [TOOL...]
#
# TOOL is one or more of
#   callgrind  user-space instructions per request (valgrind --tool=callgrind, counters
#              zeroed after a warm-up and dumped after the counted run) and the
#              functions they go to (callgrind_annotate, exclusive counts)
#   strace     system calls per request (strace -c -f on the running server)
#   sched      system calls, epoll_waits and context switches per request without
#              ptrace (perf stat on the syscall and scheduler tracepoints): strace
#              stops the server at every call, which changes how many ready
#              connections one epoll_wait returns; this load is ab -k -c SCHED_C
#   perf       where the CPU time goes, user and kernel (perf record -e cpu-clock
#              during a wrk run; this one is sampled, so it moves a little)
# (default: callgrind strace). With lighttpd in the run, the summary also gives the
# others' figures as a ratio to its own.
#
# Each server serves one FILE_SIZE-byte HTML file; the client is `ab -k` (HTTP/1.0
# keep-alive, C connections, N requests after WARM warm-up requests), and `wrk -t1
# -c64` (HTTP/1.1) for perf. The capstone runs in one process with one loop
# (`processes = 0`, `workers = 1`), otherwise as scripts/bench/capstone.sh configures
# it (metrics on, precompressed on); lighttpd with capstone.sh's configuration.
#
# httpd (`--io epoll --precompressed`, as scripts/bench/http.sh runs it) may be added
# to SERVERS.
#
# PROTO picks what the requests speak: h1 (the default, as above), h2c (HTTP/2 with
# prior knowledge on plain TCP) or h2 (HTTP/2 over TLS 1.3, ALPN h2, one ECDSA P-256
# certificate from `openssl req` for both servers). Both HTTP/2 modes are driven by
# `h2load -c H2_C -m H2_M` (4 connections, 10 streams each), for callgrind and strace
# alike; lighttpd runs with `server.h2proto` (and mod_openssl for h2), httpd is left
# out. The figures are per request, the handshakes of the H2_C connections included.
#
# Environment: CAPSTONE and HTTPD (binaries to profile instead of building this
# tree's), SERVERS ("capstone lighttpd"), N (20000), C (16), WARM (2000),
# METRICS (on|off, on), FILE_SIZE (600), PORT (19650; lighttpd PORT+1, httpd
# PORT+2), TOP (20 functions shown), PERF_SECS (4), SCHED_C (64), PROTO (h1), H2_C
# (4), H2_M (10), OUT (raw outputs kept there; default a temporary directory that is
# removed).
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "$(dirname "$0")/lib.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
TOOLS=()
for a in "$@"; do
  case $a in
    -h | --help) usage; exit 0 ;;
    callgrind | strace | sched | perf) TOOLS+=("$a") ;;
    *) echo "unknown argument: $a (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#TOOLS[@]} -gt 0 ] || TOOLS=(callgrind strace)

SERVERS=${SERVERS:-"capstone lighttpd"}
N=${N:-20000}
C=${C:-16}
WARM=${WARM:-2000}
METRICS=${METRICS:-on}
FILE_SIZE=${FILE_SIZE:-600}
PORT=${PORT:-19650}
TOP=${TOP:-20}
PERF_SECS=${PERF_SECS:-4}
SCHED_C=${SCHED_C:-64}
PROTO=${PROTO:-h1}
H2_C=${H2_C:-4}
H2_M=${H2_M:-10}
case $PROTO in
  h1) ;;
  h2c | h2)
    SERVERS=$(printf '%s\n' $SERVERS | grep -vx httpd | tr '\n' ' ' || true)
    for t in "${TOOLS[@]}"; do
      case $t in callgrind | strace) ;; *) echo "PROTO=$PROTO: only callgrind and strace" >&2; exit 2 ;; esac
    done
    ;;
  *) echo "PROTO must be h1, h2c or h2" >&2; exit 2 ;;
esac

need_pkgs valgrind strace apache2-utils lighttpd wrk curl
case $PROTO in
  h2c) need_pkgs nghttp2-client ;;
  h2) need_pkgs nghttp2-client openssl lighttpd-mod-openssl ;;
esac
for t in "${TOOLS[@]}"; do
  case $t in perf | sched) command -v perf >/dev/null || need_pkgs linux-perf ;; esac
done

cd "$SYSNET_ROOT"
if [ -z "${CAPSTONE:-}" ] || { [[ " $SERVERS " == *" httpd "* ]] && [ -z "${HTTPD:-}" ]; }; then
  step "building capstone and httpd (release)"
  cargo build --release --locked --bin capstone --bin httpd -q
fi
CAPSTONE=${CAPSTONE:-$SYSNET_ROOT/target/release/capstone}
HTTPD=${HTTPD:-$SYSNET_ROOT/target/release/httpd}

if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  KEEP=1
else
  OUT=$(mktemp -d /tmp/profile-request.XXXXXX)
  KEEP=0
fi
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  [ "$KEEP" = 1 ] || rm -rf "$OUT"
}
trap cleanup EXIT

DOCROOT="$OUT/www"
mkdir -p "$DOCROOT"
head -c "$FILE_SIZE" /dev/urandom | base64 -w 76 | head -c "$FILE_SIZE" > "$DOCROOT/file.html"
URL_PATH=/file.html

metrics_path=/metrics
[ "$METRICS" = on ] || metrics_path=
SCHEME=http
CAP_LISTEN="\"127.0.0.1:$PORT\""
CAP_TLS=
LTD_TLS=
LTD_H2=
if [ "$PROTO" != h1 ]; then
  LTD_H2='server.feature-flags += ( "server.h2proto" => "enable" )'
fi
if [ "$PROTO" = h2 ]; then
  SCHEME=https
  openssl req -x509 -nodes -days 30 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null
  CAP_LISTEN="{ addr = \"127.0.0.1:$PORT\", tls = true }"
  CAP_TLS="[tls]
cert = \"$OUT/cert.pem\"
key = \"$OUT/key.pem\""
  LTD_TLS="server.modules += ( \"mod_openssl\" )
ssl.engine = \"enable\"
ssl.pemfile = \"$OUT/cert.pem\"
ssl.privkey = \"$OUT/key.pem\"
ssl.openssl.ssl-conf-cmd = ( \"MinProtocol\" => \"TLSv1.3\" )"
fi
cat > "$OUT/capstone.toml" <<CONF
listen = [$CAP_LISTEN]
root = "$DOCROOT"
processes = 0
workers = 1
accept = "fill"
max_clients = 20000
status_path = ""
metrics_path = "$metrics_path"
precompressed = true
[timeouts]
idle = 60
$CAP_TLS
CONF
lighttpd_conf "$OUT/lighttpd.conf" "$DOCROOT" $((PORT + 1)) "$OUT/lighttpd-error.log" 60 30000 15000
printf '%s\n%s\n' "$LTD_H2" "$LTD_TLS" >> "$OUT/lighttpd.conf"

port_of() {
  case $1 in
    capstone) echo "$PORT" ;;
    lighttpd) echo $((PORT + 1)) ;;
    httpd) echo $((PORT + 2)) ;;
  esac
}
server_cmd() {
  case $1 in
    capstone) echo "$CAPSTONE --config $OUT/capstone.toml" ;;
    httpd) echo "$HTTPD --listen 127.0.0.1:$(port_of httpd) --root $DOCROOT --io epoll --precompressed" ;;
    lighttpd) echo "lighttpd -D -f $OUT/lighttpd.conf" ;;
  esac
}

# start NAME [WRAPPER...]: the server in the background (under WRAPPER), its pid in
# SERVER_PID, once it answers.
start() {
  local name=$1 i
  shift
  # shellcheck disable=SC2046
  RUST_LOG=warn "$@" $(server_cmd "$name") >"$OUT/$name.stdout" 2>"$OUT/$name.stderr" &
  SERVER_PID=$!
  for i in $(seq 1 300); do
    curl -kfsS -o /dev/null "$SCHEME://127.0.0.1:$(port_of "$name")$URL_PATH" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$name never answered on port $(port_of "$name"); its stderr:" >&2
  cat "$OUT/$name.stderr" >&2
  return 1
}
stop() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
# drive NAME COUNT [CONNS]: COUNT keep-alive requests from ab over CONNS (C)
# connections (HTTP/2: h2load over H2_C connections, H2_M streams each); fails
# unless all succeeded.
drive() {
  local out="$OUT/ab-$1-$2.txt"
  if [ "$PROTO" != h1 ]; then
    out="$OUT/h2load-$1-$2.txt"
    h2load -n "$2" -c "$H2_C" -m "$H2_M" "$SCHEME://127.0.0.1:$(port_of "$1")$URL_PATH" > "$out" 2>&1 || true
    grep -q "^requests: $2 total, $2 started, $2 done, $2 succeeded" "$out" \
      && { [ "$PROTO" = h2c ] || grep -q "Application protocol: h2" "$out"; } \
      || { echo "h2load against $1 failed:" >&2; cat "$out" >&2; return 1; }
    return 0
  fi
  ab -q -k -n "$2" -c "${3:-$C}" "http://127.0.0.1:$(port_of "$1")$URL_PATH" > "$out" 2>&1
  grep -q '^Failed requests: *0$' "$out" && grep -q "^Complete requests: *$2\$" "$out" \
    || { echo "ab against $1 failed:" >&2; cat "$out" >&2; return 1; }
}

SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"

run_callgrind() {
  local name=$1 dump total
  step "$name: callgrind, $N requests ($PROTO) after $WARM"
  start "$name" valgrind --tool=callgrind --callgrind-out-file="$OUT/cg-$name.out" \
    --dump-instr=no --collect-systime=no
  drive "$name" "$WARM"
  callgrind_control -z "$SERVER_PID" >/dev/null
  drive "$name" "$N"
  callgrind_control -d "$SERVER_PID" >/dev/null
  stop
  # The dump made on request is numbered; the one at exit (the shutdown) is not.
  dump=$(ls "$OUT/cg-$name.out".* 2>/dev/null | sort -V | tail -1)
  [ -n "$dump" ] || { echo "no callgrind dump for $name" >&2; return 1; }
  total=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
  awk -v t="$total" -v n="$N" 'BEGIN {printf "%.0f\n", t / n}' > "$OUT/instr-$name"
  printf '%-9s user-space instructions per request: %s\n' "$name" "$(cat "$OUT/instr-$name")" \
    | tee -a "$SUMMARY"
  # Exclusive counts per function (inlined code counted where it was inlined),
  # per request; the thread entry points that show the whole run are left out.
  callgrind_annotate --inclusive=no --threshold=100 --auto=no "$dump" 2>/dev/null \
    | awk -v n="$N" '
        /file:function/ {go = 1; next}
        go && /^ *[0-9,]+ \(/ {
          c = $1; gsub(",", "", c)
          if (c / n > 0.5 * total_per) next
          rest = substr($0, index($0, ")") + 2)
          sub(/ \[[^]]*\]$/, "", rest)
          fn = rest; sub(/^[^:]*:/, "", fn)
          cost[fn] += c
        }
        /PROGRAM TOTALS/ {t = $1; gsub(",", "", t); total_per = t / n}
        END {for (f in cost) printf "%9.0f  %s\n", cost[f] / n, f}' \
    | sort -rn | head -n "$TOP" | sed 's/^/  /' | tee -a "$SUMMARY"
}

run_strace() {
  local name=$1 spid
  step "$name: strace -c, $N requests ($PROTO) after $WARM"
  start "$name"
  drive "$name" "$WARM"
  strace -f -c -o "$OUT/strace-$name.txt" -p "$SERVER_PID" 2>/dev/null &
  spid=$!
  sleep 1
  drive "$name" "$N"
  sleep 0.5
  kill -INT "$spid"
  wait "$spid" 2>/dev/null || true
  stop
  printf '%-9s system calls per request:' "$name" | tee -a "$SUMMARY"
  awk -v n="$N" '
    $1 ~ /^[0-9.]+$/ && NF >= 5 {
      calls = $4; name = $NF
      if (name != "total" && calls / n >= 0.001) printf " %s %.3f", name, calls / n
      if (name == "total") tot = calls / n
    }
    END {printf "  (total %.3f)\n", tot}' "$OUT/strace-$name.txt" | tee -a "$SUMMARY"
  awk -v n="$N" '$NF == "total" {printf "%.3f\n", $4 / n}' "$OUT/strace-$name.txt" \
    > "$OUT/calls-$name"
}

run_sched() {
  local name=$1 spid
  step "$name: perf stat (tracepoints), $N requests (ab -k -c$SCHED_C) after $WARM"
  start "$name"
  drive "$name" "$WARM" "$SCHED_C"
  perf stat -x, -o "$OUT/sched-$name.txt" -p "$SERVER_PID" \
    -e raw_syscalls:sys_enter,syscalls:sys_enter_epoll_wait,context-switches &
  spid=$!
  sleep 0.5
  drive "$name" "$N" "$SCHED_C"
  kill -INT "$spid"
  wait "$spid" 2>/dev/null || true
  stop
  awk -F, -v n="$N" -v name="$name" -v c="$SCHED_C" '
    $1 ~ /^[0-9]+$/ {v[$3] = $1 / n}
    END {
      printf "%-9s system calls per request (no ptrace, c%d): %.3f (epoll_wait %.3f), context switches %.3f\n",
        name, c, v["raw_syscalls:sys_enter"], v["syscalls:sys_enter_epoll_wait"], v["context-switches"]
    }' "$OUT/sched-$name.txt" | tee -a "$SUMMARY"
}

# ratio WHAT FILE_PREFIX: the capstone's and httpd's figures over lighttpd's, when
# both were taken.
ratio() {
  local s
  for s in capstone httpd; do
    [ -s "$OUT/$2-$s" ] && [ -s "$OUT/$2-lighttpd" ] || continue
    awk -v a="$(cat "$OUT/$2-$s")" -v b="$(cat "$OUT/$2-lighttpd")" -v w="$1" -v s="$s" \
      'BEGIN {if (b > 0) printf "%s / lighttpd, %s per request: %.2fx\n", s, w, a / b}' \
      >> "$SUMMARY"
  done
}

run_perf() {
  local name=$1 reqs
  step "$name: perf record -e cpu-clock, wrk -t1 -c64 for ${PERF_SECS}s"
  start "$name"
  wrk -t1 -c64 -d"$((PERF_SECS + 1))s" "http://127.0.0.1:$(port_of "$name")$URL_PATH" > "$OUT/wrk-$name.txt" 2>&1 &
  local wpid=$!
  sleep 0.5
  perf record -q -e cpu-clock -p "$SERVER_PID" -o "$OUT/perf-$name.data" -- sleep "$PERF_SECS" >/dev/null 2>&1
  wait "$wpid" || true
  stop
  reqs=$(awk '/requests in/ {print $1}' "$OUT/wrk-$name.txt")
  {
    echo "$name: perf, wrk $reqs requests; share of samples by user/kernel, then top symbols"
    perf report -i "$OUT/perf-$name.data" --stdio --sort sym 2>/dev/null \
      | awk -v top="$TOP" '
          /^ +[0-9.]+%/ {
            p = $1; sub("%", "", p)
            if ($2 == "[k]") k += p; else u += p
            if (shown < top) {lines[shown++] = "  " $0}
          }
          END {
            printf "  kernel %.1f%%  user %.1f%%\n", k, u
            for (i = 0; i < shown; i++) print lines[i]
          }'
  } | tee -a "$SUMMARY"
}

for tool in "${TOOLS[@]}"; do
  for name in $SERVERS; do
    "run_$tool" "$name"
  done
done

if [ "$PROTO" = h1 ]; then LOAD="ab -k -c$C"; else LOAD="$PROTO, h2load -c$H2_C -m$H2_M"; fi
step "summary ($N requests of a $FILE_SIZE-byte file, $LOAD; metrics $METRICS)"
ratio "user-space instructions" instr
ratio "system calls" calls
grep -E 'per request|^[a-z]+: perf' "$SUMMARY"
[ "$KEEP" = 1 ] && echo "raw outputs in $OUT"
exit 0
