# Shared helpers for sysnet's scripts. Source it; do not run it.
#   need_pkgs PKG...   install the Debian packages that are missing (as root, apt-get)
#   step NAME          print a progress header

SYSNET_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export SYSNET_ROOT
SYSNET_CACHE=${SYSNET_CACHE:-/var/cache/sysnet}
export SYSNET_CACHE

step() { printf '\n==> %s\n' "$*"; }

_apt_updated=0
need_pkgs() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    return 1
  fi
  echo "installing: ${missing[*]}"
  if [ $_apt_updated -eq 0 ]; then
    apt-get -q -o DPkg::Lock::Timeout=900 update >/dev/null
    _apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=900 \
    --no-install-recommends "${missing[@]}" >/dev/null
}
