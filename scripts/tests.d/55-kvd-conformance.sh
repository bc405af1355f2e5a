#!/usr/bin/env bash
# kvd against Redis's own test suite (the version Debian ships), beside redis-server:
# prints the per-unit table. Fails when a unit does not run to its end on kvd (an
# abort or a hang), or when kvd passes less than MIN_RATIO of what redis-server passes
# (default 0.95, the target of the Redis-compatibility work). About three
# minutes.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$SYSNET_ROOT"

step "kvd: Redis 7.0's test suite, kvd beside redis-server"
MIN_RATIO=${MIN_RATIO:-0.95} UNIT_TIMEOUT=${UNIT_TIMEOUT:-240} scripts/conformance/redis.sh
