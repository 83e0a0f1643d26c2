#!/usr/bin/env bash
# FFmpeg for the portable addon: Debian 12's FFmpeg source (5.1, the version the development
# build links) built as static libraries with only what the core's decoder uses, plus dav1d
# (Debian's source too) so AV1 decodes in software as it does in the development build.
#
# What is in it is decided here, and it is smaller than the decoder's allow-list in
# video/input.rs could ever make a full build: libavformat holds only the allow-listed
# self-contained demuxers, libavcodec only the decoders of what cameras, phones and browsers
# record, and no protocol, device, encoder, muxer, filter or network code exists in the
# binary at all. Licence: LGPL 2.1+ only (no --enable-gpl, no --enable-nonfree).
#
# usage: scripts/portable/ffmpeg.sh   prints the install prefix (cached by the scripts' hash)
source "$(dirname "${BASH_SOURCE[0]}")/toolchain.sh"

FFMPEG_SRC_VERSION=5.1.9-0+deb12u1
DAV1D_SRC_VERSION=1.0.0-2+deb12u1
# The demuxers of video/input.rs's ALLOWED_DEMUXERS, by configure's names.
DEMUXERS=mov,matroska,avi,mpegts,flv,ogg,asf,mpegps,h264,hevc
DECODERS=h264,hevc,vp8,vp9,libdav1d,mpeg4,mjpeg,ffv1,prores,rawvideo
PARSERS=h264,hevc,vp8,vp9,av1,mpeg4video,mjpeg
KEY=$(build_key "${BASH_SOURCE[0]}")
PREFIX="$PORTABLE_CACHE/ffmpeg-$KEY"

if [ -f "$PREFIX/.done" ]; then echo "$PREFIX"; exit 0; fi
portable_tools
prune_stale ffmpeg "$KEY"
command -v nasm >/dev/null || { log "nasm is missing (apt-get install nasm)"; exit 1; }
command -v meson >/dev/null || { log "meson is missing (apt-get install meson)"; exit 1; }
work="$PORTABLE_CACHE/build/ffmpeg-$KEY"
rm -rf "$PREFIX" "$work"
mkdir -p "$work"
start=$(date +%s)

log "dav1d $DAV1D_SRC_VERSION"
debian_source dav1d "$DAV1D_SRC_VERSION" "$work/dav1d"
cat >"$work/cross.ini" <<INI
[binaries]
c = '$ZCC'
cpp = '$ZCXX'
ar = '$ZAR'
ranlib = '$ZRANLIB'
strip = 'strip'
nasm = 'nasm'
[host_machine]
system = 'linux'
cpu_family = 'x86_64'
cpu = 'x86_64'
endian = 'little'
INI
meson setup --cross-file "$work/cross.ini" --prefix "$PREFIX" --libdir lib \
  --buildtype release --default-library static -Denable_tools=false -Denable_tests=false \
  "$work/dav1d/build" "$work/dav1d" >&2
ninja -C "$work/dav1d/build" install >&2

log "FFmpeg $FFMPEG_SRC_VERSION"
debian_source ffmpeg "$FFMPEG_SRC_VERSION" "$work/ffmpeg"
cd "$work/ffmpeg"
PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" PKG_CONFIG_LIBDIR="$PREFIX/lib/pkgconfig" ./configure \
  --prefix="$PREFIX" --cc="$ZCC" --cxx="$ZCXX" --ar="$ZAR" --ranlib="$ZRANLIB" \
  --pkg-config=pkg-config --pkg-config-flags=--static \
  --enable-static --disable-shared --enable-pic \
  --disable-autodetect --disable-programs --disable-doc --disable-debug \
  --disable-everything --disable-network --disable-avdevice --disable-avfilter \
  --disable-postproc --disable-swresample \
  --enable-libdav1d \
  --enable-demuxer=$DEMUXERS --enable-decoder=$DECODERS --enable-parser=$PARSERS \
  --enable-pthreads --enable-x86asm >&2
# Zig's glibc declares sysctl() (so configure's link test finds it) but ships no
# <sys/sysctl.h>, which glibc dropped in 2.32; Linux builds never need it (cpu.c asks sysconf).
sed -i 's/^#define HAVE_SYSCTL 1$/#define HAVE_SYSCTL 0/' config.h
make -j"$(nproc)" >&2
make install >&2
cp "$work/ffmpeg/COPYING.LGPLv2.1" "$PREFIX/COPYING.FFmpeg"
cp "$work/dav1d/COPYING" "$PREFIX/COPYING.dav1d"
echo "$(( $(date +%s) - start ))" >"$PREFIX/build-seconds"
rm -rf "$work"
touch "$PREFIX/.done"
echo "$PREFIX"
