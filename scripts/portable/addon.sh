#!/usr/bin/env bash
# The portable addon: tabr-node built with Zig against glibc 2.28, FFmpeg and OpenCV linked
# statically from scripts/portable/{ffmpeg,opencv}.sh, LLVM's libc++ linked in by Zig. The
# result needs, outside itself, only glibc's libc, libm, libpthread and libdl (Zig links LLVM's
# libc++ and libunwind in; scripts/portable/policy.py checks every release file).
# ONNX Runtime stays a separate library that the addon loads from its own folder at run time
# (scripts/portable/runtime.sh puts it there when packing).
#
# usage: scripts/portable/addon.sh OUT_DIR   writes OUT_DIR/tabr-native.linux-x64-gnu.node and
#        the licences of what is linked in to OUT_DIR/licenses/ (pack.mjs writes the notices)
source "$(dirname "${BASH_SOURCE[0]}")/toolchain.sh"
out=${1:?usage: addon.sh OUT_DIR}
repo="$(cd "$PORTABLE_SCRIPTS/../.." && pwd)"
ffmpeg=$("$PORTABLE_SCRIPTS/ffmpeg.sh")
opencv=$("$PORTABLE_SCRIPTS/opencv.sh")
portable_tools

# Its own target folder: the development build's stays warm, and no flag of one leaks into
# the other's cache.
export CARGO_TARGET_DIR="${PORTABLE_TARGET_DIR:-$HOME/.cache/tabr-serve/target-portable}"
# FFmpeg through pkg-config, static, and only ours (never the system's .pc files).
export PKG_CONFIG_PATH="$ffmpeg/lib/pkgconfig" PKG_CONFIG_LIBDIR="$ffmpeg/lib/pkgconfig" PKG_CONFIG_ALL_STATIC=1
# OpenCV by explicit paths (the crate then skips its probes); the folder holds only static
# archives, so the linker takes them. Order: dependents before dependencies.
export OPENCV_INCLUDE_PATHS="$opencv/include/opencv4"
export OPENCV_LINK_PATHS="$opencv/lib"
export OPENCV_LINK_LIBS="static=opencv_objdetect,static=opencv_calib3d,static=opencv_features2d,static=opencv_flann,static=opencv_video,static=opencv_imgproc,static=opencv_core,static=z"
cd "$repo"
start=$(date +%s)
cargo zigbuild --release -p tabr-node --features static-ffmpeg --target "$PORTABLE_RUST_TARGET" >&2
mkdir -p "$out"
cp "$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/libtabr_node.so" "$out/tabr-native.linux-x64-gnu.node"
mkdir -p "$out/licenses"
cp "$ffmpeg/COPYING.FFmpeg" "$ffmpeg/COPYING.dav1d" "$opencv/LICENSE.OpenCV" "$opencv/LICENSE.zlib" "$out/licenses/"
cp "$(dirname "$ZIG")/lib/libcxx/LICENSE.TXT" "$out/licenses/LICENSE.libcxx"
log "addon built in $(( $(date +%s) - start )) s: $out/tabr-native.linux-x64-gnu.node"
