# Sourced by /init: starts the servers this build contains, each exporting its counters to
# /dev/sysnet. Port 8080 is forwarded to the host by scripts/run-vm.sh.
start_servers() {
  started=""
  if [ -x /usr/local/bin/capstone ]; then
    /usr/local/bin/capstone --listen 0.0.0.0:8080 --root /srv/www >/tmp/capstone.log 2>&1 &
    started="$started capstone:8080"
  elif [ -x /usr/local/bin/httpd ]; then
    /usr/local/bin/httpd --listen 0.0.0.0:8080 --root /srv/www >/tmp/httpd.log 2>&1 &
    started="$started httpd:8080"
  fi
  if [ -x /usr/local/bin/sysnet-echo ]; then
    /usr/local/bin/sysnet-echo --listen 0.0.0.0:7001 >/tmp/echo.log 2>&1 &
    started="$started echo:7001"
  fi
  echo "sysnet-vm: servers started:${started:- none} (logs in /tmp)"
}
