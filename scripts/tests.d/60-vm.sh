#!/usr/bin/env bash
# The kernel module and the VM: builds (or reuses) both kernels (6.12 LTS and 7.2), boots each
# under QEMU and runs the in-VM tests. Needs root on first use (packages, /var/cache/sysnet).
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
need_pkgs linux-source-6.12 rustc-web rust-web-src libclang-19-dev flex bison libelf-dev bc \
  cpio xz-utils busybox-static qemu-system-x86 python3
exec "$SYSNET_ROOT/scripts/run-vm.sh" --test --all-kernels
