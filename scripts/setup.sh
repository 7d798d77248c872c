#!/usr/bin/env bash
# Installs everything diskube needs on a fresh Debian 12 machine with Node 20:
# the filesystem tools the tests and the sample use, pnpm, the workspace's dependencies, and a build.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(e2fsprogs ntfs-3g dosfstools mtools fdisk gdisk util-linux bsdutils gcc libc6-dev partclone qemu-utils zstd xfsprogs time hyperfine chromium lvm2 btrfs-progs borgbackup2 restic swift swift-proxy swift-object swift-container swift-account memcached)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# mkfs.btrfs --subvol and --compress (the btrfs feature matrix, the Fedora-like guest) came after
# Debian 12's btrfs-progs 6.2: on bookworm, btrfs-progs comes from bookworm-backports (6.14).
btrfs_help="$(mkfs.btrfs --help 2>&1 || true)"
if [ "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")" = bookworm ] && [[ "$btrfs_help" != *--subvol* ]]; then
  echo "setup: installing btrfs-progs from bookworm-backports" >&2
  if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo 'deb http://deb.debian.org/debian bookworm-backports main' |
      $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    -t bookworm-backports btrfs-progs >/dev/null
fi

PNPM_VERSION="$(node -p "require('./package.json').packageManager.split('@')[1]")"
if [ "$(pnpm --version 2>/dev/null || true)" != "$PNPM_VERSION" ]; then
  echo "setup: installing pnpm $PNPM_VERSION" >&2
  $SUDO npm install -g "pnpm@$PNPM_VERSION" >/dev/null
fi

# zstd-napi builds from source; node-gyp must use the local Node headers (no downloads here).
if [ -d /usr/include/node ]; then export npm_config_nodedir=/usr; fi
pnpm install --frozen-lockfile
pnpm build
