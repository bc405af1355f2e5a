#!/usr/bin/env bash
# Build (or reuse) the small Rust-enabled kernel the VM boots and the module builds against.
#
#   scripts/build-kernel.sh              build if needed, then print the tree's path
#   scripts/build-kernel.sh --print-env  print KDIR=, BINDGEN=, RUSTC=, HOSTRUSTC=, LIBCLANG_PATH=
#                                        (no build; for `eval` by run-vm.sh after a build)
#   --kernel 6.12 | 7.2                  which kernel (default 6.12): 6.12 is Debian 12's
#                                        linux-source-6.12 LTS; 7.2 is linux-source-7.2 from
#                                        trixie-backports (an apt source this script adds)
#
# The tree lives in ${SYSNET_CACHE:-/var/cache/sysnet}/kernel-<kernel>-<rustc>-<hash>/, keyed by
# the Debian kernel source version, the Debian rustc version and the hash of vm/kernel.config
# and vm/<kernel>/ (patches, extra config), so any change to those gives a fresh tree and an
# unchanged setup reuses the old one. The stamp file `.sysnet-built` is written last: a tree
# without it (or without bzImage and Module.symvers) is unfinished: an interrupted make
# resumes, an interrupted unpack or config starts over.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

# Bumped when the recipe below changes in a way that invalidates cached trees.
RECIPE=1
BINDGEN_VERSION=0.73.2
RUSTC=/usr/bin/rustc
HOSTRUSTC=/usr/bin/rustc
LIBCLANG_PATH=/usr/lib/llvm-19/lib
export LIBCLANG_PATH

mode=build
kernel=6.12
while [ $# -gt 0 ]; do
  case "$1" in
    --print-env) mode=env ;;
    --kernel)
      kernel=${2:?--kernel needs a version (6.12 or 7.2)}
      shift
      ;;
    -h | --help)
      awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "build-kernel.sh: unknown argument '$1' (try --help)" >&2
      exit 2
      ;;
  esac
  shift
done

# Per kernel: the Debian package holding the source, the tarball it installs, the tarball's
# top directory, and vm/<kernel>/ (patches applied in order, an optional extra config fragment).
case "$kernel" in
  6.12 | 7.2) ;;
  *)
    echo "build-kernel.sh: unsupported kernel '$kernel' (6.12 or 7.2)" >&2
    exit 2
    ;;
esac
KPKG=linux-source-$kernel
KTOP=linux-source-$kernel
KVM=$SYSNET_ROOT/vm/$kernel
# Debian 12 ships 6.12 itself; 7.2 comes from trixie-backports, downloaded (not installed:
# its dependencies would pull Debian 13 packages into this system) into the cache.
BACKPORTS_SUITE=trixie-backports
BACKPORTS_SOURCES=/etc/apt/sources.list.d/sysnet-kernel.sources
BACKPORTS_PIN=/etc/apt/preferences.d/sysnet-kernel.pref

log() { printf '[build-kernel] %s\n' "$*" >&2; }
sanitize() { tr -c 'A-Za-z0-9._+\n-' '_'; }

install_packages() {
  log "phase 1/5: packages (kernel source, Debian's rustc-web + rust-web-src for the kernel's"
  log "  own core crate, libclang-19 for bindgen, flex/bison/libelf/bc for kbuild, cpio/xz)"
  need_pkgs rustc-web rust-web-src libclang-19-dev flex bison libelf-dev bc cpio xz-utils \
    build-essential
  if [ "$kernel" = 6.12 ]; then
    need_pkgs "$KPKG"
  else
    fetch_backport_source
  fi
}

# The apt source for trixie-backports, pinned below every suite of the system (50 < 100 < 500)
# so that nothing is ever installed or upgraded from it by accident; only an explicit
# `PKG/trixie-backports` reaches it.
add_backports_source() {
  [ -f "$BACKPORTS_SOURCES" ] && [ -f "$BACKPORTS_PIN" ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "build-kernel.sh: adding the $BACKPORTS_SUITE apt source needs root" >&2
    exit 1
  fi
  log "  adding the $BACKPORTS_SUITE apt source ($BACKPORTS_SOURCES, pinned at 50)"
  printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' "Suites: $BACKPORTS_SUITE" \
    'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' \
    >"$BACKPORTS_SOURCES"
  printf '%s\n' 'Package: *' "Pin: release n=$BACKPORTS_SUITE" 'Pin-Priority: 50' >"$BACKPORTS_PIN"
  apt-get -q -o DPkg::Lock::Timeout=900 update >/dev/null
}

# The newest version apt knows in trixie-backports (from the local package lists).
backport_version() {
  apt-cache policy "$KPKG" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2 }'
}

backport_deb() { echo "$SYSNET_CACHE/src/${KPKG}_$(echo "$1" | sanitize)_all.deb"; }

# The newest source package already downloaded into the cache, or nothing. Like an installed
# linux-source-6.12, it stays until removed: delete it to move to a newer 7.2.
downloaded_version() {
  local f
  for f in "$SYSNET_CACHE/src/${KPKG}"_*_all.deb; do
    [ ! -s "$f" ] || dpkg-deb -f "$f" Version
  done | sort -V | tail -n 1
}

fetch_backport_source() {
  local ver deb
  ver=$(downloaded_version)
  if [ -n "$ver" ]; then
    log "  $KPKG $ver already downloaded: $(backport_deb "$ver")"
    return 0
  fi
  add_backports_source
  ver=$(backport_version)
  if [ -z "$ver" ]; then
    apt-get -q -o DPkg::Lock::Timeout=900 update >/dev/null
    ver=$(backport_version)
  fi
  if [ -z "$ver" ]; then
    echo "build-kernel.sh: apt knows no $KPKG in $BACKPORTS_SUITE" >&2
    exit 1
  fi
  deb=$(backport_deb "$ver")
  log "  downloading $KPKG $ver from $BACKPORTS_SUITE into $SYSNET_CACHE/src"
  mkdir -p "$SYSNET_CACHE/src"
  rm -rf "$SYSNET_CACHE/src/tmp"
  mkdir -p "$SYSNET_CACHE/src/tmp"
  # apt's download sandbox user cannot write to root's cache directory: download as root.
  (cd "$SYSNET_CACHE/src/tmp" &&
    apt-get -q -o APT::Sandbox::User=root download "$KPKG=$ver" >/dev/null)
  mv "$SYSNET_CACHE/src/tmp/"*.deb "$deb"
  rmdir "$SYSNET_CACHE/src/tmp"
}

# The kernel source version the tree is keyed by.
kernel_version() {
  if [ "$kernel" = 6.12 ]; then
    dpkg-query -W -f='${Version}' "$KPKG"
  else
    downloaded_version
  fi
}

# Unpacks the kernel source tarball into $1 (as $1/$KTOP).
unpack_source() {
  if [ "$kernel" = 6.12 ]; then
    tar -xJf "/usr/src/$KTOP.tar.xz" -C "$1"
  else
    dpkg-deb --fsys-tarfile "$(backport_deb "$(kernel_version)")" |
      tar -xO "./usr/src/$KTOP.tar.xz" | tar -xJ -C "$1"
  fi
}

# The config fragments: the common one, then the kernel's own additions, if any.
fragments() {
  echo "$SYSNET_ROOT/vm/kernel.config"
  [ ! -f "$KVM/kernel.config" ] || echo "$KVM/kernel.config"
}

bindgen_dir() { echo "$SYSNET_CACHE/tools/bindgen-cli-$BINDGEN_VERSION"; }

install_bindgen() {
  local dir cargo_bin
  dir=$(bindgen_dir)
  # One install at a time (two kernels may be built at once); the lock goes with the process.
  mkdir -p "$SYSNET_CACHE/tools"
  exec 9>"$SYSNET_CACHE/tools/.bindgen.lock"
  flock 9
  if [ -x "$dir/bin/bindgen" ]; then
    log "phase 2/5: bindgen $BINDGEN_VERSION cached at $dir"
    flock -u 9
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
  flock -u 9
}

# The cache key. Reading versions needs the packages, so this runs after phase 1.
tree_dir() {
  local kver rver hash
  kver=$(kernel_version | sanitize)
  rver=$("$RUSTC" --version | awk '{print $2}' | sanitize)
  if [ -z "$kver" ] || [ -z "$rver" ]; then
    echo "build-kernel.sh: cannot read the versions of $KPKG and $RUSTC" >&2
    exit 1
  fi
  # 6.12's inputs hash exactly as before per-kernel directories existed, so its trees stay.
  hash=$( {
    echo "recipe=$RECIPE bindgen=$BINDGEN_VERSION"
    cat "$SYSNET_ROOT/vm/kernel.config" "$KVM"/*.patch
    [ ! -f "$KVM/kernel.config" ] || cat "$KVM/kernel.config"
  } | sha256sum | cut -c1-12)
  echo "$SYSNET_CACHE/kernel-$kver-rustc$rver-$hash"
}

kmake() {
  make -C "$1/linux" RUSTC="$RUSTC" HOSTRUSTC="$HOSTRUSTC" BINDGEN="$(bindgen_dir)/bin/bindgen" \
    "${@:2}"
}

# Every `CONFIG_X=v` and `# CONFIG_X is not set` line of the fragments must read the same in
# the final .config: olddefconfig drops options whose dependencies fail without a word.
verify_config() {
  local cfg=$1 line opt bad=0
  # shellcheck disable=SC2046 # one path a line, no spaces
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
  done < <(cat $(fragments))
  return $bad
}

build_tree() {
  local dir=$1 t0
  rm -f "$dir/.sysnet-built"
  if [ -f "$dir/linux/.sysnet-configured" ]; then
    log "phase 3/5: resuming the unfinished build in $dir"
  else
    log "phase 3/5: unpacking $KTOP.tar.xz into $dir and applying vm/$kernel/*.patch"
    rm -rf "$dir"
    mkdir -p "$dir"
    unpack_source "$dir"
    mv "$dir/$KTOP" "$dir/linux"
    local p
    for p in "$KVM"/*.patch; do
      log "  patch $(basename "$p")"
      patch -s -p1 -d "$dir/linux" <"$p"
    done

    log "phase 4/5: configuring (tinyconfig + $(fragments | sed "s|^$SYSNET_ROOT/||" | tr '\n' ' ')olddefconfig)"
    kmake "$dir" -s tinyconfig >/dev/null
    # shellcheck disable=SC2046 # one path a line, no spaces
    (cd "$dir/linux" && scripts/kconfig/merge_config.sh -m .config $(fragments) >/dev/null)
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
  log "phase 5/5: make -j$(nproc) bzImage modules (10-40 min on 2 cores; log: $dir/build.log)"
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
# One build per tree: a second caller waits, then finds the tree finished.
exec 8>"$dir.lock"
if ! flock -n 8; then
  log "another build of $dir is running; waiting for it"
  flock 8
fi
if finished "$dir"; then
  log "kernel cached: $dir (built $(cat "$dir/.sysnet-built"))"
else
  build_tree "$dir"
fi
echo "$dir/linux"
