#!/usr/bin/env bash
# Proxy benchmark: the same nginx reached directly, through `proxy --upstream`
# (TCP forwarder, 2 event-loop threads) and through Debian's haproxy (mode tcp, 2 threads), side by
# side in one run; then the HTTP forward proxy (absolute-form requests on kept-alive
# client connections) against Debian's tinyproxy and squid (cache off, 16 MB cache_mem);
# then the capstone as a reverse proxy in front of two nginx upstreams (kept-alive
# upstream connections) against nginx `proxy_pass` with `keepalive` and haproxy
# `mode http`, one core each; then a 1 GiB download through a CONNECT tunnel against
# direct.
#
#   scripts/bench/proxy.sh [SECONDS_PER_CASE]     (default 5; ports 16600-16699)
#   ROUNDS=N      rounds of the 1 GiB download, each direct then tunnel (default 3)
#
# Prints req/s, p50/p99 and the proxy's CPU per case with ratios to haproxy and to
# direct, and draws target/bench/proxy.png. For the 1 GiB download it prints the best
# round of each path and the CPU seconds nginx, the proxy and curl spent on it: on a
# machine with few cores both paths are CPU-bound, and the tunnel's extra TCP hop
# shows there rather than in the wire.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "$(dirname "$0")/lib.sh"
cd "$SYSNET_ROOT"

SECS=${1:-5}
CONNS=${CONNS:-50}
P_NGINX=16600 P_PROXY=16601 P_HAPROXY=16602 P_FWD=16603 P_TINY=16604 P_SQUID=16605
P_NGINX2=16606 P_CAP=16607 P_NGXRP=16608 P_HARP=16609
RP_CONNS=${RP_CONNS:-64}

need_pkgs nginx-light haproxy wrk curl python3 python3-matplotlib procps tinyproxy squid

step "building proxy and capstone (release)"
cargo build --release --locked --bin proxy --bin capstone -q
PROXY="$SYSNET_ROOT/target/release/proxy"
CAPSTONE="$SYSNET_ROOT/target/release/capstone"

WORK=$(mktemp -d /tmp/proxy-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

DOCROOT="$WORK/www"
mkdir -p "$DOCROOT"
head -c 615 /dev/urandom | base64 -w 76 | head -c 615 > "$DOCROOT/615b.html"
head -c 1048576 /dev/urandom > "$DOCROOT/1m.bin"
head -c 65536 /dev/urandom > "$DOCROOT/64k.bin"
# Sparse: the transfer measures the path, not the disk.
truncate -s 1G "$DOCROOT/1g.bin"

mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  types { text/html html; application/octet-stream bin; }
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  server { listen 127.0.0.1:$P_NGINX; root $DOCROOT; }
  server { listen 127.0.0.1:$P_NGINX2; root $DOCROOT; }
}
CONF
cat > "$WORK/haproxy.cfg" <<CONF
global
  nbthread 2
  maxconn 4096
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend f
  bind 127.0.0.1:$P_HAPROXY
  default_backend b
backend b
  server s1 127.0.0.1:$P_NGINX
CONF

nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" > "$WORK/nginx.log" 2>&1 &
NGINX_PID=$!
PIDS+=($NGINX_PID)
RUST_LOG=warn "$PROXY" --workers 2 --listen "127.0.0.1:$P_PROXY" --upstream "127.0.0.1:$P_NGINX" > "$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
PIDS+=($PROXY_PID)
haproxy -db -f "$WORK/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!
PIDS+=($HAPROXY_PID)
RUST_LOG=warn "$PROXY" --listen "127.0.0.1:$P_FWD" --allow-connect-port "$P_NGINX" > "$WORK/fwd.log" 2>&1 &
FWD_PID=$!
PIDS+=($FWD_PID)
mkdir -m 777 "$WORK/peers"
cat > "$WORK/peers/tinyproxy.conf" <<CONF
User nobody
Group nogroup
Port $P_TINY
Listen 127.0.0.1
Timeout 60
MaxClients 256
LogLevel Error
LogFile "$WORK/peers/tinyproxy.log"
PidFile "$WORK/peers/tinyproxy.pid"
CONF
cat > "$WORK/peers/squid.conf" <<CONF
http_port 127.0.0.1:$P_SQUID
cache_mem 16 MB
cache deny all
http_access allow all
access_log none
cache_log $WORK/peers/squid-cache.log
pid_filename $WORK/peers/squid.pid
coredump_dir $WORK/peers
cache_effective_user proxy
shutdown_lifetime 1 seconds
CONF
tinyproxy -d -c "$WORK/peers/tinyproxy.conf" > "$WORK/peers/tinyproxy.out" 2>&1 &
TINY_PID=$!
PIDS+=($TINY_PID)
squid -N -f "$WORK/peers/squid.conf" > "$WORK/peers/squid.out" 2>&1 &
SQUID_PID=$!
PIDS+=($SQUID_PID)

for port in $P_NGINX $P_PROXY $P_HAPROXY; do
  for _ in $(seq 1 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/615b.html" && break
    sleep 0.1
  done
done

cpu_ticks() { [ -z "$1" ] && echo 0 && return; awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
RESULTS="$WORK/results.tsv"
printf 'path\tfile\treqs\trps\tp50_ms\tp99_ms\tcpu_s\terrors\n' > "$RESULTS"
for file in 615b.html 1m.bin; do
  for path in direct proxy haproxy; do
    case $path in
      direct) port=$P_NGINX pid="" ;;
      proxy) port=$P_PROXY pid=$PROXY_PID ;;
      haproxy) port=$P_HAPROXY pid=$HAPROXY_PID ;;
    esac
    out="$WORK/$path-$file.out"
    t0=$(cpu_ticks "$pid")
    timeout $((SECS + 30)) wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "http://127.0.0.1:$port/$file" > "$out" 2>&1 || true
    t1=$(cpu_ticks "$pid")
    read -r reqs rps p50 p99 errs < <(wrk_stats "$out")
    cpu=$(awk -v t=$((t1 - t0)) -v h="$TCK" 'BEGIN {printf "%.2f", t / h}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$path" "$file" "${reqs:-0}" "${rps:-0}" "${p50:-0}" "${p99:-0}" "$cpu" "${errs:-0}" >> "$RESULTS"
    printf '  %-8s %-10s %10s req/s  p50 %8s ms  p99 %8s ms  proxy CPU %ss  errors %s\n' "$path" "$file" "${rps:-?}" "${p50:-?}" "${p99:-?}" "$cpu" "${errs:-?}"
  done
done

step "HTTP forward proxy: wrk -c$CONNS with absolute-form requests, kept-alive clients"
# wrk sends the absolute URL as its request target; each proxy opens the upstream
# connection itself. tinyproxy closes every client connection after one response,
# so its clients reconnect (counted in its req/s, as a user would see it).
cat > "$WORK/absolute.lua" <<LUA
local req = wrk.format("GET", "http://127.0.0.1:$P_NGINX/615b.html")
request = function() return req end
LUA
for port in $P_FWD $P_TINY $P_SQUID; do
  for _ in $(seq 1 100); do
    curl -fs -o /dev/null -x "http://127.0.0.1:$port" "http://127.0.0.1:$P_NGINX/615b.html" && break
    sleep 0.1
  done
done
FWDRES="$WORK/forward.tsv"
printf 'proxy\treqs\trps\tp50_ms\tp99_ms\tcpu_s\terrors\n' > "$FWDRES"
for path in proxy tinyproxy squid; do
  case $path in
    proxy) port=$P_FWD pid=$FWD_PID ;;
    tinyproxy) port=$P_TINY pid=$TINY_PID ;;
    squid) port=$P_SQUID pid=$SQUID_PID ;;
  esac
  out="$WORK/fwd-$path.out"
  t0=$(cpu_ticks "$pid")
  timeout $((SECS + 30)) wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s "$WORK/absolute.lua" \
    "http://127.0.0.1:$port/" > "$out" 2>&1 || true
  t1=$(cpu_ticks "$pid")
  read -r reqs rps p50 p99 errs < <(wrk_stats "$out")
  cpu=$(awk -v t=$((t1 - t0)) -v h="$TCK" 'BEGIN {printf "%.2f", t / h}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$path" "${reqs:-0}" "${rps:-0}" "${p50:-0}" "${p99:-0}" "$cpu" "${errs:-0}" >> "$FWDRES"
  printf '  %-10s %10s req/s  p50 %8s ms  p99 %8s ms  proxy CPU %ss  errors %s\n' "$path" "${rps:-?}" "${p50:-?}" "${p99:-?}" "$cpu" "${errs:-?}"
done

step "reverse proxy: two nginx upstreams behind the capstone, nginx and haproxy, wrk -c$RP_CONNS"
# One core each: the capstone with one loop, nginx with one worker, haproxy with one
# thread; all three keep their upstream connections alive and spread requests round robin.
mkdir -p "$WORK/rp"
cat > "$WORK/rp/capstone.toml" <<CONF
listen = ["127.0.0.1:$P_CAP"]
root = "$DOCROOT"
processes = 0
workers = 1
[[upstream]]
name = "app"
servers = ["127.0.0.1:$P_NGINX", "127.0.0.1:$P_NGINX2"]
keepalive = 64
[[location]]
prefix = "/"
upstream = "app"
CONF
cat > "$WORK/rp/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $WORK/rp/nginx.pid;
error_log $WORK/rp/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $WORK/rp/body;
  proxy_temp_path $WORK/rp/proxy;
  fastcgi_temp_path $WORK/rp/fastcgi;
  uwsgi_temp_path $WORK/rp/uwsgi;
  scgi_temp_path $WORK/rp/scgi;
  upstream app { server 127.0.0.1:$P_NGINX; server 127.0.0.1:$P_NGINX2; keepalive 64; }
  server {
    listen 127.0.0.1:$P_NGXRP;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
cat > "$WORK/rp/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  http-reuse always
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend f
  bind 127.0.0.1:$P_HARP
  default_backend b
backend b
  balance roundrobin
  server s1 127.0.0.1:$P_NGINX
  server s2 127.0.0.1:$P_NGINX2
CONF
RUST_LOG=warn XDG_RUNTIME_DIR="$WORK/rp" "$CAPSTONE" --config "$WORK/rp/capstone.toml" > "$WORK/rp/capstone.log" 2>&1 &
CAP_PID=$!
PIDS+=($CAP_PID)
nginx -p "$WORK/rp" -c "$WORK/rp/nginx.conf" -e "$WORK/rp/error.log" > "$WORK/rp/nginx.out" 2>&1 &
NGXRP_PID=$!
PIDS+=($NGXRP_PID)
haproxy -db -f "$WORK/rp/haproxy.cfg" > "$WORK/rp/haproxy.log" 2>&1 &
HARP_PID=$!
PIDS+=($HARP_PID)
for port in $P_NGINX2 $P_CAP $P_NGXRP $P_HARP; do
  for _ in $(seq 1 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/615b.html" && break
    sleep 0.1
  done
done
RPRES="$WORK/reverse.tsv"
printf 'proxy\tfile\treqs\trps\tp50_ms\tp99_ms\tcpu_s\terrors\n' > "$RPRES"
for file in 615b.html 64k.bin; do
  for path in capstone nginx haproxy; do
    case $path in
      capstone) port=$P_CAP pid=$CAP_PID ;;
      nginx) port=$P_NGXRP pid=$NGXRP_PID ;;
      haproxy) port=$P_HARP pid=$HARP_PID ;;
    esac
    out="$WORK/rp-$path-$file.out"
    t0=$(cpu_ticks "$pid")
    timeout $((SECS + 30)) wrk -t1 -c"$RP_CONNS" -d"${SECS}s" --latency "http://127.0.0.1:$port/$file" > "$out" 2>&1 || true
    t1=$(cpu_ticks "$pid")
    read -r reqs rps p50 p99 errs < <(wrk_stats "$out")
    cpu=$(awk -v t=$((t1 - t0)) -v h="$TCK" 'BEGIN {printf "%.2f", t / h}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$path" "$file" "${reqs:-0}" "${rps:-0}" "${p50:-0}" "${p99:-0}" "$cpu" "${errs:-0}" >> "$RPRES"
    printf '  %-8s %-10s %10s req/s  p50 %8s ms  p99 %8s ms  proxy CPU %ss  errors %s\n' "$path" "$file" "${rps:-?}" "${p50:-?}" "${p99:-?}" "$cpu" "${errs:-?}"
  done
done

step "1 GiB through a CONNECT tunnel vs direct"
# Both paths: the same curl options and sink, the same nginx and file, interleaved
# rounds, best round of each. CPU is user + system seconds of each process during
# the transfer (curl's from bash's `time`, which reports the child's own times).
ROUNDS=${ROUNDS:-3}
# The first read of the sparse file fills the page cache with 1 GiB of zeroed pages
# (2-3 s of nginx CPU here); untimed, so it lands on neither path.
cat "$DOCROOT/1g.bin" > /dev/null
TRANSFERS="$WORK/transfers.tsv"
printf 'path\tseconds\tMiB_per_s\tnginx_cpu_s\tproxy_cpu_s\tcurl_cpu_s\n' > "$TRANSFERS"
for _ in $(seq 1 "$ROUNDS"); do
  for path in direct tunnel; do
    if [ $path = direct ]; then
      args=()
    else
      args=(-p -x "http://127.0.0.1:$P_FWD")
    fi
    n0=$(cpu_ticks "$NGINX_PID") f0=$(cpu_ticks "$FWD_PID")
    TIMEFORMAT='%U %S'
    { time curl -sS -o /dev/null --max-time 120 "${args[@]}" -w '%{time_total}\n' \
        "http://127.0.0.1:$P_NGINX/1g.bin" > "$WORK/curl.out" ; } 2> "$WORK/curl.time"
    n1=$(cpu_ticks "$NGINX_PID") f1=$(cpu_ticks "$FWD_PID")
    secs=$(cat "$WORK/curl.out")
    read -r cu cs < <(tail -n 1 "$WORK/curl.time")
    ng=$(awk -v t=$((n1 - n0)) -v h="$TCK" 'BEGIN {printf "%.2f", t / h}')
    px=$(awk -v t=$((f1 - f0)) -v h="$TCK" 'BEGIN {printf "%.2f", t / h}')
    cc=$(awk -v u="$cu" -v s="$cs" 'BEGIN {printf "%.2f", u + s}')
    mib=$(awk -v s="$secs" 'BEGIN {printf "%.0f", 1024 / s}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$path" "$secs" "$mib" "$ng" "$px" "$cc" >> "$TRANSFERS"
    printf '  %-7s %6.2f s  %6s MiB/s  CPU s: nginx %s  proxy %s  curl %s\n' "$path" "$secs" "$mib" "$ng" "$px" "$cc"
  done
done

mkdir -p target/bench
cp "$RESULTS" target/bench/proxy.tsv
cp "$TRANSFERS" target/bench/proxy-transfer.tsv
cp "$FWDRES" target/bench/proxy-forward.tsv
cp "$RPRES" target/bench/proxy-reverse.tsv
step "results"
python3 - "$RPRES" <<'PY'
import csv, sys
rows = {(r["proxy"], r["file"]): r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t")}
print("| reverse proxy, 2 nginx upstreams | file | req/s | p50 ms | p99 ms | CPU µs/req | ÷ faster peer | errors |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for f in ["615b.html", "64k.bin"]:
    peer = max(float(rows.get((p, f), {}).get("rps") or 0) for p in ["nginx", "haproxy"])
    for p in ["capstone", "nginx", "haproxy"]:
        r = rows.get((p, f))
        if not r:
            continue
        rps, reqs = float(r["rps"] or 0), float(r["reqs"] or 0)
        cpu = 1e6 * float(r["cpu_s"]) / reqs if reqs else float("nan")
        ratio = rps / peer if peer else float("nan")
        print(f"| {p} | {f} | {rps:.0f} | {float(r['p50_ms']):.2f} | {float(r['p99_ms']):.2f} | {cpu:.1f} | {ratio:.2f} | {r['errors']} |")
PY
python3 - "$RESULTS" "$TRANSFERS" target/bench/proxy.png "$FWDRES" <<'PY'
import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
by = {(r["path"], r["file"]): r for r in rows}
print("| file | path | req/s | p50 ms | p99 ms | proxy CPU µs/req | ÷ direct | ÷ haproxy | errors |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
ratios = []
for f in ["615b.html", "1m.bin"]:
    d = float(by[("direct", f)]["rps"] or 0)
    h = float(by[("haproxy", f)]["rps"] or 0)
    for p in ["direct", "proxy", "haproxy"]:
        r = by[(p, f)]
        rps = float(r["rps"] or 0)
        reqs = float(r["reqs"] or 0)
        cpu = 1e6 * float(r["cpu_s"]) / reqs if reqs and p != "direct" else float("nan")
        rd = rps / d if d else float("nan")
        rh = rps / h if h else float("nan")
        if p == "proxy":
            ratios.append(rh)
        print(f"| {f} | {p} | {rps:.0f} | {float(r['p50_ms']):.2f} | {float(r['p99_ms']):.2f} | {cpu:.1f} | {rd:.2f} | {rh:.2f} | {r['errors']} |")
gm = math.exp(sum(math.log(x) for x in ratios if x > 0) / max(1, len(ratios)))
print(f"\nproxy ÷ haproxy, geometric mean over files: {gm:.2f} (target ≥ 1.0)")
t = list(csv.DictReader(open(sys.argv[2]), delimiter="\t"))
best = {}
for r in t:
    if float(r["MiB_per_s"]) > float(best.get(r["path"], {}).get("MiB_per_s", 0)):
        best[r["path"]] = r
def mibs(p):
    return float(best[p]["MiB_per_s"]) if p in best else 0.0
def cpu(p):
    r = best.get(p)
    return sum(float(r[k]) for k in ("nginx_cpu_s", "proxy_cpu_s", "curl_cpu_s")) if r else float("nan")
ratio = mibs("tunnel") / mibs("direct") if mibs("direct") else float("nan")
print(f"1 GiB, best of {len(t) // 2}: direct {mibs('direct'):.0f} MiB/s, tunnel {mibs('tunnel'):.0f} MiB/s, tunnel ÷ direct {ratio:.2f} (target ≥ 0.9)")
print(f"  CPU s for that GiB (nginx + proxy + curl): direct {cpu('direct'):.2f}, tunnel {cpu('tunnel'):.2f}")
fw = {r["proxy"]: r for r in csv.DictReader(open(sys.argv[4]), delimiter="\t")}
print("\n| forward proxy, 615 B, keep-alive clients | req/s | p50 ms | p99 ms | proxy CPU µs/req | ÷ squid | ÷ tinyproxy | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
sq = float(fw.get("squid", {}).get("rps") or 0)
tp = float(fw.get("tinyproxy", {}).get("rps") or 0)
for p in ["proxy", "tinyproxy", "squid"]:
    r = fw.get(p)
    if not r:
        continue
    rps, reqs = float(r["rps"] or 0), float(r["reqs"] or 0)
    cpu = 1e6 * float(r["cpu_s"]) / reqs if reqs else float("nan")
    rs = rps / sq if sq else float("nan")
    rt = rps / tp if tp else float("nan")
    print(f"| {p} | {rps:.0f} | {float(r['p50_ms']):.2f} | {float(r['p99_ms']):.2f} | {cpu:.1f} | {rs:.2f} | {rt:.2f} | {r['errors']} |")
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit(0)
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
for ax, f in zip(axes, ["615b.html", "1m.bin"]):
    paths = ["direct", "proxy", "haproxy"]
    vals = [float(by[(p, f)]["rps"] or 0) for p in paths]
    ax.bar(paths, vals, color=["#999", "#2a7", "#c63"])
    ax.set_title(f"wrk -t1 through the path: {f}")
    ax.set_ylabel("requests/s")
fig.tight_layout()
fig.savefig(sys.argv[3], dpi=110)
print(f"chart: {sys.argv[3]}")
PY
