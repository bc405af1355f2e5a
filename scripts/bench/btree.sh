#!/usr/bin/env bash
# The on-disk B+tree against SQLite, side by side in one run:
#   1,000,000 random 16-byte keys with 100-byte values inserted in durable batches of
#   1,000, then 1,000,000 random point lookups (every key, shuffled), then range scans
#   (scan-from: 100 random start keys x 10,000 pairs each).
# SQLite runs through Python's sqlite3 module: WITHOUT ROWID table, WAL,
# synchronous=FULL, default cache, one transaction per 1,000 inserts.
# Prints ops/s, file sizes and ratios; writes a PNG chart next to the table.
#   usage: scripts/bench/btree.sh [N_KEYS]        (BENCH_DIR=... to keep the files)
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$SYSNET_ROOT"

N=${1:-1000000}
BATCH=1000
VLEN=100
STARTS=100
COUNT=10000
LIMIT=${BENCH_TIMEOUT:-1200}   # seconds per phase, so a stuck run cannot hang CI

need_pkgs python3 python3-matplotlib
# Debian's interpreter, with Debian's libsqlite3 and matplotlib (not whatever shadows it
# on PATH).
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
step "build btree (release)"
cargo build --release --locked -p servers --bin btree
BT="$SYSNET_ROOT/target/release/btree"

WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/var/tmp}/btree-bench.XXXXXX")}
mkdir -p "$WORK"
[ -n "${BENCH_DIR:-}" ] || trap 'rm -rf "$WORK"' EXIT
OUT="$SYSNET_ROOT/target/bench"
mkdir -p "$OUT"

step "generate $N random keys"
"$PY" - "$WORK" "$N" "$STARTS" <<'EOF'
import os, random, sys
work, n, starts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
keys = os.urandom(16 * n)
open(f"{work}/keys.bin", "wb").write(keys)
order = list(range(n)); random.shuffle(order)
open(f"{work}/lookup.bin", "wb").write(b"".join(keys[16*i:16*i+16] for i in order))
open(f"{work}/starts.bin", "wb").write(os.urandom(16 * starts))
EOF

now() { date +%s.%N; }
rm -f "$WORK/bt.db"
step "btree: load"
t0=$(now); inserted=$(timeout "$LIMIT" "$BT" "$WORK/bt.db" load "$WORK/keys.bin" --value-len $VLEN --batch $BATCH); t1=$(now)
step "btree: lookup"
found=$(timeout "$LIMIT" "$BT" "$WORK/bt.db" lookup "$WORK/lookup.bin"); t2=$(now)
step "btree: scan-from"
scanned=$(timeout "$LIMIT" "$BT" "$WORK/bt.db" scan-from "$WORK/starts.bin" --count $COUNT); t3=$(now)
bt_size=$(stat -c %s "$WORK/bt.db")
"$BT" "$WORK/bt.db" check
[ "$inserted" -eq "$N" ] && [ "$found" -eq "$N" ] || { echo "btree: inserted $inserted, found $found of $N" >&2; exit 1; }

step "sqlite: load, lookup, scan"
timeout $((LIMIT * 3)) "$PY" - "$WORK" "$BATCH" "$VLEN" "$COUNT" > "$WORK/sqlite.txt" <<'EOF'
import os, sqlite3, sys, time
work, batch, vlen, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def keys(path):
    data = open(path, "rb").read()
    return [data[i:i + 16] for i in range(0, len(data), 16)]
ins, look, starts = keys(f"{work}/keys.bin"), keys(f"{work}/lookup.bin"), keys(f"{work}/starts.bin")
path = f"{work}/sq.db"
for suffix in ("", "-wal", "-shm"):
    if os.path.exists(path + suffix):
        os.remove(path + suffix)
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")
t0 = time.time()
for i in range(0, len(ins), batch):
    db.execute("BEGIN")
    db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)",
                   [(k, (k * (vlen // 16 + 1))[:vlen]) for k in ins[i:i + batch]])
    db.execute("COMMIT")
t1 = time.time()
found = sum(1 for k in look if db.execute("SELECT v FROM kv WHERE k = ?", (k,)).fetchone() is not None)
t2 = time.time()
scanned = 0
for s in starts:
    scanned += len(db.execute("SELECT k, v FROM kv WHERE k >= ? ORDER BY k LIMIT ?", (s, count)).fetchall())
t3 = time.time()
db.close()
print(len(ins), found, scanned, t1 - t0, t2 - t1, t3 - t2, os.path.getsize(path), sqlite3.sqlite_version)
EOF
read -r sq_ins sq_found sq_scanned sq_tins sq_tlook sq_tscan sq_size sq_version < "$WORK/sqlite.txt"
echo "SQLite $sq_version"

step "results"
"$PY" - "$OUT" "$N" "$inserted" "$found" "$scanned" "$t0" "$t1" "$t2" "$t3" "$bt_size" \
  "$sq_ins" "$sq_found" "$sq_scanned" "$sq_tins" "$sq_tlook" "$sq_tscan" "$sq_size" <<'EOF'
import sys
out = sys.argv[1]
n, bi, bf, bs, t0, t1, t2, t3, bsize = (float(x) for x in sys.argv[2:11])
si, sf, ss, sti, stl, sts, ssize = (float(x) for x in sys.argv[11:18])
rows = [
    # name, btree, sqlite, higher is better, target
    ("inserts/s", bi / (t1 - t0), si / sti, True, ">= 1.0x"),
    ("lookups/s", bf / (t2 - t1), sf / stl, True, ">= 1.0x"),
    ("keys/s scanned", bs / (t3 - t2), ss / sts, True, ""),
    ("file MiB", bsize / 2**20, ssize / 2**20, False, "<= 1.5x"),
]
lines = [f"{'metric':<16}{'btree':>14}{'sqlite':>14}{'ratio':>9}  target",
         f"{'-'*16}{'-'*14:>14}{'-'*14:>14}{'-'*9:>9}  ------"]
for name, b, s, _, target in rows:
    lines.append(f"{name:<16}{b:>14,.1f}{s:>14,.1f}{b / s:>8.2f}x  {target}")
lines.append(f"({int(n):,} keys, 16 B + 100 B, batches of 1,000; bytes/key: btree {bsize/n:.0f}, sqlite {ssize/n:.0f})")
table = "\n".join(lines)
print(table)
open(f"{out}/btree.txt", "w").write(table + "\n")
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
    for ax, (name, b, s, higher, target) in zip(axes, rows):
        bars = ax.bar(["btree", "sqlite"], [b, s], color=["#3b7dd8", "#999999"])
        ax.set_title(f"{name} ({'higher' if higher else 'lower'} is better)", fontsize=9)
        ax.bar_label(bars, labels=[f"{b:,.0f}", f"{s:,.0f}"], fontsize=8)
        ax.margins(y=0.2)
    fig.suptitle("on-disk B+tree vs SQLite (WAL, synchronous=FULL)", fontsize=10)
    fig.tight_layout()
    fig.savefig(f"{out}/btree.png", dpi=110)
    print(f"chart: {out}/btree.png")
except ImportError:
    print("matplotlib missing: no chart")
EOF
