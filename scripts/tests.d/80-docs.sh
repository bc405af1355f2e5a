#!/usr/bin/env bash
# The doc test: every example marked runnable in README.md and docs/*.md runs as written
# (scripts/doctest.sh), with the clients the pages use installed and the release
# binaries built. Servers run on the ports the pages show, or on free ones if those
# are taken.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$SYSNET_ROOT"
need_pkgs python3 curl netcat-openbsd openssl redis-tools procps coreutils
# The pages' `nc` is OpenBSD netcat (-N); make sure that is what `nc` runs here.
nc -h 2>&1 | grep -q -- '-N' || { echo "80-docs: nc is not OpenBSD netcat" >&2; exit 1; }

step "docs: release build"
cargo build --release --locked --workspace --bins -q

step "docs: the examples of README.md and docs/"
timeout 600 scripts/doctest.sh
