#!/usr/bin/env bash
# The doc test: runs the ```sh doctest blocks (and the doctest tables) of README.md and
# docs/*.md from the repository root, servers in the background on free ports, each
# command with a timeout; a failure names the page and line. Expects the release
# binaries (`cargo build --release`); scripts/tests.d/80-docs.sh installs the clients.
#   scripts/doctest.sh [-v] [--list] [FILE...]
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$SYSNET_ROOT"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
exec "$PY" scripts/docs/doctest.py "$@"
