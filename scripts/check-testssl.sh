#!/usr/bin/env bash
# testssl.sh (Debian's `testssl.sh`) against the capstone's HTTPS, with the private
# CA and certificate of `capstone --tls-self-signed`, configured as a production site
# would be (HSTS and the usual security headers, both off by default as in nginx). Fails on any finding above LOW
# except those a self-signed certificate causes by nature (no public chain of
# trust, no CRL/OCSP URI).
#
#   scripts/check-testssl.sh            (port 19650; takes about 4 minutes)
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$SYSNET_ROOT"

PORT=19650
# What a private CA's certificate cannot have; everything else must be LOW or better.
SELF_SIGNED_IDS="cert_chain_of_trust cert_revocation cert_trust cert_caIssuers"

need_pkgs testssl.sh openssl curl python3

step "building capstone"
cargo build --locked --bin capstone -q
WORK=$(mktemp -d /tmp/testssl-check.XXXXXX)
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/www" "$WORK/state"
echo "<p>testssl</p>" > "$WORK/www/index.html"
cat > "$WORK/capstone.toml" <<CONF
listen = [{ addr = "127.0.0.1:$PORT", tls = true }]
root = "$WORK/www"
processes = 1
workers = 1
hsts = "max-age=31536000; includeSubDomains"

# What a production site sends; testssl's security_headers check looks for them.
[[headers]]
prefix = "/"
set = { "X-Content-Type-Options" = "nosniff", "X-Frame-Options" = "DENY", "Referrer-Policy" = "no-referrer", "Content-Security-Policy" = "default-src 'self'" }
CONF
XDG_RUNTIME_DIR="$WORK/state" RUST_LOG=warn target/debug/capstone --tls-self-signed \
  --config "$WORK/capstone.toml" > "$WORK/out.txt" 2> "$WORK/err.txt" &
PID=$!
for i in $(seq 100); do
  curl -fsS --cacert "$WORK/state/sysnet/tls/ca.pem" -o /dev/null "https://localhost:$PORT/" 2>/dev/null && break
  [ "$i" -eq 100 ] && { echo "capstone does not answer HTTPS" >&2; cat "$WORK/err.txt" >&2; exit 1; }
  sleep 0.1
done

step "testssl.sh against https://127.0.0.1:$PORT/"
testssl --quiet --color 0 --warnings off --openssl-timeout 5 \
  --jsonfile "$WORK/testssl.json" "127.0.0.1:$PORT" > "$WORK/testssl.txt" 2>&1 || true
# Debian's interpreter, as the other scripts use.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
"$PY" - "$WORK/testssl.json" "$SELF_SIGNED_IDS" <<'PY'
import json, sys
findings = json.load(open(sys.argv[1]))
exempt = set(sys.argv[2].split())
rank = {"OK": 0, "INFO": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}
bad = []
for f in findings:
    sev = f.get("severity", "INFO")
    if rank.get(sev, 0) < 2:
        continue
    tag = "self-signed, allowed" if f["id"] in exempt else "FAIL"
    print(f"{sev:8} {f['id']:28} {f['finding'][:90]}  [{tag}]")
    if f["id"] not in exempt:
        bad.append(f["id"])
print(f"{len(findings)} findings; above LOW and not from the self-signed certificate: {len(bad)}")
sys.exit(1 if bad else 0)
PY
