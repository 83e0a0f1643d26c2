#!/usr/bin/env bash
# A bare Debian root file system for the install tests: `debootstrap --variant=minbase` of one
# suite (bullseye, bookworm or trixie) from Debian's mirror, made once and cached under
# ~/.cache. Nothing is added to it: no Node (the test copies its own in), no OpenCV, no FFmpeg.
# Tests use a throwaway copy, so the cached one stays bare.
#
# usage: scripts/portable/rootfs.sh SUITE   prints the root's path
set -euo pipefail
suite=${1:?usage: rootfs.sh bullseye|bookworm|trixie}
case $suite in bullseye | bookworm | trixie) ;; *) echo "unknown suite $suite" >&2; exit 2 ;; esac
cache="${ROOTFS_CACHE:-$HOME/.cache/tabr-serve/rootfs}"
root="$cache/$suite-minbase"
if [ ! -f "$root/.done" ]; then
  command -v debootstrap >/dev/null || { echo "debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
  [ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; exit 1; }
  rm -rf "$root" "$root.tmp"
  mkdir -p "$cache"
  echo "[rootfs] debootstrap --variant=minbase $suite (once; cached in $root)" >&2
  debootstrap --variant=minbase "$suite" "$root.tmp" http://deb.debian.org/debian >"$cache/$suite.log" 2>&1 \
    || { tail -20 "$cache/$suite.log" >&2; exit 1; }
  rm -rf "$root.tmp/var/cache/apt/archives"/*.deb
  mv "$root.tmp" "$root"
  touch "$root/.done"
fi
echo "$root"
