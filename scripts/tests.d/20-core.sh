#!/usr/bin/env bash
# The socket core against a real peer: chat and echo under every concurrency model,
# driven by netcat-openbsd (`nc`) clients, plus --help on every binary. The cargo
# tests cover the limits; this checks that an ordinary client sees what a user would.
set -Eeuo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$SYSNET_ROOT"

need_pkgs netcat-openbsd procps
cargo build -q -p servers --bin chat --bin echo --bin loadgen
BIN=target/debug
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
# A command that fails outside an explicit check still says which, and what the
# servers logged.
on_err() {
  echo "FAIL: line $1: '$2' exited $3" >&2
  local f
  for f in "$TMP"/*.log; do [ -e "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
}
trap 'on_err "$LINENO" "$BASH_COMMAND" "$?"' ERR

for b in chat echo loadgen; do
  "$BIN/$b" --help | grep -q "Example" || fail "$b --help has no example"
done

# start NAME ARGS...: start a server on port 0, wait for its address; sets ADDR, PORT
start() {
  local name=$1; shift
  "$BIN/$name" --listen 127.0.0.1:0 "$@" 2>"$TMP/$name.log" &
  PIDS+=($!)
  SRV_PID=$!
  local i
  for i in $(seq 100); do
    ADDR=$(sed -n 's/.*listening addr=\([^ ]*\).*/\1/p' "$TMP/$name.log" | head -1)
    [ -n "$ADDR" ] && { PORT=${ADDR##*:}; return 0; }
    sleep 0.05
  done
  fail "$name never logged its address: $(cat "$TMP/$name.log")"
}

stop() {
  kill -TERM "$SRV_PID"
  local i
  for i in $(seq 100); do
    kill -0 "$SRV_PID" 2>/dev/null || { wait "$SRV_PID" 2>/dev/null && return 0; fail "server exited non-zero after SIGTERM"; }
    sleep 0.05
  done
  fail "server did not stop within 5 s of SIGTERM"
}

for model in threads pool select poll epoll; do
  step "echo --io $model with nc"
  start echo --io "$model"
  got=$(printf 'hello over %s\n' "$model" | nc -N 127.0.0.1 "$PORT")
  [ "$got" = "hello over $model" ] || fail "echo $model answered '$got'"
  head -c 300000 /dev/urandom >"$TMP/blob"
  nc -N 127.0.0.1 "$PORT" <"$TMP/blob" >"$TMP/blob.back"
  cmp -s "$TMP/blob" "$TMP/blob.back" || fail "echo $model: 300 kB of random bytes came back different"
  stop

  step "chat --io $model with nc"
  start chat --io "$model"
  # A listener that stays connected long enough to hear the talker.
  (sleep 1.5) | nc -N 127.0.0.1 "$PORT" >"$TMP/listener.out" &
  lpid=$!
  sleep 0.5
  printf '/nick alice\nhi from nc\n/quit\n' | nc -N 127.0.0.1 "$PORT" >"$TMP/talker.out"
  wait "$lpid" || true
  grep -q "is now alice" "$TMP/listener.out" || fail "chat $model: rename not announced: $(cat "$TMP/listener.out")"
  grep -q "^alice: hi from nc" "$TMP/listener.out" || fail "chat $model: line not relayed: $(cat "$TMP/listener.out")"
  grep -q "alice left" "$TMP/listener.out" || fail "chat $model: leave not announced"
  grep -q "^\* bye" "$TMP/talker.out" || fail "chat $model: /quit not acknowledged"
  stop
done
step "core: nc checks passed"
