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
