#!/usr/bin/env bash
# httpd's end-to-end suite with every peer present: curl, ab, headless Chromium (and,
# as root, the privilege-drop test). `cargo test` skips the tests whose tools are
# missing; this installs them first and runs the suite again, so CI always runs all.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$SYSNET_ROOT"

need_pkgs curl apache2-utils chromium strace coreutils
for tool in curl ab chromium strace; do
  command -v "$tool" >/dev/null || { echo "30-httpd: $tool missing after install" >&2; exit 1; }
done
cargo test --locked -p servers --test httpd -- --test-threads=2
