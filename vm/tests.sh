#!/bin/sh
# The in-VM tests of /dev/sysnet (busybox sh). One `PASS name` / `FAIL name` line per test,
# then `N passed, N failed`. scripts/run-vm.sh --test boots the VM that runs this.
KO=/sysnet/sysnet.ko
DEV=/dev/sysnet
pass=0
fail=0

# run NAME CMD...: CMD's output is shown only when it fails.
run() {
  name=$1
  shift
  if "$@" >/tmp/test.out 2>&1; then
    echo "PASS $name"
    pass=$((pass + 1))
  else
    echo "FAIL $name"
    sed 's/^/    /' /tmp/test.out | head -n 30
    fail=$((fail + 1))
  fi
}

# devwrite TEXT: TEXT (printf format) in exactly one write(2); dd's status is the write's.
devwrite() {
  printf "$1" >/tmp/req
  dd if=/tmp/req of=$DEV bs=65536 count=1 2>/tmp/dd.err
}

# okwrite TEXT: devwrite that must succeed; says why when it does not.
okwrite() {
  devwrite "$1" && return 0
  echo "write refused: $(cat /tmp/dd.err | head -n 1): $(printf "$1" | head -c 60)"
  return 1
}

# clear_table: deletes every counter (`reset` keeps the names), 40 names a write.
clear_table() {
  cut -d' ' -f1 $DEV >/tmp/names
  while [ -s /tmp/names ]; do
    okwrite "delete $(head -n 40 /tmp/names | tr '\n' ' ' | sed 's/ $//')" || return 1
    sed -i '1,40d' /tmp/names
  done
}

expect_eq() { # WANT GOT
  [ "$1" = "$2" ] && return 0
  printf 'want:\n%s\ngot:\n%s\n' "$1" "$2"
  return 1
}

t_insmod() {
  insmod $KO || return 1
  grep -q '^sysnet ' /proc/modules
}

t_node_and_mode() {
  [ -c $DEV ] || { echo "$DEV is not a character device"; return 1; }
  expect_eq "644 root root" "$(stat -c '%a %U %G' $DEV)"
}

t_starts_empty() {
  expect_eq "" "$(cat $DEV)"
}

t_round_trip() {
  okwrite 'zeta.b 2\nalpha.a 1\n' || return 1
  okwrite 'alpha.a 41' || return 1 # no final newline: still one line
  expect_eq "$(printf 'alpha.a 42\nzeta.b 2')" "$(cat $DEV)"
}

# Each of these must fail with EINVAL and leave the table exactly as it was.
t_malformed_rejected() {
  clear_table || return 1
  okwrite 'keep.me 5\n' || return 1
  before=$(cat $DEV)
  long49=$(printf '%049d' 0 | tr 0 a)
  big=$(printf 'filler.counter_%04d 1\n' $(seq 1 200)) # > 4 KiB of valid lines
  ok=0
  for req in 'keep.me\n' 'keep.me \n' 'keep.me  1\n' ' keep.me 1\n' 'keep.me 1 \n' \
    'Keep.me 1\n' 'keep-me 1\n' 'keep.me - 1\n' 'keep.me +-1\n' 'keep.me ++1\n' 'keep.me =\n' \
    'keep.me 0x10\n' 'keep.me 1x\n' 'keep.me 18446744073709551616\n' 'keep.me 99999999999999999999\n' \
    'keep.me 1\r\n' 'keep.me 1\n\nother.x 1\n' '\n' 'reset \n' 'reset keep.me  keep.me\n' \
    'delete\n' 'delete \n' 'reset reset\n' 'delete delete\n' \
    "$long49 1\n" 'keep.me 1\nnew.one 1\nbad line\n' "$big\n" \
    'keep.me -6\n' 'keep.me 1\nkeep.me -7\n' 'keep.me 18446744073709551611\n' \
    'keep.me =18446744073709551615\nkeep.me 1\n' 'new.gauge -1\n'; do
    if devwrite "$req"; then
      echo "accepted: $(printf "$req" | head -c 80 | od -c | head -n 2)"
      ok=1
    elif ! grep -q 'Invalid argument' /tmp/dd.err; then
      echo "wrong error for $(printf "$req" | head -c 40): $(cat /tmp/dd.err)"
      ok=1
    fi
    now=$(cat $DEV)
    [ "$now" = "$before" ] || { echo "table changed by rejected write '$req': $now"; ok=1; }
  done
  return $ok
}

t_name_limits_accepted() {
  clear_table || return 1
  long48=$(printf '%048d' 0 | tr 0 a)
  okwrite "$long48 1\nz 1\n0.9_x 3\n" || return 1
  expect_eq "$(printf '0.9_x 3\n%s 1\nz 1' "$long48")" "$(cat $DEV)"
}

# Signed deltas and set, checked: nothing wraps, a bad result refuses the whole write.
t_signed_deltas_and_set() {
  clear_table || return 1
  okwrite 'big 18446744073709551615\ngauge 7\n' || return 1
  okwrite 'gauge -2\ngauge +1\n' || return 1
  expect_eq "$(printf 'big 18446744073709551615\ngauge 6')" "$(cat $DEV)" || return 1
  devwrite 'gauge +1\nbig 1\n' && { echo "u64 overflow accepted"; return 1; }
  devwrite 'gauge -7\n' && { echo "went below 0"; return 1; }
  expect_eq "$(printf 'big 18446744073709551615\ngauge 6')" "$(cat $DEV)" || return 1
  okwrite 'big =3\nnew.set =9\ngauge -6\n' || return 1
  expect_eq "$(printf 'big 3\ngauge 0\nnew.set 9')" "$(cat $DEV)" || return 1
  # A gauge may pass through 0 within one write, lines apply in order.
  okwrite 'gauge +2\ngauge -2\ngauge +0\n' || return 1
  expect_eq "gauge 0" "$(grep '^gauge ' $DEV)"
}

t_counter_limit_enospc() {
  clear_table || return 1
  okwrite "$(printf 'lim.c%03d 1\\n' $(seq 1 128))" || return 1
  before=$(cat $DEV)
  [ "$(echo "$before" | wc -l)" -eq 128 ] || { echo "want 128 counters"; return 1; }
  if devwrite 'lim.c001 1\nlim.c999 1\n'; then
    echo "a 129th counter was accepted"
    return 1
  fi
  grep -q 'No space left' /tmp/dd.err || { echo "wrong error: $(cat /tmp/dd.err)"; return 1; }
  expect_eq "$before" "$(cat $DEV)" || return 1
  okwrite 'lim.c128 1\n' || return 1 # existing counters still count at the limit
  expect_eq "lim.c128 2" "$(grep '^lim.c128 ' $DEV)"
}

t_reset() {
  clear_table || return 1
  okwrite 'a 1\nb 2\nc 3\n' || return 1
  okwrite 'reset\n' || return 1
  expect_eq "$(printf 'a 0\nb 0\nc 0')" "$(cat $DEV)" || return 1 # names kept
  okwrite 'a 3\nb 4\nc 5\n' || return 1
  okwrite 'reset a c\n' || return 1
  expect_eq "$(printf 'a 0\nb 4\nc 0')" "$(cat $DEV)" || return 1
  # Lines apply in order: reset, then add, in one write.
  okwrite 'reset\nb 1\n' || return 1
  expect_eq "$(printf 'a 0\nb 1\nc 0')" "$(cat $DEV)"
}

t_delete() {
  clear_table || return 1
  okwrite 'a 1\nb 1\nc 1\n' || return 1
  okwrite 'delete a b c\n' || return 1
  expect_eq "" "$(cat $DEV)" || return 1
  okwrite 'x.1 1\nx.2 2\nx.3 3\n' || return 1
  okwrite 'delete x.2\n' || return 1
  expect_eq "$(printf 'x.1 1\nx.3 3')" "$(cat $DEV)" || return 1
  # An unknown name refuses the whole write with ENOENT.
  for req in 'delete x.1 nothere\n' 'x.1 5\nreset nothere\n' 'delete x.1 x.1\n' 'reset 5\n'; do
    devwrite "$req" && { echo "accepted: $req"; return 1; }
    grep -q 'No such file' /tmp/dd.err || { echo "wrong error for $req: $(cat /tmp/dd.err)"; return 1; }
  done
  expect_eq "$(printf 'x.1 1\nx.3 3')" "$(cat $DEV)" || return 1
  # Deleting frees a slot: 128 counters, delete one, a new one fits.
  okwrite 'delete x.1 x.3\n' || return 1
  okwrite "$(printf 'lim.c%03d 1\\n' $(seq 1 128))" || return 1
  devwrite 'new.one 1\n' && { echo "129th accepted"; return 1; }
  okwrite 'delete lim.c064\nnew.one 1\n' || return 1
  [ "$(cat $DEV | wc -l)" -eq 128 ] && grep -qx 'new.one 1' $DEV
}

# Two pollers (sysnet-top, which sleeps in epoll_wait) both wake on one write, print
# nothing while nothing changes, and a reader that never reads again blocks nobody.
t_poll_wakeups() {
  clear_table || return 1
  okwrite 'poll.a 1\n' || return 1
  sysnet-top --json --interval 0 --count 2 >/tmp/top1 2>&1 &
  p1=$!
  sysnet-top --json --interval 0 --count 2 >/tmp/top2 2>&1 &
  p2=$!
  exec 6<$DEV # opened, never read
  sleep 1
  for f in /tmp/top1 /tmp/top2; do
    [ "$(wc -l <$f)" -eq 1 ] || { echo "$f printed without a change:"; cat $f; kill $p1 $p2; return 1; }
  done
  i=0
  while [ $i -lt 200 ]; do # writers are not held up by the idle reader
    printf 'poll.b 1\n' >$DEV || { echo "write $i failed"; kill $p1 $p2; return 1; }
    i=$((i + 1))
  done
  n=0
  while kill -0 $p1 2>/dev/null || kill -0 $p2 2>/dev/null; do
    [ $n -lt 50 ] || { echo "a poller did not wake"; cat /tmp/top1 /tmp/top2; kill $p1 $p2; return 1; }
    usleep 100000
    n=$((n + 1))
  done
  exec 6<&-
  wait $p1 || { cat /tmp/top1; return 1; }
  wait $p2 || { cat /tmp/top2; return 1; }
  for f in /tmp/top1 /tmp/top2; do
    [ "$(wc -l <$f)" -eq 2 ] || { echo "$f:"; cat $f; return 1; }
    tail -n 1 $f | grep -q '"poll.b":{"value":' || { echo "$f missed the change:"; cat $f; return 1; }
  done
}

t_oversize_write() {
  clear_table || return 1
  # Exactly 4096 bytes of valid lines is accepted, 4097 is not.
  # 240 lines of 17 bytes (the \n stays two characters until devwrite's printf) = 4080.
  four_k=$(for i in $(seq 1 240); do printf '%s' 'size.x 000000001\n'; done)
  devwrite "${four_k}size.y 00000001\n" || { echo "4096 bytes refused: $(cat /tmp/dd.err)"; return 1; }
  [ "$(stat -c %s /tmp/req)" -eq 4096 ] || { echo "test bug: $(stat -c %s /tmp/req) bytes"; return 1; }
  devwrite "${four_k}size.y 000000001\n" && { echo "4097 bytes accepted"; return 1; }
  grep -q 'Invalid argument' /tmp/dd.err && expect_eq "$(printf 'size.x 240\nsize.y 1')" "$(cat $DEV)"
}

t_small_buffer_reads() {
  clear_table || return 1
  okwrite "$(printf 'small.c%02d 123456789\\n' $(seq 1 40))" || return 1
  whole=$(cat $DEV)
  expect_eq "$whole" "$(dd if=$DEV bs=4 2>/dev/null)" || return 1
  expect_eq "$whole" "$(dd if=$DEV bs=1 2>/dev/null)" || return 1
  # Skipping: dd seeks (6.12: `default_llseek`) or, where lseek gives ESPIPE (7.2's
  # `kernel::miscdevice` has no llseek), reads its way to offset 100; the same bytes either way.
  expect_eq "$(cat $DEV | tail -c +101)" "$(dd if=$DEV bs=1 skip=100 2>/dev/null)"
}

# 8 writers x 1,000 writes of two lines each (a shared total and a per-writer counter) while
# a reader with a 4-byte buffer checks every snapshot: total == sum of the per-writer counts.
t_concurrent_writers() {
  clear_table || return 1
  for w in 1 2 3 4 5 6 7 8; do
    (
      exec 3>$DEV
      i=0
      while [ $i -lt 1000 ]; do
        printf 'conc.total 1\nconc.w%d 1\n' $w >&3 || exit 1
        i=$((i + 1))
      done
    ) &
  done
  bad=0
  reads=0
  while [ -n "$(jobs -p)" ] && [ $reads -lt 200 ]; do
    dd if=$DEV bs=4 2>/dev/null >/tmp/snap
    awk '$1 == "conc.total" { t = $2 } $1 ~ /^conc\.w/ { s += $2 }
         END { if (t != s) { print "inconsistent snapshot: total " t ", sum " s; exit 1 } }' \
      /tmp/snap || bad=1
    reads=$((reads + 1))
  done
  wait
  echo "snapshots checked during the run: $reads"
  [ $bad -eq 0 ] || return 1
  [ $reads -ge 3 ] || { echo "too few snapshots checked while writing"; return 1; }
  want=$(printf 'conc.total 8000\n'; for w in 1 2 3 4 5 6 7 8; do printf 'conc.w%d 1000\n' $w; done)
  expect_eq "$want" "$(cat $DEV)"
}

t_non_root_cannot_write() {
  su -s /bin/sh nobody -c "cat $DEV >/dev/null" || { echo "nobody cannot read"; return 1; }
  if su -s /bin/sh nobody -c "echo 'x.y 1' >$DEV" 2>/dev/null; then
    echo "nobody could write"
    return 1
  fi
  return 0
}

t_ioctl_enotty() {
  out=$(stty -F $DEV 2>&1) && { echo "stty succeeded: $out"; return 1; }
  echo "$out" | grep -q 'Inappropriate ioctl'
}

t_busy_while_open() {
  exec 5<$DEV
  if rmmod sysnet 2>/dev/null; then
    exec 5<&-
    echo "module unloaded with a file open"
    return 1
  fi
  exec 5<&-
  grep -q '^sysnet ' /proc/modules
}

t_reload_cycles() {
  i=0
  while [ $i -lt 20 ]; do
    rmmod sysnet || { echo "rmmod failed in cycle $i"; return 1; }
    [ -e $DEV ] && { echo "$DEV left behind in cycle $i"; return 1; }
    grep -q '^sysnet ' /proc/modules && { echo "module listed after rmmod"; return 1; }
    [ -e /sys/class/misc/sysnet ] && { echo "sysfs entry left behind"; return 1; }
    insmod $KO || { echo "insmod failed in cycle $i"; return 1; }
    [ -z "$(cat $DEV)" ] || { echo "fresh module not empty in cycle $i"; return 1; }
    okwrite "cycle.n $i\n" || return 1
    expect_eq "cycle.n $i" "$(cat $DEV)" || return 1
    i=$((i + 1))
  done
}

# Kernels with `#[kunit_tests]` and CONFIG_KUNIT (the 7.2 VM): the module's own suite
# (parse_line, the table) ran when it was loaded, and every case passed.
t_kunit_suite() {
  dmesg >/tmp/dmesg.txt
  grep -q '# Subtest: sysnet$' /tmp/dmesg.txt || { echo "no KUnit suite 'sysnet' in the kernel log"; return 1; }
  if grep -E 'not ok [0-9]+ ' /tmp/dmesg.txt; then
    return 1
  fi
  grep -E '# sysnet: pass:[1-9][0-9]* fail:0 skip:0' /tmp/dmesg.txt | head -n 1 | grep . || {
    echo "no passing summary for the suite:"
    grep -E 'sysnet|ok [0-9]' /tmp/dmesg.txt | head -n 20
    return 1
  }
  grep -qE '(^|\] )ok [0-9]+ sysnet$' /tmp/dmesg.txt || { echo "the suite did not end with 'ok N sysnet'"; return 1; }
}

t_no_kernel_warnings() {
  if dmesg | grep -E 'BUG|WARNING|Oops|Call Trace|rust_panic|panicked'; then
    return 1
  fi
  return 0
}

echo "sysnet-vm: running tests on $(uname -r), $(nproc) CPU(s)"
run insmod t_insmod
case "$(uname -r)" in
  6.12.*) ;; # no #[kunit_tests] before 6.15
  *)
    run kunit_suite t_kunit_suite
    # The suite's own count, for the log (`# sysnet: pass:3 fail:0 skip:0 total:3`).
    grep -E '# sysnet: pass:' /tmp/dmesg.txt 2>/dev/null | sed 's/^.*# /    KUnit /' | head -n 1
    ;;
esac
run node_and_mode t_node_and_mode
run starts_empty t_starts_empty
run round_trip t_round_trip
run malformed_writes_rejected t_malformed_rejected
run name_limits_accepted t_name_limits_accepted
run signed_deltas_and_set t_signed_deltas_and_set
run counter_limit_enospc t_counter_limit_enospc
run reset_keeps_names t_reset
run delete t_delete
run oversize_write t_oversize_write
run small_buffer_reads t_small_buffer_reads
run concurrent_writers t_concurrent_writers
run non_root_cannot_write t_non_root_cannot_write
run ioctl_enotty t_ioctl_enotty
run busy_while_open t_busy_while_open
[ -x /usr/local/bin/sysnet-top ] && run poll_wakes_two_readers t_poll_wakeups
if [ -f /sysnet/servers-tests.sh ]; then
  . /sysnet/servers-tests.sh
fi
run reload_cycles_20 t_reload_cycles
run no_kernel_warnings t_no_kernel_warnings
echo "$pass passed, $fail failed"
