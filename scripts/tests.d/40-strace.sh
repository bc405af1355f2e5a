#!/usr/bin/env bash
# strace-lite's end-to-end suite: needs Debian's strace to compare with, and the
# project's server binaries built so the server test does not skip.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$SYSNET_ROOT"
need_pkgs strace coreutils findutils procps util-linux
cargo build --locked --workspace --bins
# The server test picks the capstone, httpd or echo binary next to strace-lite.
cargo test --locked -p strace-lite -- --nocapture 2>&1 | tee target/strace-lite-tests.log | grep -E '^test |SKIP|test result|lines traced'
if grep -q 'SKIP' target/strace-lite-tests.log; then
  echo "strace-lite: a test skipped although its requirements were installed" >&2
  exit 1
fi
grep -q 'test result: FAILED' target/strace-lite-tests.log && exit 1
exit 0
