#!/usr/bin/env bash
# Regenerates the strace-lite traces in docs/*.md: each page's
#   <!-- trace: NAME --> ... <!-- /trace -->
# is replaced by a fresh capture of the scenario NAME below (the programs run on port 0,
# traced by target/release/strace-lite, driven by curl, nc, redis-cli). Run it after a
# change that moves a system call; `git diff docs/` shows what moved.
#   scripts/docs/traces.sh [NAME...]     (default: every scenario)
# Needs the release binaries (cargo build --release) and curl, netcat-openbsd,
# redis-tools; the hardening trace needs root (it drops to nobody), and is left as it
# is otherwise.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$SYSNET_ROOT"

BIN=$SYSNET_ROOT/target/release
for b in strace-lite chat echo httpd tlschat proxy kvd btree capstone; do
  [ -x "$BIN/$b" ] || { echo "traces: $BIN/$b missing (cargo build --release)" >&2; exit 1; }
done
W=$(mktemp -d /tmp/traces.XXXXXX)
TRACED_PID=
cleanup() {
  [ -n "$TRACED_PID" ] && kill -KILL "$TRACED_PID" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
OUT=$W/out
mkdir -p "$OUT"

# serve NAME STRACE_OPTS -- PROGRAM ARGS...: the program under strace-lite -o $W/NAME.trace,
# its stderr in $W/NAME.log; waits for its "listening addr=" line and sets PORT.
serve() {
  local name=$1; shift
  local opts=()
  while [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  "$BIN/strace-lite" "${opts[@]}" -o "$W/$name.trace" "$@" 2>"$W/$name.log" &
  TRACED_PID=$!
  local i
  for i in $(seq 200); do
    PORT=$(sed -n 's/.*listening addr=[^ ]*:\([0-9]*\).*/\1/p' "$W/$name.log" | head -1)
    [ -n "$PORT" ] && return 0
    sleep 0.05
  done
  echo "traces: $name never listened: $(cat "$W/$name.log")" >&2
  exit 1
}

# finish: stops the traced server (the tracer's child) and waits (5 s) for the tracer.
finish() {
  local child i
  sleep 0.3
  for child in $(pgrep -P "$TRACED_PID"); do kill -TERM "$child" 2>/dev/null || true; done
  for i in $(seq 50); do
    kill -0 "$TRACED_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$TRACED_PID" 2>/dev/null; then
    for child in $(pgrep -P "$TRACED_PID"); do kill -KILL "$child" 2>/dev/null || true; done
    kill -KILL "$TRACED_PID" 2>/dev/null || true
  fi
  wait "$TRACED_PID" 2>/dev/null || true
  TRACED_PID=
}

# keep NAME CMDLINE: the snippet NAME, from stdin, headed by the command that traced it.
# The tracer's own signal lines and what follows them are the stop, not the scenario;
# the scratch directory is shown as /tmp/sysnet.
keep() {
  { printf '$ %s\n' "$2"; sed -e '/--- SIG/,$d' -e "s|$W|/tmp/sysnet|g"; } >"$OUT/$1"
}

from() { sed -n "\\#$1#,\$p"; }   # from the first line matching $1 (a sed BRE)

WANT=("$@")
wanted() { [ ${#WANT[@]} -eq 0 ] || [[ " ${WANT[*]} " == *" $1 "* ]]; }

if wanted chat; then
  step "trace: chat"
  serve chat -f -e trace=accept4,read,write,sendto,sendmsg,shutdown,close -- "$BIN/chat" --io threads --listen 127.0.0.1:0
  printf '/nick ann\nhello\n/quit\n' | nc 127.0.0.1 "$PORT" >/dev/null
  finish
  from 'accept4(.*= [0-9]' <"$W/chat.trace" | grep -v 'EAGAIN' | head -n 13 |
    keep chat "strace-lite -f -e trace=accept4,read,write,sendto,sendmsg,shutdown,close chat --io threads"
fi

if wanted pool; then
  step "trace: pool"
  serve pool -f -e trace=accept4,futex,read,sendto,sendmsg,close -- "$BIN/echo" --io pool --workers 2 --listen 127.0.0.1:0
  printf 'hello\n' | nc -N 127.0.0.1 "$PORT" >/dev/null
  finish
  from 'accept4(.*= [0-9]' <"$W/pool.trace" | grep -v '^\[pid *[0-9]*\] read(6\|^\[pid *[0-9]*\] write(6' | head -n 10 |
    keep pool "strace-lite -f -e trace=accept4,futex,read,sendto,sendmsg,close echo --io pool --workers 2"
fi

if wanted event-loops; then
  step "trace: event loops"
  for model in poll epoll; do
    serve "loop-$model" -e trace=accept4,poll,epoll_wait,epoll_ctl,read,sendto,sendmsg,close -- "$BIN/echo" --io "$model" --listen 127.0.0.1:0
    printf 'hello\n' | nc -N 127.0.0.1 "$PORT" >/dev/null
    finish
  done
  {
    echo "# --io poll"
    from 'accept4(.*= [0-9]' <"$W/loop-poll.trace" | sed '/^close(/q'
    echo "# --io epoll"
    from 'accept4(.*= [0-9]' <"$W/loop-epoll.trace" | sed '/^close(/q'
  } | keep event-loops "strace-lite -e trace=accept4,poll,epoll_wait,epoll_ctl,read,sendto,sendmsg,close echo --io poll (then --io epoll)"
fi

if wanted http; then
  step "trace: http"
  serve http -e 'trace=accept4,read,recvfrom,openat,openat2,statx,fstat,pread64,write,writev,sendmsg,sendto,sendfile,close' -- "$BIN/httpd" --listen 127.0.0.1:0 --root servers/www
  curl -s -o /dev/null -o /dev/null "http://127.0.0.1:$PORT/style.css" "http://127.0.0.1:$PORT/style.css"
  finish
  from 'accept4(.*= [0-9]' <"$W/http.trace" | grep -v EAGAIN | sed '/^close(/q' |
    keep http "strace-lite -e trace=accept4,read,openat2,statx,pread64,sendmsg,sendto,sendfile,close,... httpd --root servers/www"
fi

if wanted hardening; then
  if [ "$(id -u)" -eq 0 ]; then
    step "trace: hardening"
    mkdir -p "$W/www"
    cp servers/www/* "$W/www/"
    chmod -R a+rX "$W"
    serve hardening -e 'trace=chroot,chdir,setgroups,setgid,setuid,openat2,accept4,sendto,sendmsg,write' -- "$BIN/httpd" --listen 127.0.0.1:0 --root "$W/www" --user nobody --chroot
    curl -s -o /dev/null --path-as-is "http://127.0.0.1:$PORT/../../etc/passwd"
    curl -s -o /dev/null "http://127.0.0.1:$PORT/"
    finish
    grep -E '^(chroot|chdir|setgroups|setgid|setuid)\(|accept4\(.*= [0-9]|openat2|send|write\(' "$W/hardening.trace" |
      grep -v 'write(2,' | head -n 12 |
      keep hardening "strace-lite -e trace=chroot,chdir,setgroups,setgid,setuid,openat2,accept4,sendto,sendmsg,write httpd --root DIR --user nobody --chroot"
  else
    echo "traces: hardening needs root; left as it is" >&2
  fi
fi

if wanted tlschat; then
  step "trace: tlschat"
  serve tlschat -s 24 -e trace=accept4,read,sendto,sendmsg,close -- "$BIN/tlschat" serve --listen 127.0.0.1:0 --data-dir "$W/tls"
  printf 'hello\n' | "$BIN/tlschat" connect "127.0.0.1:$PORT" --ca "$W/tls/ca.pem" >/dev/null
  finish
  from 'accept4(.*= [0-9]' <"$W/tlschat.trace" | grep -v EAGAIN | sed '/^close(/q' |
    keep tlschat "strace-lite -s 24 -e trace=accept4,read,sendto,sendmsg,close tlschat serve"
fi

if wanted proxy; then
  step "trace: proxy"
  mkdir -p "$W/origin"
  head -c 262144 /dev/zero >"$W/origin/256k.bin"
  "$BIN/httpd" --listen 127.0.0.1:0 --root "$W/origin" 2>"$W/origin.log" &
  ORIGIN_PID=$!
  for _ in $(seq 100); do
    ORIGIN=$(sed -n 's/.*listening addr=\([^ ]*\).*/\1/p' "$W/origin.log" | head -1)
    [ -n "$ORIGIN" ] && break
    sleep 0.05
  done
  # -f: the relay loops are threads of their own.
  serve proxy -f -e trace=accept4,connect,read,sendto,pipe2,splice,shutdown -- "$BIN/proxy" --listen 127.0.0.1:0 --upstream "$ORIGIN"
  curl -s -o /dev/null -H 'Connection: close' "http://127.0.0.1:$PORT/256k.bin"
  finish
  kill -TERM "$ORIGIN_PID"; wait "$ORIGIN_PID" || true
  from 'accept4(.*= [0-9]' <"$W/proxy.trace" | grep -v 'EAGAIN' | head -n 14 |
    keep proxy "strace-lite -f -e trace=accept4,connect,read,sendto,pipe2,splice,shutdown proxy --upstream ADDR   (then curl a 256 KiB file)"
fi

if wanted kvd; then
  step "trace: kvd"
  serve kvd -f -e trace=read,write,sendto,sendmsg,fdatasync -- "$BIN/kvd" --listen 127.0.0.1:0 --dir "$W/kvd"
  for i in $(seq 50); do printf 'SET key:%d value\r\n' "$i"; done | redis-cli -p "$PORT" --pipe >/dev/null
  sleep 1.2   # let the everysec thread run once
  finish
  grep -v 'write(2,' "$W/kvd.trace" | from 'read(.*SET' | sed '/fdatasync/q' | grep -v 'read(.*EAGAIN' | head -n 8 |
    keep kvd "strace-lite -f -e trace=read,write,sendto,sendmsg,fdatasync kvd --appendfsync everysec"
fi

if wanted btree; then
  step "trace: btree"
  "$BIN/btree" "$W/t.db" put apple red
  "$BIN/strace-lite" -e trace=openat,flock,pread64,pwrite64,fdatasync,close -o "$W/btree.trace" "$BIN/btree" "$W/t.db" put banana yellow
  from "openat(.*t\\.db" <"$W/btree.trace" | head -n 12 |
    keep btree "strace-lite -e trace=openat,flock,pread64,pwrite64,fdatasync,close btree t.db put banana yellow"
fi

if wanted capstone || wanted strace-lite-capstone; then
  step "trace: capstone"
  mkdir -p "$W/site"
  cp servers/www/* "$W/site/"
  head -c 65536 /dev/zero >"$W/site/64k.bin"
  printf 'listen = ["127.0.0.1:0"]\nroot = "site"\n' >"$W/capstone.toml"   # a pid file of its own
  serve capstone -f -- "$BIN/capstone" --config "$W/capstone.toml"
  sleep 0.5
  curl -s -o /dev/null "http://127.0.0.1:$PORT/64k.bin"
  finish
  grep -E '^(\[pid +[0-9]+\] )?(clone|clone3|fork)\(|<\.\.\. clone3? resumed>|accept4\(.*= [0-9]|recvfrom|read\([0-9]+, "GET|sendfile|sendmsg|sendto|writev' "$W/capstone.trace" |
    head -n 12 | keep capstone "strace-lite -f capstone --config capstone.toml   (then curl a 64 KiB file)"
  grep -E '^(\[pid +[0-9]+\] )?(clone|clone3|fork)\(|accept4\(.*= [0-9]|read\([0-9]+, "GET|sendfile' "$W/capstone.trace" |
    head -n 8 | keep strace-lite-capstone "strace-lite -f -o /tmp/capstone.trace capstone --config capstone.toml"
fi

if wanted dev-sysnet; then
  step "trace: counters to \$SYSNET_DEVICE"
  : >"$W/sysnet"
  printf 'listen = ["127.0.0.1:0"]\n' >"$W/counters.toml"
  SYSNET_DEVICE=$W/sysnet serve dev-sysnet -f -s 200 -e trace=openat,write -- "$BIN/capstone" --config "$W/counters.toml"
  sleep 0.5
  curl -s -o /dev/null "http://127.0.0.1:$PORT/"
  sleep 1.5
  finish
  fd_line=$(grep -F "\"$W/sysnet\"" "$W/dev-sysnet.trace" | head -n 1)
  fd=$(sed -n 's/.*= \([0-9]*\)$/\1/p' <<<"$fd_line")
  { echo "$fd_line"; grep -E "write\($fd, " "$W/dev-sysnet.trace" | head -n 2; } |
    sed "s|$W/sysnet|/tmp/sysnet-counters|" |
    keep dev-sysnet "SYSNET_DEVICE=/tmp/sysnet-counters strace-lite -f -s 200 -e trace=openat,write capstone   (then one request)"
fi

if wanted strace-lite-cat; then
  step "trace: strace-lite on cat"
  printf 'hello, sysnet\n' >/tmp/greeting.txt
  "$BIN/strace-lite" -e trace=openat,read,write,close cat /tmp/greeting.txt 2>"$W/cat.trace" >/dev/null
  from 'openat(AT_FDCWD, "/tmp/greeting.txt"' <"$W/cat.trace" |
    keep strace-lite-cat "strace-lite -e trace=openat,read,write,close cat /tmp/greeting.txt"
fi

step "writing the snippets into docs/"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
"$PY" - "$OUT" docs/*.md <<'PY'
import os, re, sys
out, pages = sys.argv[1], sys.argv[2:]
marker = re.compile(r"(<!-- trace: ([\w-]+) -->\n)(.*?)(<!-- /trace -->)", re.S)
used = set()
for page in pages:
    text = open(page, encoding="utf-8").read()
    def fill(m):
        name = m.group(2)
        path = os.path.join(out, name)
        if not os.path.exists(path):
            return m.group(0)
        used.add(name)
        snippet = open(path, encoding="utf-8", errors="replace").read().rstrip("\n")
        return f"{m.group(1)}```text\n{snippet}\n```\n{m.group(4)}"
    new = marker.sub(fill, text)
    if new != text:
        open(page, "w", encoding="utf-8").write(new)
        print(f"updated {page}")
for name in sorted(set(os.listdir(out)) - used):
    print(f"warning: no page has <!-- trace: {name} -->")
PY
