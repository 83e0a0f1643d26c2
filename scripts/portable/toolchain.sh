# The portable build's toolchain, sourced by the other scripts of scripts/portable/.
#
# Why Zig: the release must load on glibc 2.28 (the manylinux_2_28 line, Node 20's own floor),
# and this machine's glibc is 2.36; a binary linked here would reference GLIBC_2.34 symbols.
# Zig's C/C++ compiler links against a chosen glibc version's symbol list, and its C++ runtime
# (LLVM's libc++) is linked statically, so nothing in the release needs the system's
# libstdc++ at all. Zig and cargo-zigbuild come from PyPI, pinned here, into a virtual
# environment under the cache. Everything the scripts build lands in $PORTABLE_CACHE, keyed
# by a hash of the script that built it (versions and flags live in the scripts).
set -euo pipefail

PORTABLE_GLIBC=2.28
PORTABLE_ZIG_TARGET="x86_64-linux-gnu.${PORTABLE_GLIBC}"
PORTABLE_RUST_TARGET="x86_64-unknown-linux-gnu.${PORTABLE_GLIBC}"
ZIG_VERSION=0.14.1
CARGO_ZIGBUILD_VERSION=0.20.1
PORTABLE_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PORTABLE_CACHE="${PORTABLE_CACHE:-$HOME/.cache/tabr-serve/portable}"
mkdir -p "$PORTABLE_CACHE/src"

log() { printf '[portable] %s\n' "$*" >&2; }

# The Python tools (Zig, cargo-zigbuild) in their own environment.
portable_tools() {
  local venv="$PORTABLE_CACHE/tools-zig$ZIG_VERSION-czb$CARGO_ZIGBUILD_VERSION"
  if [ ! -x "$venv/bin/cargo-zigbuild" ]; then
    log "installing ziglang $ZIG_VERSION and cargo-zigbuild $CARGO_ZIGBUILD_VERSION from PyPI"
    rm -rf "$venv"
    uv venv -q "$venv"
    VIRTUAL_ENV="$venv" uv pip install -q "ziglang==$ZIG_VERSION" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"
  fi
  ZIG="$(ls "$venv"/lib/python3*/site-packages/ziglang/zig)"
  # Wrappers with the target baked in: autotools, CMake and meson each want one program path.
  local bin="$venv/wrap"
  mkdir -p "$bin"
  local mode ext
  for mode in cc c++; do
    ext=$([ "$mode" = cc ] && echo c || echo cpp)
    # Zig's driver refuses a glibc-versioned target when it only asks clang (`--version`,
    # `-v`) or reads the source from standard input (`-E -`, as meson and configure probe):
    # the first get the plain target, standard input goes through a temporary file. Meson
    # does not know how `zig ld` names itself; underneath it is LLD, which meson does know.
    cat >"$bin/$mode" <<WRAP
#!/usr/bin/env bash
for a; do case \$a in -Wl,--version) echo "LLD 19.1.7 (compatible with GNU linkers)"; exit 0;; --version|-v|-dumpversion) exec "$ZIG" $mode -target x86_64-linux-gnu "\$@";; esac; done
args=(); tmp=; prev=
for a; do
  if [ "\$a" = - ] && [ "\$prev" != -o ]; then tmp=\$(mktemp --suffix=.$ext); cat >"\$tmp"; a=\$tmp; fi
  args+=("\$a"); prev=\$a
done
"$ZIG" $mode -target $PORTABLE_ZIG_TARGET "\${args[@]}"; rc=\$?
[ -z "\$tmp" ] || rm -f "\$tmp"
exit \$rc
WRAP
  done
  printf '#!/bin/sh\nexec "%s" ar "$@"\n' "$ZIG" >"$bin/ar"
  printf '#!/bin/sh\nexec "%s" ranlib "$@"\n' "$ZIG" >"$bin/ranlib"
  chmod +x "$bin"/*
  ZCC="$bin/cc" ZCXX="$bin/c++" ZAR="$bin/ar" ZRANLIB="$bin/ranlib"
  export PATH="$venv/bin:$PATH"
}

# `apt-get source` of a Debian package, downloaded once into the cache and unpacked (with
# Debian's patches applied) into a fresh directory; prints that directory.
debian_source() {
  local pkg=$1 version=$2 dest=$3
  local file="${pkg}_${version#*:}.dsc" # file names carry no epoch
  if [ ! -f "$PORTABLE_CACHE/src/$file" ]; then
    if ! apt-get source --print-uris "$pkg=$version" >/dev/null 2>&1; then
      log "adding Debian's source packages to apt (deb-src, same mirror)"
      local sudo; sudo=$([ "$(id -u)" = 0 ] || echo sudo)
      printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        | $sudo tee /etc/apt/sources.list.d/tabr-debian-src.sources >/dev/null
      $sudo apt-get update -qq
    fi
    (cd "$PORTABLE_CACHE/src" && apt-get source -qq --download-only "$pkg=$version")
  fi
  rm -rf "$dest"
  mkdir -p "$(dirname "$dest")"
  (cd "$(dirname "$dest")" && dpkg-source -x "$PORTABLE_CACHE/src/$file" "$(basename "$dest")" >/dev/null)
}

# The cache key of a build: the hash of the scripts that define it.
build_key() { cat "$PORTABLE_SCRIPTS/toolchain.sh" "$@" | sha256sum | cut -c1-12; }

# Removes what other keys of the same build left in the cache (older flags or versions).
prune_stale() {
  local name=$1 key=$2
  find "$PORTABLE_CACHE" "$PORTABLE_CACHE/build" -maxdepth 1 -name "$name-*" ! -name "$name-$key" \
    -exec rm -rf {} + 2>/dev/null || true
}
