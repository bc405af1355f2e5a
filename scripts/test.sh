#!/usr/bin/env bash
# The one test command: formatting, lints, every unit and end-to-end test, then each
# component's own suite in scripts/tests.d/ (in name order). Installs what it needs.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$SYSNET_ROOT"

step "system packages"
need_pkgs build-essential pkg-config curl ca-certificates netcat-openbsd procps openssl

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
