#!/usr/bin/env bash
# The on-disk B+tree beyond `cargo test`: the million-key delete/reuse test (ignored
# there; release only), then the `btree` tool end to end against sqlite3's view of the
# same data (ordered scan must match SQLite's ORDER BY byte for byte) and a damaged
# meta page (a warning, an error with --strict).
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$SYSNET_ROOT"
need_pkgs sqlite3 python3

step "btree: million-key reuse test (release)"
cargo test --release --locked -p servers --test btree -- --ignored

step "btree: CLI end to end"
cargo build --release --locked -p servers --bin btree
BT="$SYSNET_ROOT/target/release/btree"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$BT" --help | grep -q "Examples" || fail "--help has no examples"
"$BT" "$W/t.db" put apple red
"$BT" "$W/t.db" put banana yellow
"$BT" "$W/t.db" put cherry dark
"$BT" "$W/t.db" put apple green
[ "$("$BT" "$W/t.db" get apple)" = green ] || fail "get after update"
"$BT" "$W/t.db" del banana
if "$BT" "$W/t.db" get banana 2>/dev/null; then fail "deleted key still found"; fi
[ "$("$BT" "$W/t.db" scan | cut -f1 | tr '\n' ' ')" = "apple cherry " ] || fail "scan order"
[ "$("$BT" "$W/t.db" scan --reverse | cut -f1 | tr '\n' ' ')" = "cherry apple " ] || fail "reverse scan"
"$BT" "$W/t.db" check | grep -q "^ok: 2 entries" || fail "check"

# 20,000 random keys: the tool's ordered scan against sqlite3's ORDER BY on the same keys.
python3 -c "import os; open('$W/keys.bin','wb').write(os.urandom(16*20000))"
[ "$("$BT" "$W/k.db" load "$W/keys.bin" --value-len 40 --batch 500)" = 20000 ] || fail "load count"
[ "$("$BT" "$W/k.db" lookup "$W/keys.bin")" = 20000 ] || fail "lookup count"
head -c 16 "$W/keys.bin" > "$W/start.bin"
[ "$("$BT" "$W/k.db" scan-from "$W/start.bin" --count 50)" -ge 1 ] || fail "scan-from"
"$BT" "$W/k.db" scan | cut -f1 > "$W/bt.keys"
python3 - "$W" <<'EOF'
import sys
w = sys.argv[1]
data = open(f"{w}/keys.bin", "rb").read()
with open(f"{w}/load.sql", "w") as f:
    f.write("CREATE TABLE k(k BLOB PRIMARY KEY) WITHOUT ROWID;\nBEGIN;\n")
    for i in range(0, len(data), 16):
        f.write(f"INSERT OR IGNORE INTO k VALUES (x'{data[i:i+16].hex()}');\n")
    f.write("COMMIT;\n")
EOF
sqlite3 "$W/s.db" < "$W/load.sql"
sqlite3 "$W/s.db" "SELECT hex(k) FROM k ORDER BY k" > "$W/sq.hex"
# The tool escapes bytes; turn its keys back into hex for the comparison.
python3 - "$W" <<'EOF'
import codecs, sys
w = sys.argv[1]
out = []
for line in open(f"{w}/bt.keys", "rb").read().split(b"\n")[:-1]:
    raw = codecs.escape_decode(line)[0]
    out.append(raw.hex().upper())
open(f"{w}/bt.hex", "w").write("\n".join(out) + "\n")
EOF
cmp -s "$W/bt.hex" "$W/sq.hex" || fail "ordered scan differs from sqlite3's ORDER BY"
"$BT" "$W/k.db" stats | grep -q "^height" || fail "stats"

# A flipped byte in the root page is reported with its page number, by check and by get.
cp "$W/k.db" "$W/c.db"
root=$("$BT" "$W/c.db" stats | awk '$1 == "root" { print $2 }')
python3 - "$W/c.db" "$root" <<'EOF'
import sys
off = int(sys.argv[2]) * 4096 + 2000
f = open(sys.argv[1], "r+b"); f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 1]))
EOF
if "$BT" "$W/c.db" check 2> "$W/err"; then fail "corruption not detected"; fi
grep -q "page $root is corrupt" "$W/err" || { cat "$W/err"; fail "corruption not named by page"; }
if "$BT" "$W/c.db" get apple 2> "$W/err"; then fail "read through a corrupt root"; fi
grep -q "page $root is corrupt" "$W/err" || { cat "$W/err"; fail "get did not name the page"; }

# A flipped byte in the newest meta page: the file opens at the batch before, check
# warns naming the page, and --strict turns the warning into exit status 1.
cp "$W/k.db" "$W/m.db"
txn=$("$BT" "$W/m.db" stats | awk '$1 == "txn" { print $2 }')
slot=$((txn % 2))
python3 - "$W/m.db" "$slot" <<'EOF'
import sys
off = int(sys.argv[2]) * 4096 + 3000
f = open(sys.argv[1], "r+b"); f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 1]))
EOF
"$BT" "$W/m.db" check >"$W/out" 2>"$W/err" || { cat "$W/err"; fail "damaged meta: check should warn, not fail"; }
grep -q "warning: meta page $slot: checksum mismatch" "$W/err" || { cat "$W/err"; fail "meta page not named"; }
grep -q "txn $((txn - 1)), 1 meta page damaged" "$W/out" || { cat "$W/out"; fail "check output"; }
code=0
"$BT" "$W/m.db" check --strict >/dev/null 2>&1 || code=$?
[ "$code" = 1 ] || fail "check --strict exited $code on a damaged meta page, want 1"
echo "btree CLI: ok"
