#!/usr/bin/env bash
# Builds the tabr-serve image with podman from release artefacts (deploy/stage.mjs after
# make pack). No registry is reachable here, so the Containerfile's public base
# (debian:trixie-slim) is made locally first, once, from Debian's packages: the cached
# debootstrap root of scripts/portable/rootfs.sh, imported under that same name. On a
# machine that reaches a registry the Containerfile builds as it is (`podman build` or
# `docker build` of the staged folder).
#
# usage: deploy/image.sh [TAG]   (default localhost/tabr-serve:<version>); prints the tag
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
version=$(node -p "require('$repo/packages/tabr-native/package.json').version")
tag=${1:-localhost/tabr-serve:$version}
# The local base gets a name of its own: it must never shadow the public image on this host.
base=localhost/tabr-debian:trixie-slim
export CONTAINERS_CONF="${CONTAINERS_CONF:-$repo/deploy/containers.conf}"
command -v podman >/dev/null && command -v runc >/dev/null \
  || { echo "podman and runc are needed: apt-get install podman runc" >&2; exit 1; }
podman=(podman --runtime runc)
if ! "${podman[@]}" image exists "$base"; then
  root=$("$repo/scripts/portable/rootfs.sh" trixie)
  echo "[image] $base from Debian's packages ($root)" >&2
  tar -C "$root" --exclude=./.done -c . | "${podman[@]}" import - "$base" >/dev/null
fi
context=$(node "$repo/deploy/stage.mjs")
"${podman[@]}" build --format docker --network host --pull=never --build-arg BASE="$base" \
  -t "$tag" -f "$context/Containerfile" "$context" >&2
# Each build leaves the image it replaced untagged: those go (only this project's images,
# by their title label).
old=$("${podman[@]}" images -q --filter dangling=true --filter label=org.opencontainers.image.title=tabr-serve)
[ -z "$old" ] || "${podman[@]}" rmi $old >/dev/null 2>&1 || true
echo "$tag"
