#!/usr/bin/env bash
# Installation as an operator does it: `cargo deb -p servers` builds sysnet_*.deb, apt
# installs it, the installed capstone is started through systemd-socket-activate from
# the installed unit's paths (binary and /etc/sysnet/capstone.toml) and serves its
# bundled site, then `apt remove --purge` leaves none of the package's files behind.
# Also: `cargo install --path servers` and `--path userspace/strace-lite` give working
# binaries. The cargo-deb tool is built once into the cache, outside the clone.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$SYSNET_ROOT"

need_pkgs curl systemd dpkg-dev procps python3

CARGO_DEB_VERSION=3.8.0
TOOLS="$SYSNET_CACHE/tools/cargo-deb-$CARGO_DEB_VERSION"
CARGO_DEB="$TOOLS/bin/cargo-deb"
if [ ! -x "$CARGO_DEB" ]; then
  step "cargo install cargo-deb $CARGO_DEB_VERSION (cached in $TOOLS)"
  cargo install --locked --quiet --root "$TOOLS" --version "$CARGO_DEB_VERSION" cargo-deb
fi

WORK=$(mktemp -d /tmp/sysnet-deb.XXXXXX)
PID=
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -KILL "$PID" || true; fi
  # Never leave the package on the machine, whatever failed.
  if dpkg-query -W -f='${Status}' sysnet 2>/dev/null | grep -q installed; then
    DEBIAN_FRONTEND=noninteractive apt-get remove --purge -y -q sysnet >/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$WORK/err.log" ] && cat "$WORK/err.log" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# fetch URL PATTERN: the body of URL has a line matching PATTERN (read whole first: a
# grep -q that stops early would fail curl's write under pipefail).
fetch() {
  local body
  body=$(curl -fsS "$1") || fail "GET $1"
  grep -q -- "$2" <<<"$body" || fail "GET $1: no ${2@Q} in the answer"
}

# serves ADDR: the bundled site's front page, its logo and the status JSON answer.
serves() {
  local addr=$1
  fetch "http://$addr/" 'capstone -s reload'
  curl -fsS -o /dev/null "http://$addr/logo.svg" || fail "no /logo.svg on $addr"
  fetch "http://$addr/status.json" '"requests_total":'
}

step "cargo deb -p servers"
"$CARGO_DEB" -p servers --locked --strip --quiet >"$WORK/deb.out" || { cat "$WORK/deb.out"; fail "cargo deb"; }
DEB=$(ls -t target/debian/sysnet_*.deb | head -1)
echo "built $DEB ($(du -h "$DEB" | cut -f1))"

step "apt install ./$(basename "$DEB")"
if dpkg-query -W -f='${Status}' sysnet 2>/dev/null | grep -q installed; then
  fail "a sysnet package is installed already: this check installs and purges its own"
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "./$DEB" >/dev/null
dpkg-query -L sysnet >"$WORK/files"
for f in /usr/bin/capstone /usr/bin/kvd /usr/bin/httpd /usr/bin/strace-lite \
  /usr/lib/systemd/system/capstone.service /usr/lib/systemd/system/capstone.socket \
  /usr/lib/systemd/system/kvd.service /usr/lib/systemd/system/kvd.socket \
  /usr/lib/systemd/system/httpd@.service /etc/sysnet/capstone.toml; do
  grep -qx "$f" "$WORK/files" || fail "$f is not in the package"
  [ -e "$f" ] || fail "$f was not installed"
done
dpkg-query -W -f='${Conffiles}\n' sysnet | grep -q /etc/sysnet/capstone.toml ||
  fail "/etc/sysnet/capstone.toml is not a conffile"

step "the installed capstone under systemd-socket-activate, as capstone.service starts it"
unit=/usr/lib/systemd/system/capstone.service
start_pre=$(sed -n 's/^ExecStartPre=//p' "$unit")
start=$(sed -n 's/^ExecStart=//p' "$unit")
[ "${start%% *}" = /usr/bin/capstone ] || fail "ExecStart= runs ${start%% *}"
$start_pre
port=$(free_port)
# The socket unit names its socket by port (FileDescriptorName=80): so does this one.
fdname=$(sed -n 's/^FileDescriptorName=//p' /usr/lib/systemd/system/capstone.socket)
mkdir "$WORK/run"
# shellcheck disable=SC2086 # the unit's command line, split as systemd splits it
systemd-socket-activate -l "127.0.0.1:$port" --fdname="$fdname" \
  -E RUST_LOG=info -E XDG_RUNTIME_DIR="$WORK/run" $start 2>"$WORK/err.log" &
PID=$!
for _ in $(seq 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/status.json" 2>/dev/null && break
  kill -0 "$PID" 2>/dev/null || fail "the installed capstone exited"
  sleep 0.1
done
serves "127.0.0.1:$port"
fetch "http://127.0.0.1:$port/metrics" '^sysnet_capstone_requests_total '
grep -q "serving a socket passed by the service manager.*configured=0.0.0.0:80 addr=127.0.0.1:$port" \
  "$WORK/err.log" || fail "the passed socket was not used"
kill -TERM "$PID"
code=0
wait "$PID" || code=$?
PID=
[ "$code" -eq 0 ] || fail "the installed capstone exited $code after SIGTERM"
echo "served the bundled site on the passed socket 127.0.0.1:$port, stopped cleanly"

step "apt remove --purge sysnet"
DEBIAN_FRONTEND=noninteractive apt-get remove --purge -y -q sysnet >/dev/null
! dpkg-query -W -f='${Status}' sysnet 2>/dev/null | grep -q installed || fail "sysnet still installed"
left=()
while read -r f; do
  # Directories the package shares with the system (/usr/bin, ...) stay.
  [ -d "$f" ] && continue
  [ -e "$f" ] && left+=("$f")
done <"$WORK/files"
[ -e /etc/sysnet/capstone.toml ] && left+=(/etc/sysnet/capstone.toml)
[ ${#left[@]} -eq 0 ] || fail "left after purge: ${left[*]}"
echo "$(wc -l <"$WORK/files") paths installed, none left"

step "cargo install --path servers / userspace/strace-lite --root TMP"
# The same target directory: the release artefacts of the .deb are reused.
CARGO_TARGET_DIR="$SYSNET_ROOT/target" cargo install --locked --quiet --path servers \
  --root "$WORK/inst" --bin capstone
CARGO_TARGET_DIR="$SYSNET_ROOT/target" cargo install --locked --quiet --path userspace/strace-lite \
  --root "$WORK/inst"
# From an empty directory: nothing of the clone is in reach, the site travels in the binary.
mkdir "$WORK/elsewhere" "$WORK/run2"
(cd "$WORK/elsewhere" && RUST_LOG=info XDG_RUNTIME_DIR="$WORK/run2" \
  exec "$WORK/inst/bin/capstone" --listen 127.0.0.1:0 2>"$WORK/err.log") &
PID=$!
addr=
for _ in $(seq 100); do
  addr=$(sed -n 's/.*listening addr=\([0-9.:]*\).*/\1/p' "$WORK/err.log" | head -1)
  [ -n "$addr" ] && curl -fsS -o /dev/null "http://$addr/status.json" 2>/dev/null && break
  sleep 0.1
done
[ -n "$addr" ] || fail "the cargo-installed capstone did not start"
serves "$addr"
kill -TERM "$PID"
wait "$PID" || fail "the cargo-installed capstone exited non-zero"
PID=
"$WORK/inst/bin/strace-lite" /bin/true 2>"$WORK/trace" || fail "strace-lite /bin/true"
grep -q '^execve("/bin/true"' "$WORK/trace" || { cat "$WORK/trace"; fail "no execve in the trace"; }
echo "cargo install: capstone serves its bundled site, strace-lite traces"
