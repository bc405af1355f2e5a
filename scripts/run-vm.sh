#!/usr/bin/env bash
# Boot the sysnet VM: a tiny Rust-enabled kernel, /dev/sysnet loaded, the servers running.
#
#   scripts/run-vm.sh             interactive: a shell on the serial console (Ctrl-A X quits
#                                 QEMU; `exit` in the shell powers off); the server's port is
#                                 forwarded to 127.0.0.1:PORT on the host (printed)
#   scripts/run-vm.sh --test      run the in-VM tests: `PASS name` / `FAIL name` lines and
#                                 `N passed, N failed`, then the device's table as the VM saw
#                                 it after the capstone test; exit status 1 if any failed
#   scripts/run-vm.sh --bench     the /dev/sysnet micro-benchmark (sysnet-devbench) against a
#                                 tmpfs file: writes/s, reads/s, wake-up latency
#   options: --kernel 6.12 | 7.2 (default 6.12; see scripts/build-kernel.sh)
#            --all-kernels (with --test: the tests on every kernel, fails if any fails)
#            --kvm (use KVM instead of TCG)  --port N (host port, default: a free one)
#            --timeout S (whole boot in --test, default 600)
#
# Builds or reuses (from ${SYSNET_CACHE:-/var/cache/sysnet}) the kernel, then builds the
# module, the static userspace binaries (target/vm/) and the initramfs on every run.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$SYSNET_ROOT"

KERNELS=(6.12 7.2)
mode=shell
accel=tcg
port=
timeout_s=600
kernel=6.12
all_kernels=0
pass_on=()
while [ $# -gt 0 ]; do
  case "$1" in
    --test) mode=test ;;
    --bench) mode=bench ;;
    --kvm)
      accel=kvm
      pass_on+=(--kvm)
      ;;
    --kernel)
      kernel=${2:?--kernel needs a version (${KERNELS[*]})}
      shift
      ;;
    --all-kernels) all_kernels=1 ;;
    --port)
      port=${2:?--port needs a number}
      shift
      ;;
    --timeout)
      timeout_s=${2:?--timeout needs seconds}
      pass_on+=(--timeout "$timeout_s")
      shift
      ;;
    -h | --help)
      awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "run-vm.sh: unknown argument '$1' (try --help)" >&2
      exit 2
      ;;
  esac
  shift
done

log() { printf '[run-vm] %s\n' "$*" >&2; }

case " ${KERNELS[*]} " in
  *" $kernel "*) ;;
  *)
    echo "run-vm.sh: unsupported kernel '$kernel' (${KERNELS[*]})" >&2
    exit 2
    ;;
esac

# --all-kernels: this script once per kernel, one after the other (each builds its own
# module and initramfs), then a line per kernel and the sum.
if [ $all_kernels -eq 1 ]; then
  if [ $mode != test ]; then
    echo "run-vm.sh: --all-kernels goes with --test" >&2
    exit 2
  fi
  mkdir -p "$SYSNET_ROOT/target/vm"
  results=()
  total_passed=0
  total_failed=0
  for k in "${KERNELS[@]}"; do
    log "==> kernel $k"
    set +e
    "$SYSNET_ROOT/scripts/run-vm.sh" --test --kernel "$k" "${pass_on[@]}" |
      tee "$SYSNET_ROOT/target/vm/tests-$k.log"
    status=${PIPESTATUS[0]}
    set -e
    summary=$(grep -aE '^[0-9]+ passed, [0-9]+ failed$' "$SYSNET_ROOT/target/vm/tests-$k.log" | tail -n 1)
    if [ -z "$summary" ]; then
      summary="0 passed, 1 failed"
    elif [ "$status" -ne 0 ] && [ "${summary#* passed, }" = "0 failed" ]; then
      summary="${summary%%,*}, 1 failed" # failed before or after the tests themselves
    fi
    results+=("kernel $k: $summary")
    total_passed=$((total_passed + ${summary%% *}))
    f=${summary#* passed, }
    total_failed=$((total_failed + ${f%% *}))
  done
  printf '%s\n' "${results[@]}"
  echo "$total_passed passed, $total_failed failed"
  [ $total_failed -eq 0 ]
  exit
fi

OUT=$SYSNET_ROOT/target/vm
mkdir -p "$OUT"

log "phase 1/6: packages (qemu-system-x86 to boot, busybox-static for the VM's userland,"
log "  cpio + gzip to pack the initramfs, binutils to strip, python3 to pick a free port)"
need_pkgs qemu-system-x86 busybox-static cpio gzip binutils python3 bc

log "phase 2/6: kernel $kernel (built once, then reused from the cache)"
scripts/build-kernel.sh --kernel "$kernel" >/dev/null
eval "$(scripts/build-kernel.sh --kernel "$kernel" --print-env)"
export LIBCLANG_PATH

KMOD=$OUT/kmod-$kernel
log "phase 3/6: module (kmod/ built in $KMOD against $KDIR)"
# Build out of the source tree, and from clean when the kernel tree changed (objects built
# against another tree fail to load).
mkdir -p "$KMOD"
if [ "$(cat "$KMOD/.kdir" 2>/dev/null)" != "$KDIR" ]; then
  rm -rf "$KMOD"
  mkdir -p "$KMOD"
  echo "$KDIR" >"$KMOD/.kdir"
fi
cp kmod/sysnet.rs kmod/Kbuild kmod/Makefile "$KMOD/"
if ! make -s -C "$KMOD" KDIR="$KDIR" RUSTC="$RUSTC" HOSTRUSTC="$HOSTRUSTC" \
  BINDGEN="$BINDGEN" >"$KMOD/build.log" 2>&1; then
  cat "$KMOD/build.log" >&2
  log "module build failed"
  exit 1
fi
if grep -qi 'warning' "$KMOD/build.log"; then
  cat "$KMOD/build.log" >&2
  log "module build printed warnings"
  exit 1
fi

log "phase 4/6: static userspace binaries (release, crt-static, target dir $OUT/cargo)"
bins=()
for b in capstone echo httpd sysnet-top sysnet-devbench; do
  if [ -e "servers/src/bin/$b.rs" ] || [ -e "servers/src/bin/$b/main.rs" ]; then
    bins+=(--bin "$b")
  fi
done
pkgs=(-p servers)
have_strace=0
if [ -f userspace/strace-lite/Cargo.toml ]; then
  pkgs+=(-p strace-lite)
  have_strace=1
fi
triple=x86_64-unknown-linux-gnu
if [ ${#bins[@]} -gt 0 ] || [ $have_strace -eq 1 ]; then
  # --bins of -p strace-lite, and only the chosen bins of servers: build them separately.
  if [ ${#bins[@]} -gt 0 ]; then
    RUSTFLAGS='-C target-feature=+crt-static' cargo build --quiet --release --locked \
      --target $triple --target-dir "$OUT/cargo" -p servers "${bins[@]}"
  fi
  if [ $have_strace -eq 1 ]; then
    RUSTFLAGS='-C target-feature=+crt-static' cargo build --quiet --release --locked \
      --target $triple --target-dir "$OUT/cargo" -p strace-lite --bins
  fi
fi
bindir=$OUT/cargo/$triple/release

log "phase 5/6: initramfs (busybox, sysnet.ko, the servers, a small site)"
root=$OUT/initramfs
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,dev,proc,sys,tmp,etc,root,srv/www,sysnet}
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list-full); do
  [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done
cp vm/init "$root/init"
chmod 755 "$root/init"
cp vm/tests.sh vm/servers.sh "$root/sysnet/"
[ -f vm/servers-tests.sh ] && cp vm/servers-tests.sh "$root/sysnet/"
cp "$KMOD/sysnet.ko" "$root/sysnet/sysnet.ko"
# Only what this run built (the target dir may hold binaries of another checkout). `echo`
# would be shadowed by the shell's builtin: it goes in as `sysnet-echo`.
built=("${bins[@]/--bin/}")
[ $have_strace -eq 1 ] && built+=(strace-lite)
for b in "${built[@]}"; do
  [ -n "$b" ] || continue
  dest=$b
  [ "$b" = echo ] && dest=sysnet-echo
  # Stripped: the release profile keeps line tables, which only slow the boot down here.
  strip -o "$root/usr/local/bin/$dest" "$bindir/$b"
done
if [ -d servers/www ]; then
  cp -r servers/www/. "$root/srv/www/"
else
  printf '<!doctype html>\n<title>sysnet</title>\n<h1>sysnet VM</h1>\n' >"$root/srv/www/index.html"
fi
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
(cd "$root" && find . -print0 | cpio --null -o -H newc --owner=0:0 --quiet | gzip -1) \
  >"$OUT/initramfs.cpio.gz"
log "  $(du -h "$OUT/initramfs.cpio.gz" | cut -f1) initramfs with: $(ls "$root/usr/local/bin" | tr '\n' ' ')"

if [ -z "$port" ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
append="console=ttyS0 panic=-1 loglevel=4"
qemu=(qemu-system-x86_64 -m 512M -smp 2 -kernel "$KDIR/arch/x86/boot/bzImage"
  -initrd "$OUT/initramfs.cpio.gz" -no-reboot
  -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:8080" -device virtio-net-pci,netdev=n0)
if [ $accel = kvm ]; then
  qemu+=(-accel kvm -cpu host)
else
  qemu+=(-accel tcg -cpu qemu64)
fi

if [ $mode = shell ]; then
  log "phase 6/6: booting (TCG unless --kvm); the VM's port 8080 is 127.0.0.1:$port on this host"
  log "  e.g. curl http://127.0.0.1:$port/   (Ctrl-A X quits QEMU)"
  exec "${qemu[@]}" -nographic -append "$append"
fi

if [ $mode = bench ]; then
  console=$OUT/bench-console-$kernel.log
  log "phase 6/6: booting for the benchmark (timeout ${timeout_s}s; serial log: $console)"
  set +e
  timeout --kill-after=10 "$timeout_s" "${qemu[@]}" -display none -monitor none -serial stdio \
    -append "$append sysnet_mode=bench" </dev/null | tee "$console"
  set -e
  grep -aq '^wake-up p99' "$console" || { log "the benchmark did not complete"; exit 1; }
  exit 0
fi
console=$OUT/test-console-$kernel.log
log "phase 6/6: booting for the tests (timeout ${timeout_s}s; serial log: $console)"
t0=$(date +%s.%N)
set +e
timeout --kill-after=10 "$timeout_s" "${qemu[@]}" -display none -monitor none -serial stdio \
  -append "$append sysnet_mode=test" </dev/null | tee "$console"
status=${PIPESTATUS[0]}
set -e
log "VM ran $(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)") s (boot, tests, poweroff)"
# The table the VM printed after the capstone test (the heading, then indented lines), again
# here at the end where a reader of the log looks.
table=$(tr -d '\r' <"$console" |
  awk '/^\/dev\/sysnet as the VM saw it after the capstone test:/ { on = 1; print; next }
       on && /^    / { print; next } { on = 0 }')
if [ -n "$table" ]; then
  echo "$table" | sed "1s/^/[kernel $kernel] /"
fi
# The VM's own summary, then the host's verdict on how QEMU ended (the poweroff test).
summary=$(grep -aE '^[0-9]+ passed, [0-9]+ failed' "$console" | tail -n 1 | tr -d '\r')
passed=$(grep -ac '^PASS ' "$console" || true)
failed=$(grep -ac '^FAIL ' "$console" || true)
if [ $status -eq 0 ] && grep -aq 'sysnet-vm: tests finished, powering off' "$console"; then
  echo "PASS poweroff"
  passed=$((passed + 1))
else
  if [ $status -eq 124 ] || [ $status -eq 137 ]; then
    echo "FAIL poweroff (the VM did not finish within ${timeout_s}s)"
  else
    echo "FAIL poweroff (QEMU exit status $status)"
  fi
  failed=$((failed + 1))
fi
if [ -z "$summary" ]; then
  echo "FAIL vm_summary (the test run did not complete)"
  failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
