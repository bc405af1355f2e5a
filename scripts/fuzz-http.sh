#!/usr/bin/env bash
# Fuzzes the HTTP request parser (and the whole protocol) with cargo-fuzz for a fixed
# time per target.  Usage: scripts/fuzz-http.sh [SECONDS_PER_TARGET]   (default 60)
# cargo-fuzz needs a nightly toolchain; without one this says so and exits 0 (the
# proptest "never panics" tests in `cargo test` cover the parser everywhere else).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$SYSNET_ROOT/fuzz"
secs=${1:-60}

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz-http: SKIPPED: no nightly toolchain, which cargo-fuzz needs (rustup toolchain install nightly)"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  step "installing cargo-fuzz"
  if ! cargo install cargo-fuzz --locked; then
    echo "fuzz-http: SKIPPED: cargo-fuzz could not be installed"
    exit 0
  fi
fi

for target in http_head http_protocol; do
  step "fuzzing $target for ${secs}s"
  mkdir -p "corpus/$target"
  cargo +nightly fuzz run "$target" "corpus/$target" seeds/http_head -- \
    -max_total_time="$secs" -max_len=24576 -timeout=5 -rss_limit_mb=1024
done
step "fuzzing found nothing"
