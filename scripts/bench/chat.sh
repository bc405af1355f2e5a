#!/usr/bin/env bash
# Chat fan-out benchmark: deliveries/s (lines received, summed over clients) with 50
# clients x 2,000 lines and 500 clients x 40 lines, every client sending at once;
# sysnet's chat (epoll, poll, threads) side by side with Debian's `ncat --broker` on
# the same load in the same run. Target: epoll >= 5x ncat at 500 clients.
# The pool model is left out: a fixed pool serves only --workers clients at once.
# Writes $OUT/chat.tsv (OUT defaults to target/bench). About half a minute.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "$(dirname "$0")/lib.sh"
cd "$SYSNET_ROOT"

need_pkgs ncat python3 procps
PORT=${PORT_BASE:-17500}
OUT=${OUT:-$SYSNET_ROOT/target/bench}
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"
# Debian's interpreter (where python3-matplotlib lives), even if another python3 is first on PATH.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
echo "machine: $(nproc) CPUs, load average $(cut -d" " -f1-3 /proc/loadavg) (other load skews wall-clock rates)"

cargo build --release -q -p servers --bin chat --bin loadgen
BIN=target/release
# loadgen exits 1 when a delivery is lost; its line (with lost=N) is still recorded.
# Every client's burst reaches every other client at once (50 x 2,000 lines is 3.5 MB
# per recipient), so the bench raises the per-client queue bound from its 1 MiB default.
OUT_LIMIT=$((32 * 1024 * 1024))

TSV=$OUT/chat.tsv
printf 'server\tclients\tlines\tdelivered\tlost\tsecs\tdeliveries_per_s\tserver_cpu_ms\n' >"$TSV"
record() {
  local server=$1 clients=$2 lines=$3 line=$4 cpu=$5
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$clients" "$lines" "$(field delivered "$line")" \
    "$(field lost "$line")" "$(field secs "$line")" "$(field deliveries_per_s "$line")" "$cpu" >>"$TSV"
  printf '  %-14s %s server_cpu_ms=%s\n' "$server" "$line" "$cpu"
}

for load in "50 2000" "500 40"; do
  read -r clients lines <<<"$load"
  step "chat fan-out: $clients clients x $lines lines"
  for model in epoll poll threads; do
    PORT=$((PORT + 1))
    start_logged "chat-$model-$clients" "$BIN/chat" --listen "127.0.0.1:$PORT" --io "$model" \
      --max-clients 1000 --out-limit "$OUT_LIMIT"
    pid=$BG_PID
    wait_listening "$OUT/chat-$model-$clients.log"
    line=$("$BIN/loadgen" chat --addr "127.0.0.1:$PORT" --clients "$clients" --lines "$lines" --timeout 60) || line=${line:-delivered=0}
    cpu=$(cpu_ms "$pid")
    stop_pid "$pid"
    record "sysnet-$model" "$clients" "$lines" "$line" "$cpu"
  done
  # ncat's broker needs a stdin that never reaches EOF (with </dev/null it accepts
  # slowly and clients stall): a FIFO held open by a writer that never writes.
  PORT=$((PORT + 1))
  fifo=$OUT/ncat.stdin
  rm -f "$fifo" && mkfifo "$fifo"
  sleep 600 >"$fifo" &
  holder=$!
  ncat --broker --max-conns 1000 -l 127.0.0.1 "$PORT" <"$fifo" >/dev/null 2>"$OUT/ncat-$clients.log" &
  npid=$!
  wait_port "$PORT"
  line=$("$BIN/loadgen" chat --addr "127.0.0.1:$PORT" --clients "$clients" --lines "$lines" --timeout 60) || line=${line:-delivered=0}
  cpu=$(cpu_ms "$npid")
  stop_pid "$npid"
  stop_pid "$holder"
  rm -f "$fifo"
  record ncat "$clients" "$lines" "$line" "$cpu"
done

step "results (ratio = deliveries/s relative to ncat --broker on the same load)"
"$PY" - "$TSV" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
ncat = {r["clients"]: float(r["deliveries_per_s"] or 0) for r in rows if r["server"] == "ncat"}
print("| server | clients x lines | delivered | lost | seconds | deliveries/s | vs ncat | server CPU ms | deliveries per CPU-ms vs ncat |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
eff = lambda r: int(r["delivered"] or 0) / max(int(r["server_cpu_ms"] or 0), 1)
ncat_eff = {r["clients"]: eff(r) for r in rows if r["server"] == "ncat"}
for r in rows:
    d = float(r["deliveries_per_s"] or 0)
    b = ncat.get(r["clients"]) or 0
    vs = f"{d / b:.2f}x" if b else "-"
    ve = f"{eff(r) / ncat_eff[r['clients']]:.2f}x" if ncat_eff.get(r["clients"]) else "-"
    print(f"| {r['server']} | {r['clients']} x {r['lines']} | {int(r['delivered'] or 0):,} | {r['lost']} | {r['secs']} | {d:,.0f} | {vs} | {r['server_cpu_ms']} | {ve} |")
e = next((r for r in rows if r["server"] == "sysnet-epoll" and r["clients"] == "500"), None)
if e and ncat.get("500"):
    ratio = float(e["deliveries_per_s"] or 0) / ncat["500"]
    print(f"\nepoll vs ncat at 500 clients: {ratio:.2f}x deliveries/s (target >= 5x): {'PASS' if ratio >= 5 else 'FAIL'}")
    n = next(r for r in rows if r["server"] == "ncat" and r["clients"] == "500")
    print(f"epoll vs ncat at 500 clients, deliveries per server CPU-second: {eff(e) / eff(n):.2f}x")
    print("(wall-clock rates swing with other load on the machine; CPU per delivery does not)")
PY
