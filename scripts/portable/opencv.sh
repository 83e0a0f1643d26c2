#!/usr/bin/env bash
# OpenCV for the portable addon: Debian 12's OpenCV source (4.6.0, the version the development
# build links) as static libraries of the modules the core calls (imgproc, objdetect for the
# Haar cascade, video for the reference Farnebäck) and what objdetect requires (calib3d,
# features2d, flann), compiled into the addon.
#
# The CPU baseline and dispatch list are Debian's (baseline SSE2 with SSE3 off, the default
# dispatch set), so each function runs the same SIMD path as the development build and the
# detections and crops are the same numbers. Off: IPP and ITT (binary blobs), OpenCL, TBB,
# LAPACK, Eigen, every I/O module. Debian's OpenCV source has no 3rdparty/ folder, so zlib
# (core's persistence, which reads the cascade) is Debian's zlib source, built here the same
# way. Licences: Apache 2.0 (OpenCV), zlib's own.
#
# usage: scripts/portable/opencv.sh   prints the install prefix (cached by the scripts' hash)
source "$(dirname "${BASH_SOURCE[0]}")/toolchain.sh"

OPENCV_SRC_VERSION=4.6.0+dfsg-12
ZLIB_SRC_VERSION=1:1.2.13.dfsg-1
MODULES=core,imgproc,objdetect,video
KEY=$(build_key "${BASH_SOURCE[0]}")
PREFIX="$PORTABLE_CACHE/opencv-$KEY"

if [ -f "$PREFIX/.done" ]; then echo "$PREFIX"; exit 0; fi
portable_tools
prune_stale opencv "$KEY"
work="$PORTABLE_CACHE/build/opencv-$KEY"
rm -rf "$PREFIX" "$work"
mkdir -p "$work"
start=$(date +%s)

log "zlib $ZLIB_SRC_VERSION"
debian_source zlib "$ZLIB_SRC_VERSION" "$work/zlib"
(cd "$work/zlib" && CC="$ZCC" AR="$ZAR" RANLIB="$ZRANLIB" CFLAGS="-O2 -fPIC" ./configure --static --prefix="$PREFIX" >&2 && make -j"$(nproc)" install >&2)

log "OpenCV $OPENCV_SRC_VERSION ($MODULES and their dependencies)"
debian_source opencv "$OPENCV_SRC_VERSION" "$work/opencv"
cmake -G Ninja -S "$work/opencv" -B "$work/build" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PREFIX" \
  -DCMAKE_C_COMPILER="$ZCC" -DCMAKE_CXX_COMPILER="$ZCXX" \
  -DCMAKE_AR="$ZAR" -DCMAKE_RANLIB="$ZRANLIB" \
  -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DBUILD_SHARED_LIBS=OFF \
  -DBUILD_LIST="$MODULES" \
  -DCPU_BASELINE=SSE2 -DCPU_BASELINE_DISABLE=SSE3 \
  -DWITH_IPP=OFF -DWITH_ITT=OFF -DWITH_OPENCL=OFF -DWITH_TBB=OFF -DWITH_OPENMP=OFF \
  -DWITH_PTHREADS_PF=ON -DWITH_LAPACK=OFF -DWITH_EIGEN=OFF -DWITH_PROTOBUF=OFF \
  -DWITH_QUIRC=OFF -DWITH_ADE=OFF -DWITH_VA=OFF -DWITH_VA_INTEL=OFF -DWITH_CAROTENE=OFF \
  -DWITH_FFMPEG=OFF -DWITH_GSTREAMER=OFF -DWITH_V4L=OFF -DWITH_GTK=OFF -DWITH_QT=OFF \
  -DWITH_1394=OFF -DWITH_JPEG=OFF -DWITH_PNG=OFF -DWITH_TIFF=OFF -DWITH_WEBP=OFF \
  -DWITH_OPENEXR=OFF -DWITH_JASPER=OFF -DWITH_OPENJPEG=OFF -DWITH_IMGCODEC_HDR=OFF \
  -DBUILD_ZLIB=OFF -DZLIB_LIBRARY="$PREFIX/lib/libz.a" -DZLIB_INCLUDE_DIR="$PREFIX/include" -DBUILD_TESTS=OFF -DBUILD_PERF_TESTS=OFF -DBUILD_EXAMPLES=OFF \
  -DBUILD_DOCS=OFF -DBUILD_opencv_apps=OFF -DBUILD_JAVA=OFF -DBUILD_opencv_python3=OFF \
  -DBUILD_opencv_python2=OFF -DENABLE_PRECOMPILED_HEADERS=OFF -DOPENCV_GENERATE_PKGCONFIG=OFF \
  -DINSTALL_CREATE_DISTRIB=OFF -DOPENCV_ENABLE_NONFREE=OFF >&2
ninja -C "$work/build" install >&2
cp "$work/opencv/LICENSE" "$PREFIX/LICENSE.OpenCV"
sed -n '/Copyright (C)/,/madler@alumni/p' "$work/zlib/zlib.h" >"$PREFIX/LICENSE.zlib"
echo "$(( $(date +%s) - start ))" >"$PREFIX/build-seconds"
rm -rf "$work"
touch "$PREFIX/.done"
echo "$PREFIX"
