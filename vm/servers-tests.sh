# Sourced by tests.sh: the servers' counters reaching /dev/sysnet. Each test is skipped
# (not run) when its server is not in this build.

# wait_for PATTERN SECS: until a line of /dev/sysnet matches PATTERN (grep -x).
wait_for() {
  n=0
  while [ $n -lt $(($2 * 10)) ]; do
    grep -qx "$1" $DEV && return 0
    usleep 100000
    n=$((n + 1))
  done
  echo "no line '$1' after $2 s; /dev/sysnet has:"
  cat $DEV
  return 1
}

wait_port() { # PORT: until something listens on 127.0.0.1:PORT
  n=0
  while [ $n -lt 50 ]; do
    netstat -ltn 2>/dev/null | grep -q ":$1 " && return 0
    usleep 100000
    n=$((n + 1))
  done
  echo "nothing listens on port $1"
  return 1
}

# 5 clients each send 6 bytes and read them back; after the 1 s flush the device shows
# the totals, and the gauge connections_active went up and back down to 0 (by signed deltas).
t_echo_counters() {
  okwrite 'reset' || return 1
  sysnet-echo --listen 127.0.0.1:7001 >/tmp/echo.log 2>&1 &
  pid=$!
  wait_port 7001 || { cat /tmp/echo.log; kill $pid; return 1; }
  # A held connection first: the gauge must read 1 while it is open.
  (sleep 3 | nc 127.0.0.1 7001 >/dev/null) &
  holder=$!
  wait_for 'echo.connections_active 1' 5 || { kill $pid; return 1; }
  i=0
  while [ $i -lt 5 ]; do
    got=$(printf 'hello\n' | timeout 5 nc 127.0.0.1 7001)
    [ "$got" = hello ] || { echo "echo replied '$got'"; kill $pid; return 1; }
    i=$((i + 1))
  done
  wait $holder
  wait_for 'echo.connections_total 6' 5 || { kill $pid; return 1; }
  wait_for 'echo.connections_active 0' 5 || { kill $pid; return 1; }
  wait_for 'echo.bytes_in 30' 5 || { kill $pid; return 1; }
  wait_for 'echo.bytes_out 30' 5 || { kill $pid; return 1; }
  # The last push happens at shutdown: one more client, then SIGTERM right away.
  printf 'bye\n' | timeout 5 nc 127.0.0.1 7001 >/dev/null
  kill -TERM $pid
  wait $pid
  grep -qx 'echo.connections_total 7' $DEV || { echo "no final push:"; cat $DEV; return 1; }
  grep -qx 'echo.bytes_in 34' $DEV || { echo "no final push:"; cat $DEV; return 1; }
}

# strace-lite follows the echo server through one connection.
t_strace_echo() {
  strace-lite -f -o /tmp/trace-echo.txt sysnet-echo --listen 127.0.0.1:7002 \
    >/tmp/strace-echo.log 2>&1 &
  pid=$!
  wait_port 7002 || { cat /tmp/strace-echo.log; kill $pid; return 1; }
  got=$(printf 'traced\n' | timeout 5 nc 127.0.0.1 7002)
  kill -TERM $(pidof sysnet-echo)
  wait $pid
  [ "$got" = traced ] || { echo "echo under strace-lite replied '$got'"; return 1; }
  for call in 'execve' 'accept' 'traced'; do
    grep -q "$call" /tmp/trace-echo.txt || { echo "no $call in the trace:"; tail -n 20 /tmp/trace-echo.txt; return 1; }
  done
}

if [ -x /usr/local/bin/sysnet-echo ]; then
  run echo_counters_reach_device t_echo_counters
  if [ -x /usr/local/bin/strace-lite ]; then
    run strace_lite_on_echo t_strace_echo
  fi
fi

# 100 requests with busybox wget; after the flush interval the device shows them all.
t_capstone_counters() {
  okwrite 'reset' || return 1
  capstone --listen 127.0.0.1:8081 --root /srv/www >/tmp/capstone-test.log 2>&1 &
  pid=$!
  wait_port 8081 || { cat /tmp/capstone-test.log; kill $pid; return 1; }
  i=0
  while [ $i -lt 100 ]; do
    wget -q -O /dev/null http://127.0.0.1:8081/ || { echo "request $i failed"; kill $pid; return 1; }
    i=$((i + 1))
  done
  wait_for 'capstone.requests_total 100' 5 || { tail -n 20 /tmp/capstone-test.log; kill $pid; return 1; }
  kill -TERM $pid
  wait $pid
  grep -qx 'capstone.requests_total 100' $DEV
}

# strace-lite follows capstone (and its workers) through one request.
t_strace_capstone() {
  strace-lite -f -o /tmp/trace.txt capstone --listen 127.0.0.1:8082 --root /srv/www \
    >/tmp/strace-capstone.log 2>&1 &
  pid=$!
  wait_port 8082 || { cat /tmp/strace-capstone.log; kill $pid; return 1; }
  got=$(wget -q -O - http://127.0.0.1:8082/ | head -c 200)
  kill -TERM $(pidof capstone) 2>/dev/null
  wait $pid
  [ -n "$got" ] || { echo "no page through the traced capstone"; return 1; }
  for call in 'execve' 'accept' 'sendfile|write'; do
    grep -qE "$call" /tmp/trace.txt || { echo "no $call in the trace:"; tail -n 20 /tmp/trace.txt; return 1; }
  done
}

# sysnet-top watches the capstone under load: three updates, the last with a request rate.
t_top_under_load() {
  capstone --listen 127.0.0.1:8083 --root /srv/www >/tmp/capstone-top.log 2>&1 &
  pid=$!
  wait_port 8083 || { cat /tmp/capstone-top.log; kill $pid; return 1; }
  (i=0; while [ $i -lt 400 ]; do wget -q -O /dev/null http://127.0.0.1:8083/ || exit 1; i=$((i + 1)); done) &
  load=$!
  timeout 30 sysnet-top --json --count 3 --prefix capstone. >/tmp/top.json 2>&1
  status=$?
  kill $load 2>/dev/null
  wait $load 2>/dev/null
  kill -TERM $pid
  wait $pid
  cat /tmp/top.json
  [ $status -eq 0 ] || { echo "sysnet-top exited $status"; return 1; }
  [ "$(wc -l </tmp/top.json)" -eq 3 ] || return 1
  tail -n 1 /tmp/top.json | grep -q '"capstone.requests_total":{"value":[0-9]*,"rate":[1-9]' || {
    echo "no request rate in the last update"
    return 1
  }
}

if [ -x /usr/local/bin/capstone ]; then
  run capstone_counters_reach_device t_capstone_counters
  echo "/dev/sysnet as the VM saw it after the capstone test:"
  sed 's/^/    /' $DEV
  if [ -x /usr/local/bin/sysnet-top ]; then
    run sysnet_top_under_load t_top_under_load
  fi
  if [ -x /usr/local/bin/strace-lite ]; then
    run strace_lite_on_capstone t_strace_capstone
  fi
fi
