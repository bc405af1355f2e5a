#!/usr/bin/env bash
# Build (or reuse) the small Rust-enabled kernel the VM boots and the module builds against.
#
#   scripts/build-kernel.sh              build if needed, then print the tree's path
#   scripts/build-kernel.sh --print-env  print KDIR=, BINDGEN=, RUSTC=, HOSTRUSTC=, LIBCLANG_PATH=
#                                        (no build; for `eval` by run-vm.sh after a build)
#
# The tree lives in ${SYSNET_CACHE:-/var/cache/sysnet}/kernel-<kernel>-<rustc>-<hash>/, keyed by
# the Debian kernel source version, the Debian rustc version and the hash of vm/kernel.config
# and vm/*.patch, so any change to those gives a fresh tree and an unchanged setup reuses the
# old one. The stamp file `.sysnet-built` is written last: a tree without it (or without
# bzImage and Module.symvers) is unfinished: an interrupted make resumes, an interrupted
# unpack or config starts over.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

# Bumped when the recipe below changes in a way that invalidates cached trees.
RECIPE=1
BINDGEN_VERSION=0.73.2
KPKG=linux-source-6.12
KTAR=/usr/src/linux-source-6.12.tar.xz
KTOP=linux-source-6.12
RUSTC=/usr/bin/rustc
HOSTRUSTC=/usr/bin/rustc
LIBCLANG_PATH=/usr/lib/llvm-19/lib
export LIBCLANG_PATH

mode=build
case "${1:-}" in
  --print-env) mode=env ;;
  "") ;;
  -h | --help)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "build-kernel.sh: unknown argument '$1' (try --help)" >&2
    exit 2
    ;;
esac

log() { printf '[build-kernel] %s\n' "$*" >&2; }
sanitize() { tr -c 'A-Za-z0-9._+\n-' '_'; }

install_packages() {
  log "phase 1/5: packages (kernel source, Debian's rustc-web + rust-web-src for the kernel's"
  log "  own core crate, libclang-19 for bindgen, flex/bison/libelf/bc for kbuild, cpio/xz)"
  need_pkgs "$KPKG" rustc-web rust-web-src libclang-19-dev flex bison libelf-dev bc cpio \
    xz-utils build-essential
}

bindgen_dir() { echo "$SYSNET_CACHE/tools/bindgen-cli-$BINDGEN_VERSION"; }

install_bindgen() {
  local dir cargo_bin
  dir=$(bindgen_dir)
  if [ -x "$dir/bin/bindgen" ]; then
    log "phase 2/5: bindgen $BINDGEN_VERSION cached at $dir"
    return 0
  fi
  log "phase 2/5: installing bindgen-cli $BINDGEN_VERSION into $dir (Debian's 0.60 is below the"
  log "  kernel's minimum 0.65.1; takes a few minutes once)"
  cargo_bin=$(command -v cargo || true)
  if [ -z "$cargo_bin" ]; then
    log "  no cargo in PATH: installing Debian's cargo-web"
    need_pkgs cargo-web
    cargo_bin=/usr/bin/cargo
  fi
  mkdir -p "$SYSNET_CACHE/tools"
  rm -rf "$dir.tmp"
  "$cargo_bin" install bindgen-cli --locked --version "$BINDGEN_VERSION" --root "$dir.tmp" --quiet
  mv "$dir.tmp" "$dir"
}

# The cache key. Reading versions needs the packages, so this runs after phase 1.
tree_dir() {
  local kver rver hash
  kver=$(dpkg-query -W -f='${Version}' "$KPKG" | sanitize)
  rver=$("$RUSTC" --version | awk '{print $2}' | sanitize)
  if [ -z "$kver" ] || [ -z "$rver" ]; then
    echo "build-kernel.sh: cannot read the versions of $KPKG and $RUSTC" >&2
    exit 1
  fi
  hash=$( {
    echo "recipe=$RECIPE bindgen=$BINDGEN_VERSION"
    cat "$SYSNET_ROOT/vm/kernel.config" "$SYSNET_ROOT"/vm/*.patch
  } | sha256sum | cut -c1-12)
  echo "$SYSNET_CACHE/kernel-$kver-rustc$rver-$hash"
}

kmake() {
  make -C "$1/linux" RUSTC="$RUSTC" HOSTRUSTC="$HOSTRUSTC" BINDGEN="$(bindgen_dir)/bin/bindgen" \
    "${@:2}"
}

# Every `CONFIG_X=v` and `# CONFIG_X is not set` line of the fragment must read the same in
# the final .config: olddefconfig drops options whose dependencies fail without a word.
verify_config() {
  local cfg=$1 line opt bad=0
  while IFS= read -r line; do
    case "$line" in
      CONFIG_*=*)
        grep -qxF "$line" "$cfg" || {
          opt=${line%%=*}
          log "  config option lost: wanted '$line', got '$(grep -E "^(# )?$opt[= ]" "$cfg" || echo "$opt absent")'"
          bad=1
        }
        ;;
      "# CONFIG_"*" is not set")
        opt=${line#\# }
        opt=${opt%% *}
        if grep -qE "^$opt=" "$cfg"; then
          log "  config option forced on: wanted '$line'"
          bad=1
        fi
        ;;
    esac
  done <"$SYSNET_ROOT/vm/kernel.config"
  return $bad
}

build_tree() {
  local dir=$1 t0
  rm -f "$dir/.sysnet-built"
  if [ -f "$dir/linux/.sysnet-configured" ]; then
    log "phase 3/5: resuming the unfinished build in $dir"
  else
    log "phase 3/5: unpacking $KTAR into $dir and applying vm/*.patch"
    rm -rf "$dir"
    mkdir -p "$dir"
    tar -xJf "$KTAR" -C "$dir"
    mv "$dir/$KTOP" "$dir/linux"
    local p
    for p in "$SYSNET_ROOT"/vm/*.patch; do
      log "  patch $(basename "$p")"
      patch -s -p1 -d "$dir/linux" <"$p"
    done

    log "phase 4/5: configuring (tinyconfig + vm/kernel.config, olddefconfig)"
    kmake "$dir" -s tinyconfig >/dev/null
    (cd "$dir/linux" && scripts/kconfig/merge_config.sh -m .config "$SYSNET_ROOT/vm/kernel.config" >/dev/null)
    kmake "$dir" -s olddefconfig >/dev/null
    if ! verify_config "$dir/linux/.config"; then
      log "config check failed; for CONFIG_RUST the toolchain check says:"
      kmake "$dir" rustavailable >&2 || true
      exit 1
    fi
    log "  every fragment option survived (CONFIG_RUST=y)"
    touch "$dir/linux/.sysnet-configured"
  fi

  # `modules` (there are none in tree) runs modpost over vmlinux: it writes the
  # Module.symvers an external module links against.
  log "phase 5/5: make -j$(nproc) bzImage modules (8-10 min on 2 idle cores; log: $dir/build.log)"
  t0=$(date +%s)
  if ! kmake "$dir" -j"$(nproc)" bzImage modules >>"$dir/build.log" 2>&1; then
    log "kernel build failed; last lines of $dir/build.log:"
    tail -n 30 "$dir/build.log" >&2
    exit 1
  fi
  log "  built in $(($(date +%s) - t0)) s"
  date -u +%FT%TZ >"$dir/.sysnet-built"
}

finished() {
  [ -f "$1/.sysnet-built" ] && [ -f "$1/linux/arch/x86/boot/bzImage" ] &&
    [ -f "$1/linux/Module.symvers" ]
}

if [ "$mode" = env ]; then
  dir=$(tree_dir)
  finished "$dir" || {
    echo "build-kernel.sh: no finished kernel at $dir; run scripts/build-kernel.sh first" >&2
    exit 1
  }
  printf 'KDIR=%q\nBINDGEN=%q\nRUSTC=%q\nHOSTRUSTC=%q\nLIBCLANG_PATH=%q\n' \
    "$dir/linux" "$(bindgen_dir)/bin/bindgen" "$RUSTC" "$HOSTRUSTC" "$LIBCLANG_PATH"
  exit 0
fi

install_packages
install_bindgen
dir=$(tree_dir)
if finished "$dir"; then
  log "kernel cached: $dir (built $(cat "$dir/.sysnet-built"))"
else
  build_tree "$dir"
fi
echo "$dir/linux"
