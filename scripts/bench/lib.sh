# Shared by the benchmark scripts. Source it after ../lib/common.sh.
#   start_logged NAME CMD...   start CMD in the background, stderr to $OUT/NAME.log;
#                              sets BG_PID
#   wait_listening LOG         wait (5 s max) for the "listening addr=" line
#   stop_pid PID               SIGTERM, then wait (5 s), then SIGKILL
#   peak_rss_kib PID           the process's peak resident set (VmHWM), in KiB
#   wrk_stats FILE             "REQS RPS P50_MS P99_MS ERRORS" from `wrk --latency` output
#   start_servers              start every `start_NAME PORT DOCROOT` of $SERVERS at once
#                              (ports from $PORT_BASE); fills PID_OF and PORT_OF
#   lighttpd_conf FILE DOCROOT PORT ERRLOG IDLE MAXFDS MAXCONNS
#                              write the static-file lighttpd.conf the benchmarks share
#   nginx_tls_conf DIR PORT DOCROOT CERT KEY KEEPALIVE_S NOFILE CONNS
#   lighttpd_tls_conf DIR PORT DOCROOT CERT KEY IDLE_S MAXFDS MAXCONNS
#                              DIR/nginx.conf, DIR/lighttpd.conf for the HTTPS benchmarks
#                              (TLS 1.2 and 1.3, h2 by ALPN, one certificate)
#   run_rounds PARAMS...       ROUNDS rounds of `run_case SERVER PID PORT PARAM FILE ROUND`
#                              over $FILES x PARAMS x servers, the servers taking turns
#                              going first

start_logged() {
  local name=$1; shift
  "$@" 2>"$OUT/$name.log" >/dev/null &
  BG_PID=$!
}

wait_listening() {
  local log=$1 i
  for i in $(seq 100); do
    grep -q "listening addr=" "$log" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "server never logged 'listening': $(cat "$log")" >&2
  return 1
}

wait_port() {
  local port=$1 i
  for i in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listening on port $port" >&2
  return 1
}

stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

peak_rss_kib() {
  awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}

# field NAME LINE: the value of NAME=VALUE in a loadgen result line.
field() {
  tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k {print $2}'
}

# cpu_ms PID: user + system CPU the process has used so far, in milliseconds.
cpu_ms() {
  local hz
  hz=$(getconf CLK_TCK)
  awk -v hz="$hz" '{ print int(($14 + $15) * 1000 / hz) }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# wrk_stats FILE: "REQS RPS P50_MS P99_MS ERRORS" from `wrk --latency` output (zeros for
# what is missing); latencies are converted to milliseconds whatever unit wrk chose.
wrk_stats() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return v / 1000
      if (v ~ /ms$/) return v + 0
      if (v ~ /s$/) return v * 1000
      return v + 0
    }
    /requests in/ { reqs = $1 }
    /^Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx/ { errs += $NF }
    /Socket errors/ { gsub(/,/, ""); errs += $4 + $6 + $8 + $10 }
    END { printf "%d %s %.3f %.3f %d\n", reqs, (rps == "" ? 0 : rps), p50, p99, errs }
  ' "$1"
}

# start_servers: every server of $SERVERS up at once, each idle but while measured, so
# rounds can interleave them. Uses the caller's start_NAME, wait_port, DOCROOT, WORK and
# PIDS (killed by the caller's cleanup).
declare -A PID_OF PORT_OF
start_servers() {
  local i=0 server port
  for server in $SERVERS; do
    port=$((PORT_BASE + i))
    i=$((i + 1))
    step "$server on 127.0.0.1:$port"
    ( "start_$server" "$port" "$DOCROOT" ) > "$WORK/$server.log" 2>&1 &
    PID_OF[$server]=$!
    PORT_OF[$server]=$port
    PIDS+=("$!")
    wait_port "$port"
  done
}

# run_rounds PARAMS...: every case ROUNDS times per server; each round starts with the
# server that went second in the one before, so no server always follows the same one.
run_rounds() {
  local order round file param server
  read -r -a order <<< "$SERVERS"
  for round in $(seq 1 "$ROUNDS"); do
    step "round $round of $ROUNDS"
    for file in $FILES; do
      for param in "$@"; do
        for server in "${order[@]}"; do
          run_case "$server" "${PID_OF[$server]}" "${PORT_OF[$server]}" "$param" "$file" "$round"
        done
      done
    done
    order=("${order[@]:1}" "${order[0]}")
  done
}

# lighttpd_conf FILE DOCROOT PORT ERRLOG IDLE MAXFDS MAXCONNS: the configuration every
# static-file benchmark gives lighttpd: keep-alive without a request limit, the
# benchmark files' types, and nginx gzip_static's equivalent (the precompressed
# NAME.html.gz sent, marked as a coding of the page, to a client that accepts gzip).
lighttpd_conf() {
  cat > "$1" <<CONF
server.document-root = "$2"
server.bind = "127.0.0.1"
server.port = $3
server.errorlog = "$4"
server.max-keep-alive-requests = 1000000
server.max-keep-alive-idle = $5
server.max-fds = $6
server.max-connections = $7
mimetype.assign = ( ".html.gz" => "text/html", ".html" => "text/html", ".bin" => "application/octet-stream" )
server.modules += ( "mod_rewrite", "mod_setenv" )
\$REQUEST_HEADER["Accept-Encoding"] =~ "gzip" {
  url.rewrite-once = ( "^(/.*\\.html)\$" => "\$1.gz" )
}
\$HTTP["url"] =~ "\\.html\\.gz\$" {
  setenv.add-response-header = ( "Content-Encoding" => "gzip", "Vary" => "Accept-Encoding" )
}
CONF
}

# nginx_tls_conf DIR PORT DOCROOT CERT KEY KEEPALIVE_S NOFILE CONNS: DIR/nginx.conf for
# the HTTPS benchmarks: master and two workers, TLS 1.2 and 1.3 with a session cache
# and tickets, HTTP/2 by ALPN, keep-alive without a request limit.
nginx_tls_conf() {
  mkdir -p "$1"
  cat > "$1/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes 2;
worker_rlimit_nofile $7;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections $8; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout ${6}s;
  types { text/html html; application/octet-stream bin; }
  client_body_temp_path $1/body;
  proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi;
  scgi_temp_path $1/scgi;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:SSL:10m;
  ssl_session_tickets on;
  server {
    listen 127.0.0.1:$2 ssl http2;
    ssl_certificate $4;
    ssl_certificate_key $5;
    root $3;
  }
}
CONF
}

# lighttpd_tls_conf DIR PORT DOCROOT CERT KEY IDLE_S MAXFDS MAXCONNS: DIR/lighttpd.conf
# for the HTTPS benchmarks: mod_openssl with TLS 1.2 and up, h2 on, keep-alive without
# a request limit.
lighttpd_tls_conf() {
  mkdir -p "$1"
  cat > "$1/lighttpd.conf" <<CONF
server.document-root = "$3"
server.bind = "127.0.0.1"
server.port = $2
server.errorlog = "$1/error.log"
server.max-keep-alive-requests = 1000000
server.max-keep-alive-idle = $6
server.max-read-idle = $6
server.max-fds = $7
server.max-connections = $8
server.feature-flags += ( "server.h2proto" => "enable" )
mimetype.assign = ( ".html" => "text/html", ".bin" => "application/octet-stream" )
server.modules += ( "mod_openssl" )
ssl.engine = "enable"
ssl.pemfile = "$4"
ssl.privkey = "$5"
ssl.openssl.ssl-conf-cmd = ( "MinProtocol" => "TLSv1.2" )
CONF
}
