#!/usr/bin/env bash
# Forward-proxy conformance battery: the same ~40 raw requests (hop-by-hop fields both
# ways, pipelining and keep-alive, smuggling attempts, oversized heads, body framing,
# Max-Forwards, TRACE, CONNECT) sent through `proxy`, Debian's tinyproxy and squid, each
# forwarding to the same recording origins (proxy_battery.py); prints a table of what
# each client read and what reached the origin, and marks with `<<` every row where
# ours differs from both peers.
#
#   scripts/conformance/proxy.sh           (as root: installs tinyproxy and squid)
#   PROFILE=release scripts/conformance/proxy.sh
#
# Ports 24100-24104 on 127.0.0.1. squid runs with 16 MB of cache memory and no disk
# cache, as the unprivileged `proxy` user; tinyproxy as `nobody`.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$SYSNET_ROOT"

need_pkgs tinyproxy squid python3

PROFILE=${PROFILE:-debug}
P_ORIGIN=24100 P_OURS=24101 P_TINY=24102 P_SQUID=24103 P_ORIGIN2=24104
step "building proxy ($PROFILE)"
if [ "$PROFILE" = release ]; then
  cargo build --release --locked --bin proxy -q
else
  cargo build --locked --bin proxy -q
fi
PROXY="${CARGO_TARGET_DIR:-$SYSNET_ROOT/target}/$PROFILE/proxy"

WORK=$(mktemp -d /tmp/proxy-conformance.XXXXXX)
chmod 777 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/tinyproxy.conf" <<CONF
User nobody
Group nogroup
Port $P_TINY
Listen 127.0.0.1
Timeout 10
MaxClients 64
LogLevel Warning
LogFile "$WORK/tinyproxy.log"
PidFile "$WORK/tinyproxy.pid"
CONF
cat > "$WORK/squid.conf" <<CONF
http_port 127.0.0.1:$P_SQUID
cache_mem 16 MB
cache deny all
memory_pools off
http_access allow all
access_log none
cache_log $WORK/squid-cache.log
pid_filename $WORK/squid.pid
coredump_dir $WORK
cache_effective_user proxy
shutdown_lifetime 1 seconds
CONF

RUST_LOG=warn "$PROXY" --listen "127.0.0.1:$P_OURS" --allow-connect-port "$P_ORIGIN" \
  > "$WORK/proxy.log" 2>&1 &
PIDS+=($!)
tinyproxy -d -c "$WORK/tinyproxy.conf" > "$WORK/tinyproxy.out" 2>&1 &
PIDS+=($!)
squid -N -f "$WORK/squid.conf" > "$WORK/squid.out" 2>&1 &
PIDS+=($!)

for port in $P_OURS $P_TINY $P_SQUID; do
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
done

step "forward proxy battery: ours, tinyproxy $(tinyproxy -v | awk '{print $2}'), squid $(squid -v | sed -n 's/.*Version \([^ ]*\).*/\1/p')"
python3 "$(dirname "$0")/proxy_battery.py" "$P_ORIGIN" "$P_ORIGIN2" \
  "proxy=$P_OURS" "tinyproxy=$P_TINY" "squid=$P_SQUID"
