#!/usr/bin/env bash
# Echo benchmark: messages/s and latency (p50/p99) of every concurrency model at 1,
# 100 and 1,000 concurrent connections, and epoll at 10,000 (with its peak RSS,
# target < 64 MiB). The load generator (target/release/loadgen) is a separate
# process. Each run lasts SECS seconds (default 3); the whole script about a minute.
# Writes $OUT/echo.tsv and $OUT/echo.png (OUT defaults to target/bench).
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "$(dirname "$0")/lib.sh"
cd "$SYSNET_ROOT"

need_pkgs python3 python3-matplotlib procps
SECS=${SECS:-3}
PORT=${PORT_BASE:-17100}
OUT=${OUT:-$SYSNET_ROOT/target/bench}
mkdir -p "$OUT"
# 10,000 connections take 10,000 descriptors on each side.
ulimit -n "$(ulimit -Hn)"
# Debian's interpreter (where python3-matplotlib lives), even if another python3 is first on PATH.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
echo "machine: $(nproc) CPUs, load average $(cut -d" " -f1-3 /proc/loadavg) (other load skews wall-clock rates)"
[ "$(ulimit -n)" -ge 10100 ] || echo "warning: RLIMIT_NOFILE $(ulimit -n) is below 10,100; the 10k run may fail" >&2

cargo build --release -q -p servers --bin echo --bin loadgen
BIN=target/release

TSV=$OUT/echo.tsv
printf 'model\tconns\tserved\tmsgs_per_s\tp50_us\tp99_us\tpeak_rss_kib\n' >"$TSV"
run() {
  local model=$1 conns=$2
  PORT=$((PORT + 1))
  start_logged "echo-$model-$conns" "$BIN/echo" --listen "127.0.0.1:$PORT" --io "$model" --max-clients 20000
  local pid=$BG_PID
  wait_listening "$OUT/echo-$model-$conns.log"
  local line
  line=$("$BIN/loadgen" echo --addr "127.0.0.1:$PORT" --conns "$conns" --secs "$SECS") || line="served=0 msgs_per_s=0 p50_us=0 p99_us=0"
  local rss
  rss=$(peak_rss_kib "$pid")
  stop_pid "$pid"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$model" "$conns" "$(field served "$line")" "$(field msgs_per_s "$line")" \
    "$(field p50_us "$line")" "$(field p99_us "$line")" "$rss" >>"$TSV"
  printf '  %-8s %6s conns: %s\n' "$model" "$conns" "$line"
}

step "echo: every model at 1, 100, 1000 connections; epoll at 10000 (${SECS}s each)"
for conns in 1 100 1000; do
  for model in threads pool select poll epoll; do
    run "$model" "$conns"
  done
done
run epoll 10000

step "results (ratio = msgs/s relative to epoll at the same connection count)"
"$PY" - "$TSV" "$OUT/echo.png" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
base = {r["conns"]: float(r["msgs_per_s"] or 0) for r in rows if r["model"] == "epoll"}
print(f"| model | conns | served | msgs/s | vs epoll | p50 µs | p99 µs | peak RSS MiB |")
print(f"|---|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    m = float(r["msgs_per_s"] or 0)
    b = base.get(r["conns"]) or 0
    ratio = f"{m / b:.2f}" if b else "-"
    print(f"| {r['model']} | {r['conns']} | {r['served']} | {m:,.0f} | {ratio} | {r['p50_us']} | {r['p99_us']} | {int(r['peak_rss_kib'] or 0) / 1024:.1f} |")
big = [r for r in rows if r["model"] == "epoll" and r["conns"] == "10000"]
if big:
    rss = int(big[0]["peak_rss_kib"] or 0) / 1024
    ok = rss < 64 and int(big[0]["served"] or 0) == 10000
    print(f"\nepoll at 10,000 connections: {big[0]['served']} served, peak RSS {rss:.1f} MiB (target < 64 MiB): {'PASS' if ok else 'FAIL'}")
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib missing; no chart")
    sys.exit(0)
models = ["threads", "pool", "select", "poll", "epoll"]
conns = ["1", "100", "1000"]
fig, ax = plt.subplots(figsize=(8, 4.5))
w = 0.16
for i, m in enumerate(models):
    ys = [next((float(r["msgs_per_s"] or 0) for r in rows if r["model"] == m and r["conns"] == c), 0) for c in conns]
    ax.bar([x + (i - 2) * w for x in range(len(conns))], ys, w, label=m)
ax.set_xticks(range(len(conns)), [f"{c} conns" for c in conns])
ax.set_ylabel("echo messages/s (64 B, closed loop)")
ax.set_title("sysnet echo: concurrency models side by side")
ax.legend()
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
print(f"chart: {sys.argv[2]}")
PY
