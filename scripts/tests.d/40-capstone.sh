#!/usr/bin/env bash
# capstone end to end with real clients: curl and ab against the bundled site, the
# status page, and (as root) the privilege drop: workers chroot and run as nobody.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$SYSNET_ROOT"
need_pkgs curl apache2-utils procps

cargo build -q --locked --bin capstone
BIN=$SYSNET_ROOT/target/debug/capstone
WORK=$(mktemp -d)
PID=
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -QUIT "$PID"; wait "$PID" || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# start_capstone ARGS...: runs it on port 0, sets PID and ADDR from its log.
start_capstone() {
  "$BIN" "$@" 2>"$WORK/err.log" &
  PID=$!
  for _ in $(seq 100); do
    ADDR=$(sed -n 's/.*listening addr=\([0-9.:]*\).*/\1/p' "$WORK/err.log" | head -1)
    [ -n "$ADDR" ] && curl -fsS -o /dev/null "http://$ADDR/status.json" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "capstone did not start:"; cat "$WORK/err.log"; return 1
}

stop_capstone() {
  kill -TERM "$PID"
  local code=0
  wait "$PID" || code=$?
  PID=
  [ "$code" -eq 0 ] || { echo "capstone exited $code after SIGTERM"; cat "$WORK/err.log"; return 1; }
}

fail() { echo "FAIL: $*"; cat "$WORK/err.log"; exit 1; }

echo "-- bundled site, status, ab"
start_capstone --listen 127.0.0.1:0
curl -fsS "http://$ADDR/" | grep -q '<h1>sysnet</h1>' || fail "index page"
curl -fsS -o /dev/null "http://$ADDR/style.css" || fail "stylesheet"
curl -fsS -o /dev/null "http://$ADDR/logo.svg" || fail "logo"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$ADDR/nope")" = 404 ] || fail "404"
ab -q -n 3000 -c 32 -k "http://$ADDR/" >"$WORK/ab.txt" 2>&1 || fail "ab"
grep -q '^Failed requests: *0$' "$WORK/ab.txt" || { cat "$WORK/ab.txt"; fail "ab saw failures"; }
grep -q '^Non-2xx' "$WORK/ab.txt" && fail "ab saw non-2xx"
# The loops publish their counters every 100 ms: give them a moment.
counted=0
for _ in $(seq 20); do
  if curl -fsS "http://$ADDR/status.json" | grep -Eq '"requests_total":([3-9][0-9]{3}|[0-9]{5,})'; then
    counted=1; break
  fi
  sleep 0.1
done
[ "$counted" = 1 ] || fail "status did not count 3000 requests: $(curl -s "http://$ADDR/status.json")"
stop_capstone

echo "-- check-config"
"$BIN" --check-config servers/capstone.example.toml
printf 'workers = 2\nbogus = 1\n' >"$WORK/bad.toml"
if "$BIN" --check-config "$WORK/bad.toml" 2>"$WORK/check.txt"; then fail "bad config accepted"; fi
grep -q 'bad.toml:2: bogus' "$WORK/check.txt" || fail "message: $(cat "$WORK/check.txt")"

if [ "$(id -u)" -ne 0 ]; then
  echo "-- privilege drop: SKIPPED (needs root; scripts/test.sh runs as root on CI)"
  exit 0
fi
echo "-- privilege drop: chroot + user nobody"
JAIL=$WORK/jail
mkdir -p "$JAIL/site"
cp servers/www/* "$JAIL/site/"
chmod -R a+rX "$WORK"
cat >"$WORK/priv.toml" <<CONF
listen = ["127.0.0.1:0"]
root = "/site"
chroot = "$JAIL"
user = "nobody"
processes = 1
workers = 1
CONF
start_capstone --config "$WORK/priv.toml"
curl -fsS "http://$ADDR/" | grep -q '<h1>sysnet</h1>' || fail "page under chroot"
WORKER=$(pgrep -P "$PID" | head -1)
[ -n "$WORKER" ] || fail "no worker process"
uid=$(awk '/^Uid:/ {print $2}' "/proc/$WORKER/status")
[ "$uid" = "$(id -u nobody)" ] || fail "worker uid $uid, want nobody"
groups=$(awk '/^Groups:/ {print $2}' "/proc/$WORKER/status")
[ -z "$groups" ] || [ "$groups" = "$(id -g nobody)" ] || fail "worker kept groups: $groups"
[ "$(readlink "/proc/$WORKER/root")" = "$JAIL" ] || fail "worker root is $(readlink "/proc/$WORKER/root")"
[ "$(awk '/^Uid:/ {print $2}' "/proc/$PID/status")" = 0 ] || fail "master should stay root (it binds on reload)"
stop_capstone
echo "capstone: all checks passed"
