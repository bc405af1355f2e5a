#!/usr/bin/env bash
# The one test command: formatting, lints, every unit and end-to-end test, then each
# component's checks with real peers in scripts/tests.d/ (in name order), which add
# only what `cargo test` does not run. Installs what it needs.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$SYSNET_ROOT"

# Every peer the cargo tests talk to, installed before they run: a test whose peer is
# missing skips with a message, so CI must never reach that branch. (scripts/tests.d
# installs what only its own checks use: sqlite3, the VM's toolchain, ...)
step "system packages"
need_pkgs build-essential pkg-config ca-certificates procps coreutils findutils util-linux \
  netcat-openbsd curl openssl apache2-utils chromium strace redis-server redis-tools python3-redis python3-brotli \
  python3-prometheus-client systemd nghttp2-client python3-h2

step "peers the cargo tests skip without"
# Each test looks its peer up with `command -v` (or at a fixed path): check the same way.
missing=()
for tool in curl openssl ab strace redis-server redis-cli prlimit timeout /usr/bin/setpriv nghttp; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing+=(chromium)
/usr/bin/python3 -c 'import redis' 2>/dev/null || missing+=(python3-redis)
/usr/bin/python3 -c 'import h2' 2>/dev/null || missing+=(python3-h2)
if [ ${#missing[@]} -ne 0 ]; then
  echo "missing after install: ${missing[*]} (the tests that need them would skip)" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "note: not root: the privilege-drop and attach-permission tests will skip" >&2
fi

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

for part in scripts/tests.d/*.sh; do
  [ -e "$part" ] || continue
  step "$part"
  bash "$part"
done

step "all tests passed"
