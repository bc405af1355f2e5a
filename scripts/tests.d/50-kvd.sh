#!/usr/bin/env bash
# kvd under the real Redis load tool: `redis-benchmark -q -n 100000` against a release
# kvd must run clean, and the INCR counter must survive kill -9. (The end-to-end suite
# with redis-server and redis-cli runs in `cargo test`; scripts/test.sh installs them.)
# Then redis-py 5 (Debian ships 4.3, without protocol=3), pinned, in a virtualenv under
# $SYSNET_CACHE/redis-py5, which the RESP3 client test finds there; it is run here
# once more so that the first run, before the virtualenv existed, checks it too.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$SYSNET_ROOT"

need_pkgs redis-server redis-tools procps util-linux python3-redis python3-venv

REDIS_PY_VERSION=5.0.8
venv="$SYSNET_CACHE/redis-py5"
if ! "$venv/bin/python" -c "import redis, sys; sys.exit(redis.__version__ != '$REDIS_PY_VERSION')" 2>/dev/null; then
  step "redis-py $REDIS_PY_VERSION in $venv"
  rm -rf "$venv"
  mkdir -p "$SYSNET_CACHE"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "redis==$REDIS_PY_VERSION"
fi
step "kvd: redis-py $REDIS_PY_VERSION with protocol=3"
out=$(KVD_REDIS_PY="$venv/bin/python" cargo test -q --locked -p servers --test kvd_resp3 \
  redis_py_protocol_3 -- --nocapture 2>&1) || { echo "$out" >&2; exit 1; }
if echo "$out" | grep -q SKIP || ! echo "$out" | grep -q '1 passed'; then
  echo "$out" >&2
  echo "the redis-py RESP3 test did not run" >&2
  exit 1
fi
# The same for redis-py's Lock (its scripts go through EVALSHA, then EVAL on NOSCRIPT):
# inside `cargo test` on a new machine it found no Python with redis-py and skipped.
step "kvd: redis-py $REDIS_PY_VERSION Lock (EVALSHA, EVAL)"
out=$(KVD_REDIS_PY="$venv/bin/python" cargo test -q --locked -p servers --test kvd_script \
  redis_py_lock -- --nocapture 2>&1) || { echo "$out" >&2; exit 1; }
if echo "$out" | grep -q SKIP || ! echo "$out" | grep -q '1 passed'; then
  echo "$out" >&2
  echo "the redis-py Lock test did not run" >&2
  exit 1
fi

step "kvd: redis-benchmark -q -n 100000"
cargo build --release --locked --bin kvd -q
dir=$(mktemp -d /tmp/kvd-test.XXXXXX)
log="$dir.log"
RUST_LOG=info target/release/kvd --listen 127.0.0.1:0 --dir "$dir" >"$log" 2>&1 &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir" "$log"' EXIT
port=
for _ in $(seq 200); do
  port=$(sed -n 's/.*listening addr=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { cat "$log"; echo "kvd did not start" >&2; exit 1; }

out=$(timeout 300 redis-benchmark -p "$port" -q -n 100000 -t ping,set,get,incr,mset 2>&1 | tr '\r' '\n')
echo "$out" | grep 'requests per second'
if echo "$out" | grep -Eiq 'error|unexpected|closed'; then
  echo "redis-benchmark reported errors:" >&2
  echo "$out" | grep -Ei 'error|unexpected|closed' >&2
  exit 1
fi
[ "$(echo "$out" | grep -c 'requests per second')" -ge 6 ] || { echo "missing results" >&2; exit 1; }
# Every benchmark write went through the log: the counter survives a restart.
before=$(redis-cli -p "$port" get counter:__rand_int__)
kill -9 $pid
wait $pid 2>/dev/null || true
: >"$log"
RUST_LOG=info target/release/kvd --listen 127.0.0.1:0 --dir "$dir" >"$log" 2>&1 &
pid=$!
port=
for _ in $(seq 600); do
  port=$(sed -n 's/.*listening addr=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
  [ -n "$port" ] && break
  sleep 0.05
done
after=$(redis-cli -p "$port" get counter:__rand_int__)
[ "$before" = "$after" ] && [ "$after" = "100000" ] || { echo "counter $before before, $after after restart" >&2; exit 1; }
echo "kvd: redis-benchmark clean; INCR counter 100000 survived kill -9"
