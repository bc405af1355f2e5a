#!/usr/bin/env bash
# Redis's own test suite as kvd's conformance harness: the Tcl suite of the Redis
# version Debian ships (from Debian's source package, cached by version), run in
# external-server mode against kvd and against redis-server, both started with the
# same flags on free loopback ports. Prints tests passed per unit side by side and the
# overall ratio kvd/redis.
#
#   scripts/conformance/redis.sh                  every unit
#   UNITS="multi pubsub" scripts/conformance/redis.sh
#   KVD=target/debug/kvd UNIT_TIMEOUT=60 scripts/conformance/redis.sh
#
# Environment: UNITS (names under tests/unit/, default the list below), SUITE_DIR (a
# Redis source tree to take the suite from instead of the cached one), KVD (a kvd
# binary; default: build target/release/kvd), UNIT_TIMEOUT (seconds per unit and
# server, default 240), KEEP_LOGS=1 (keep the runtest output in $OUT, printed at the
# end), MIN_RATIO (exit 1 when kvd passes less than this share of redis's passes,
# e.g. 0.95; default: report only), BASEPORT (runtest's --baseport; default: one of 150
# ranges, picked by the process id, so that concurrent runs do not collide).
#
# A unit "ran to its end" when runtest reached its "[done]" line within the time
# bound. The suite runs with --durable (an unexpected error inside one test is that
# test's failure, not the end of the unit) and --singledb (kvd has one database).
# Tests that need DEBUG, replication, RDB or HyperLogLog debugging are skipped by
# their tags, for both servers alike. The RESP3 variants run (kvd speaks RESP3 after
# HELLO 3, as redis-server does).
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$SYSNET_ROOT"

DEFAULT_UNITS="type/string type/incr type/hash type/list type/set type/zset keyspace expire protocol multi pubsub info-command scan quit sort"
UNITS=${UNITS:-$DEFAULT_UNITS}
UNIT_TIMEOUT=${UNIT_TIMEOUT:-240}
DENY_TAGS="-needs:debug -needs:repl -needs:save -needs:pfdebug"
# runtest's own port (for its test clients) is looked for just below --baseport (21111
# by default): two runs at once on one machine would race for it, so each run takes
# a range of its own.
BASEPORT=${BASEPORT:-$((21111 + 64 * ($$ % 150)))}

need_pkgs redis-server redis-tools tcl dpkg-dev python3

# --- the suite, from the source package of the installed redis-server --------------
ver=$(dpkg-query -W -f='${source:Version}' redis-server)
src_pkg=$(dpkg-query -W -f='${source:Package}' redis-server)
cache="$SYSNET_CACHE/redis-src/$ver"
suite=${SUITE_DIR:-$(find "$cache" -maxdepth 2 -name runtest -printf '%h\n' 2>/dev/null | head -1 || true)}
if [ -z "$suite" ]; then
  step "fetching the source of $src_pkg $ver (Debian source package)"
  if ! apt-cache showsrc "$src_pkg" 2>/dev/null | grep -q "^Version: $ver\$"; then
    # Enable deb-src for the suites already configured for binary packages.
    srcfile=/etc/apt/sources.list.d/sysnet-deb-src.sources
    if [ ! -e "$srcfile" ]; then
      [ "$(id -u)" -eq 0 ] || { echo "need root to enable deb-src ($srcfile)" >&2; exit 1; }
      if [ -e /etc/apt/sources.list.d/debian.sources ]; then
        sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$srcfile"
      else
        grep -h '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' \
          >"${srcfile%.sources}.list"
      fi
    fi
    apt-get -q -o DPkg::Lock::Timeout=900 update >/dev/null
  fi
  mkdir -p "$cache.part"
  (cd "$cache.part" && apt-get source -q "$src_pkg=$ver" >/dev/null 2>&1) || {
    echo "apt-get source $src_pkg=$ver failed" >&2
    exit 1
  }
  rm -rf "$cache" && mv "$cache.part" "$cache"
  suite=$(find "$cache" -maxdepth 2 -name runtest -printf '%h\n' | head -1)
fi
[ -n "$suite" ] || { echo "no runtest in $cache" >&2; exit 1; }

# --- the servers -----------------------------------------------------------------
if [ -z "${KVD:-}" ]; then
  step "building kvd (release)"
  cargo build --release --locked --bin kvd -q
  KVD="$SYSNET_ROOT/target/release/kvd"
fi
KVD=$(realpath "$KVD")

OUT=$(mktemp -d /tmp/kvd-conformance.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $OUT"; else rm -rf "$OUT"; fi
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
  local port=$1 i
  for i in $(seq 200); do
    redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && return 0
    sleep 0.05
  done
  echo "nothing answers PING on port $port" >&2
  return 1
}

# Both servers keep an append-only log, fsynced every second, in a fresh directory,
# and both are started afresh for each unit: a unit's CONFIG SETs (external-server
# mode never undoes them) must not reach the next one.
start_redis() {
  local port=$1 dir=$OUT/redis-data.$1
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' \
    --appendonly yes --appendfsync everysec --daemonize no \
    >>"$OUT/redis-server.log" 2>&1 &
  SERVER_PID=$!
  pids=("$SERVER_PID")
  wait_port "$port"
}

start_kvd() {
  local port=$1 dir=$OUT/kvd-data.$1
  mkdir -p "$dir"
  "$KVD" --listen "127.0.0.1:$port" --dir "$dir" --appendfsync everysec \
    >>"$OUT/kvd.log" 2>&1 &
  SERVER_PID=$!
  pids=("$SERVER_PID")
  wait_port "$port"
}

stop_server() {
  pids=()
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  rm -rf "$OUT/redis-data.$2" "$OUT/kvd-data.$2"
}

# run_unit SERVER PORT UNIT: prints "PASSED FAILED COMPLETE(1/0) SECONDS".
run_unit() {
  local server=$1 port=$2 unit=$3 log t0 t1 ok err done
  log="$OUT/$server.${unit//\//_}.out"
  t0=$(date +%s)
  (cd "$suite" && timeout -k 5 "$UNIT_TIMEOUT" ./runtest --host 127.0.0.1 --port "$port" \
    --baseport "$BASEPORT" --singledb --durable --tags "$DENY_TAGS" --single "unit/$unit" \
    --timeout 60) \
    >"$log" 2>&1 </dev/null || true
  t1=$(date +%s)
  ok=$(grep -c '^\[.*ok.*\]: ' "$log" || true)
  err=$(grep -cE '^\[.*(err|exception).*\]: ' "$log" || true)
  done=0
  grep -qE "\[.*done.*\]: unit/$unit " "$log" && done=1
  echo "$ok $err $done $((t1 - t0))"
}

step "redis-server $ver and kvd, started afresh for each unit on free loopback ports"
started=$(date +%s)
rows=()
tot_r=0 tot_k=0 incomplete=0
for unit in $UNITS; do
  port=$(free_port)
  start_redis "$port"
  read -r r_ok r_err r_done r_secs < <(run_unit redis "$port" "$unit")
  stop_server "$SERVER_PID" "$port"
  port=$(free_port)
  start_kvd "$port"
  read -r k_ok k_err k_done k_secs < <(run_unit kvd "$port" "$unit")
  stop_server "$SERVER_PID" "$port"
  [ "$k_done" = 1 ] || incomplete=$((incomplete + 1))
  tot_r=$((tot_r + r_ok))
  tot_k=$((tot_k + k_ok))
  rows+=("$(printf '%-18s %7s %7s %5s %6s %7s %7s %5s %6s' "$unit" \
    "$r_ok" "$r_err" "$([ "$r_done" = 1 ] && echo yes || echo NO)" "${r_secs}s" \
    "$k_ok" "$k_err" "$([ "$k_done" = 1 ] && echo yes || echo NO)" "${k_secs}s")")
  printf '  %-16s redis %4s passed, kvd %4s passed\n' "$unit" "$r_ok" "$k_ok"
done
elapsed=$(( $(date +%s) - started ))

echo
printf '%-18s %31s   %31s\n' "" "------------ redis-server ------" "------------- kvd --------------"
printf '%-18s %7s %7s %5s %6s %7s %7s %5s %6s\n' unit passed failed end time passed failed end time
for r in "${rows[@]}"; do echo "$r"; done
ratio=$(python3 -c "print(f'{$tot_k / max($tot_r, 1):.3f}')")
printf '%-18s %7s %7s %5s %6s %7s\n' total "$tot_r" "" "" "" "$tot_k"
echo
echo "kvd passes $tot_k of the $tot_r tests redis-server $ver passes (ratio $ratio);" \
  "units not run to their end on kvd: $incomplete; ${elapsed}s in all"
if [ "${KEEP_LOGS:-0}" = 1 ]; then
  echo "failed kvd tests:"
  grep -hE '^\[.*(err|exception).*\]: ' "$OUT"/kvd.*.out | sed 's/\x1b\[[0-9;]*m//g' | head -200 || true
fi
if [ -n "${MIN_RATIO:-}" ]; then
  python3 -c "import sys; sys.exit(0 if $tot_k >= $MIN_RATIO * $tot_r and $incomplete == 0 else 1)" || {
    echo "below MIN_RATIO=$MIN_RATIO (or a unit did not run to its end)" >&2
    exit 1
  }
fi
