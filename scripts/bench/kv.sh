#!/usr/bin/env bash
# Key-value benchmark: kvd against Debian's redis-server, side by side in one run.
#
#   scripts/bench/kv.sh [REQUESTS] [RECOVERY_KEYS]    (defaults 200000 and 1000000;
#                                                     ports 16301-16302; ROUNDS=3)
#   TESTS="lpush zadd" KVD_PORT=21001 REDIS_PORT=21002 scripts/bench/kv.sh 100000 0
#
# 1. Throughput: `redis-benchmark -t TEST -n REQUESTS -c 50` at -P 1 and -P 16 against
#    each server (appendonly yes, appendfsync everysec, a temp dir each, loopback),
#    for the string tests (ping set get incr mset) and the type tests redis-benchmark
#    offers (lpush rpush lpop rpop sadd hset spop zadd zpopmin lrange_100 lrange_600),
#    in that order on both servers, so each pop finds what the pushes before it left.
#    At -P 16 the cheap tests run P16_SCALE (default 5) times REQUESTS, so each lasts
#    about a second.
#    The LPUSH that redis-benchmark runs to fill the list for LRANGE is not counted. Each test runs ROUNDS times per server, the servers alternating
#    and taking turns going first, and the median counts: a -P 16 test lasts a fraction
#    of a second, so one run of it is at the mercy of whatever else the machine does.
# 2. Recovery: RECOVERY_KEYS keys of every type (strings, lists, hashes, sets and sorted
#    sets in turn, each made by one command of 8 elements, and one key in four changed
#    again by APPEND, LPOP, HDEL, SREM or ZINCRBY) loaded with `redis-cli --pipe`, the
#    server killed with SIGKILL, restarted, and timed until it answers PING (ROUNDS
#    restarts of the same log, the median counts); after the first restart the
#    key count is checked and a sample of about 1,000 keys read back from each server
#    must be the same on both. Redis runs with auto-aof-rewrite-percentage 0 so both
#    replay a plain log of the same commands. RECOVERY_KEYS=0 skips this part.
# PIN=1 pins each server to the last CPU and redis-benchmark to the first (taskset), so
# that on a small machine the client and the server measured do not trade cores
# mid-run (both servers pinned the same way; their helper threads too).
# Prints a table of requests/s with ratios kvd/redis and their geometric mean, and
# draws target/bench/kv.png.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$SYSNET_ROOT"

REQUESTS=${1:-200000}
KEYS=${2:-1000000}
ROUNDS=${ROUNDS:-3}
KVD_PORT=${KVD_PORT:-16301}
REDIS_PORT=${REDIS_PORT:-16302}
TESTS=${TESTS:-ping set get incr mset lpush rpush lpop rpop sadd hset spop zadd zpopmin lrange_100 lrange_600}

need_pkgs redis-server redis-tools python3 procps util-linux
PIN=${PIN:-0}
SRV_PIN=() CLI_PIN=()
if [ "$PIN" = 1 ]; then
  last=$(($(nproc) - 1))
  SRV_PIN=(taskset -c "$last") CLI_PIN=(taskset -c 0)
fi

step "building kvd (release)"
cargo build --release --locked --bin kvd -q
KVD="$SYSNET_ROOT/target/release/kvd"

WORK=$(mktemp -d /tmp/kv-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill9 "$p"; done
  rm -rf "$WORK"
}
trap cleanup EXIT

start_kvd() { # DIR
  RUST_LOG=warn "${SRV_PIN[@]}" "$KVD" --listen "127.0.0.1:$KVD_PORT" --dir "$1" --appendfsync everysec \
    >"$1.log" 2>&1 &
  echo $!
}

start_redis() { # DIR
  "${SRV_PIN[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$1" --save '' \
    --appendonly yes --appendfsync everysec --auto-aof-rewrite-percentage 0 \
    --daemonize no --logfile "$1.log" >/dev/null 2>&1 &
  echo $!
}

kill9() { # PID: SIGKILL, then wait until it is gone (it is not our child to `wait` on)
  kill -9 "$1" 2>/dev/null || true
  while kill -0 "$1" 2>/dev/null; do sleep 0.01; done
}

port_free() { # PORT: refuse to benchmark whatever else already listens there
  if redis-cli -p "$1" ping >/dev/null 2>&1; then
    echo "port $1 is already in use; stop what listens there first" >&2
    exit 1
  fi
}

wait_ready() { # PORT TIMEOUT_S [PID]
  local end=$((SECONDS + $2))
  until [ "$(redis-cli -p "$1" ping 2>/dev/null)" = "PONG" ]; do
    [ $SECONDS -lt $end ] || { echo "server on port $1 did not come up" >&2; exit 1; }
    if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then
      echo "server on port $1 exited; see its log" >&2
      exit 1
    fi
    sleep 0.01
  done
}

# ---- throughput --------------------------------------------------------------------

port_free $KVD_PORT
port_free $REDIS_PORT
mkdir -p "$WORK/kvd" "$WORK/redis"
KPID=$(start_kvd "$WORK/kvd"); PIDS+=("$KPID")
RPID=$(start_redis "$WORK/redis"); PIDS+=("$RPID")
wait_ready $KVD_PORT 30 "$KPID"
wait_ready $REDIS_PORT 30 "$RPID"

# A -P 16 test of a cheap command answers 200,000 requests in about 0.15 s, too short to
# say anything on a shared machine: those run P16_SCALE times as many requests (the
# LRANGE tests, already long, keep REQUESTS).
P16_SCALE=${P16_SCALE:-5}
requests_for() { # test pipeline
  case "$2:$1" in
    1:* | *:lrange*) echo "$REQUESTS" ;;
    *) echo $((REQUESTS * P16_SCALE)) ;;
  esac
}

RESULTS="$WORK/results.csv"
: >"$RESULTS"
for P in 1 16; do
  for t in $TESTS; do
    for round in $(seq 1 "$ROUNDS"); do
      order="kvd redis"; [ $((round % 2)) -eq 0 ] && order="redis kvd"
      for srv in $order; do
        port=$KVD_PORT; [ $srv = redis ] && port=$REDIS_PORT
        step "redis-benchmark -t $t -P $P against $srv (round $round of $ROUNDS)"
        timeout 300 "${CLI_PIN[@]}" redis-benchmark -p "$port" -t "$t" -n "$(requests_for "$t" "$P")" -c 50 -P "$P" --csv 2>/dev/null |
          tr -d '\r' | awk -F'","' -v s=$srv -v p=$P 'NR > 1 && !/needed to benchmark/ { gsub(/"/, "", $1); sub(/ \(.*/, "", $1); print s "," p "," $1 "," $2 }' |
          tee -a "$RESULTS"
      done
    done
  done
done
kill9 "$KPID"
kill9 "$RPID"

# ---- recovery after kill -9 ----------------------------------------------------------

: >"$WORK/recovery.csv"
if [ "$KEYS" -gt 0 ]; then

step "generating $KEYS keys of every type"
python3 - "$KEYS" "$WORK/load.resp" "$WORK/sample.cmds" <<'PY'
import sys
n = int(sys.argv[1])
out = open(sys.argv[2], "wb")
sample = open(sys.argv[3], "w")
every = max(1, n // 1000)  # groups of five keys: about 1,000 keys sampled

def cmd(*args):
    b = [b"*%d\r\n" % len(args)]
    for a in args:
        b.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(b)

parts = []
for i in range(n):
    t = i % 5
    els = [b"e%d:%d" % (i, j) for j in range(8)]
    if t == 0:
        k = b"str:%010d" % i
        parts.append(cmd(b"SET", k, b"v" * 40))
        if i % 4 == 0:
            parts.append(cmd(b"APPEND", k, b"tail"))
        reads = ["GET %s" % k.decode()]
    elif t == 1:
        k = b"list:%010d" % i
        parts.append(cmd(b"RPUSH", k, *els))
        if i % 4 == 0:
            parts.append(cmd(b"LPOP", k))
        reads = ["LRANGE %s 0 -1" % k.decode()]
    elif t == 2:
        k = b"hash:%010d" % i
        fv = []
        for j, e in enumerate(els):
            fv += [b"f%d" % j, e]
        parts.append(cmd(b"HSET", k, *fv))
        if i % 4 == 0:
            parts.append(cmd(b"HDEL", k, b"f1"))
        reads = ["HLEN %s" % k.decode(), "HMGET %s %s" % (k.decode(), " ".join("f%d" % j for j in range(8)))]
    elif t == 3:
        k = b"set:%010d" % i
        parts.append(cmd(b"SADD", k, *els))
        if i % 4 == 0:
            parts.append(cmd(b"SREM", k, els[1]))
        reads = ["SCARD %s" % k.decode(), "SMISMEMBER %s %s" % (k.decode(), " ".join(e.decode() for e in els))]
    else:
        k = b"zset:%010d" % i
        sm = []
        for j, e in enumerate(els):
            sm += [b"%d.5" % (j * 3 + i % 7), e]
        parts.append(cmd(b"ZADD", k, *sm))
        if i % 4 == 0:
            parts.append(cmd(b"ZINCRBY", k, b"2.25", els[0]))
        reads = ["ZRANGE %s 0 -1 WITHSCORES" % k.decode()]
    if (i // 5) % every == 0:
        sample.write("TYPE %s\n" % k.decode())
        sample.write("".join(r + "\n" for r in reads))
    if len(parts) >= 10000:
        out.write(b"".join(parts)); parts = []
out.write(b"".join(parts))
PY
ls -l "$WORK/load.resp" | awk '{printf "load file: %.1f MiB\n", $5/1048576}'

recover() { # NAME START_FN PORT
  local name=$1 start=$2 port=$3 dir="$WORK/rec-$1" pid t0 t1
  rm -rf "$dir"; mkdir -p "$dir"
  pid=$($start "$dir"); PIDS+=("$pid")
  wait_ready "$port" 30 "$pid"
  timeout 300 redis-cli -p "$port" --pipe <"$WORK/load.resp" >/dev/null
  sleep 1.5 # everysec: let the last second reach the log, as a crash a bit later would
  local size
  size=$(du -sb "$dir" | awk '{print $1}')
  kill9 "$pid"
  local n times=() round
  for round in $(seq "$ROUNDS"); do
    t0=$(date +%s%N)
    pid=$($start "$dir"); PIDS+=("$pid")
    wait_ready "$port" 300 "$pid"
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000000 )))
    echo "$name restart $round of $ROUNDS: ${times[-1]} ms"
    if [ "$round" = 1 ]; then
      n=$(redis-cli -p "$port" dbsize)
      redis-cli -p "$port" <"$WORK/sample.cmds" >"$WORK/sample-$name.txt"
    fi
    kill9 "$pid"
    [ "$n" = "$KEYS" ] || { echo "$name recovered $n keys, expected $KEYS" >&2; exit 1; }
  done
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
  echo "$name,recovery,${median}e-3,$size" | tee -a "$WORK/recovery.csv"
}
step "recovery of $KEYS keys after kill -9: kvd"
recover kvd start_kvd $KVD_PORT
step "recovery of $KEYS keys after kill -9: redis"
recover redis start_redis $REDIS_PORT
cmp -s "$WORK/sample-kvd.txt" "$WORK/sample-redis.txt" || {
  echo "the sampled keys differ after recovery (kvd < > redis):" >&2
  diff "$WORK/sample-kvd.txt" "$WORK/sample-redis.txt" | head -20 >&2
  exit 1
}
echo "$(wc -l <"$WORK/sample.cmds") sampled reads: same replies from both after recovery"
fi

# ---- report ----------------------------------------------------------------------------

# The chart needs matplotlib: Debian's package, else a venv from pip, else no chart.
PY=python3
if ! python3 -c 'import matplotlib' 2>/dev/null; then
  need_pkgs python3-matplotlib || true
  if ! python3 -c 'import matplotlib' 2>/dev/null; then
    venv="$SYSNET_CACHE/bench-venv"
    if [ ! -x "$venv/bin/python3" ] || ! "$venv/bin/python3" -c 'import matplotlib' 2>/dev/null; then
      mkdir -p "$SYSNET_CACHE" 2>/dev/null || venv="$SYSNET_ROOT/target/bench-venv"
      python3 -m venv "$venv" && "$venv/bin/pip" install -q matplotlib || true
    fi
    [ -x "$venv/bin/python3" ] && PY="$venv/bin/python3"
  fi
fi

mkdir -p target/bench
step "results (requests/s; ratio = kvd / redis-server)"
"$PY" - "$RESULTS" "$WORK/recovery.csv" target/bench/kv.png <<'PY'
import csv, math, statistics, sys
rows = list(csv.reader(open(sys.argv[1])))
runs = {}
order = []
for srv, p, test, v in rows:
    key = (test, int(p))
    if key not in order:
        order.append(key)
    runs.setdefault(key, {}).setdefault(srv, []).append(float(v))
# The median of each server's rounds.
rps = {k: {s: statistics.median(v) for s, v in by.items()} for k, by in runs.items()}
rounds = max(len(v) for by in runs.values() for v in by.values())
print(f"(median of {rounds} rounds per server and test)")
print(f"| {'test':<16} | {'-P':>3} | {'kvd':>12} | {'redis':>12} | {'ratio':>6} |")
print(f"|{'-'*18}|{'-'*5}|{'-'*14}|{'-'*14}|{'-'*8}|")
ratios = []
for key in order:
    k, r = rps[key].get("kvd", 0), rps[key].get("redis", 0)
    ratio = k / r if r else 0
    ratios.append(ratio)
    print(f"| {key[0]:<16} | {key[1]:>3} | {k:>12,.0f} | {r:>12,.0f} | {ratio:>5.2f}x |")
gm = math.exp(sum(math.log(x) for x in ratios) / len(ratios)) if all(ratios) else 0
print(f"\ngeometric mean kvd/redis: {gm:.2f}x   lowest: {min(ratios):.2f}x   (target >= 1.1x, none below 0.9x)")
rec = {r[0]: (float(r[2]), int(r[3])) for r in csv.reader(open(sys.argv[2]))}
print("\n| recovery after kill -9 | seconds | log size (MiB) |")
print("|---|---|---|")
for name in ("kvd", "redis"):
    if name in rec:
        print(f"| {name} | {rec[name][0]:.2f} | {rec[name][1]/1048576:.1f} |")
if "kvd" in rec and "redis" in rec:
    print(f"\nrecovery time kvd/redis: {rec['kvd'][0]/rec['redis'][0]:.2f}x (target <= 1.0x)")
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("\n(no chart: python3-matplotlib is not importable)")
    sys.exit(0)
labels = [f"{t}\n-P{p}" for t, p in order]
fig, axes = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [5, 1]})
x = range(len(order))
w = 0.4
ax = axes[0]
ax.bar([i - w/2 for i in x], [rps[k].get("kvd", 0) for k in order], w, label="kvd")
ax.bar([i + w/2 for i in x], [rps[k].get("redis", 0) for k in order], w, label="redis-server")
ax.set_xticks(list(x)); ax.set_xticklabels(labels, fontsize=8)
ax.set_ylabel("requests/s"); ax.set_yscale("log")
ax.set_title(f"redis-benchmark -c 50 (geometric mean kvd/redis {gm:.2f}x)")
ax.legend()
ax = axes[1]
names = [n for n in ("kvd", "redis") if n in rec]
ax.bar(names, [rec[n][0] for n in names], color=["C0", "C1"][:len(names)])
ax.set_ylabel("seconds"); ax.set_title("recovery after kill -9")
fig.tight_layout()
fig.savefig(sys.argv[3], dpi=110)
print(f"\nchart: {sys.argv[3]}")
PY
