#!/usr/bin/env bash
# ONNX Runtime for the release platform packages, from registry packages only:
#   cpu/  libonnxruntime.so.1 of the onnxruntime-node npm package the workspace installs (the
#         runtime the development build uses, so both give the same numbers);
#   gpu/  libonnxruntime.so.1 and its CUDA provider from PyPI's onnxruntime-gpu wheel (CUDA 12,
#         cuDNN 9), the same ONNX Runtime version; the wheel is fetched once, checked against
#         its pinned hash, and cached.
# The addon loads the runtime beside itself (ort-node-locate's BUNDLED_LIB); ONNX Runtime
# loads its providers from its own folder.
#
# usage: scripts/portable/runtime.sh OUT_DIR
source "$(dirname "${BASH_SOURCE[0]}")/toolchain.sh"
out=${1:?usage: runtime.sh OUT_DIR}
repo="$(cd "$PORTABLE_SCRIPTS/../.." && pwd)"
ORT_VERSION=1.22.0
WHEEL=onnxruntime_gpu-$ORT_VERSION-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
WHEEL_SHA256=d30c1512f22b1f01bacb4f177d49cbefd23e0f4bef56066f1282992d133e6ff8

pkg=$(cd "$repo/packages/tabr-native" && node -p "require('path').dirname(require.resolve('onnxruntime-node/package.json'))")
got=$(node -p "require('$pkg/package.json').version")
[ "$got" = "$ORT_VERSION" ] || { log "onnxruntime-node is $got, the release pins $ORT_VERSION"; exit 1; }
mkdir -p "$out/cpu" "$out/gpu"
install -m 0755 "$pkg/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$out/cpu/libonnxruntime.so.1"

wheels="$PORTABLE_CACHE/src/wheels"
if [ ! -f "$wheels/$WHEEL" ]; then
  log "onnxruntime-gpu $ORT_VERSION from PyPI (once)"
  mkdir -p "$wheels"
  python3 -m pip download -q --no-deps --only-binary :all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 "onnxruntime-gpu==$ORT_VERSION" -d "$wheels"
fi
echo "$WHEEL_SHA256  $wheels/$WHEEL" | sha256sum -c --quiet - \
  || { log "$WHEEL does not have its pinned hash"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && unzip -q "$wheels/$WHEEL" 'onnxruntime/capi/*.so*' onnxruntime/LICENSE onnxruntime/ThirdPartyNotices.txt)
capi="$tmp/onnxruntime/capi"
install -m 0755 "$capi/libonnxruntime.so.$ORT_VERSION" "$out/gpu/libonnxruntime.so.1"
install -m 0755 "$capi/libonnxruntime_providers_shared.so" "$capi/libonnxruntime_providers_cuda.so" "$out/gpu/"
# onnxruntime-node ships no licence file; the wheel's (same project, same version) serves both.
for d in cpu gpu; do
  cp "$tmp/onnxruntime/LICENSE" "$out/$d/LICENSE.onnxruntime"
  cp "$tmp/onnxruntime/ThirdPartyNotices.txt" "$out/$d/ThirdPartyNotices.onnxruntime.txt"
done
log "ONNX Runtime $ORT_VERSION staged in $out (cpu, gpu)"
