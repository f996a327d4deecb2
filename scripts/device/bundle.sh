#!/usr/bin/env bash
# Builds FlashRT here for the lent H100 (sm_90a) and packs what the device needs into
# .device/bundle.tar.xz: the binaries, libflashrt.so and the shared libraries they need that the
# device image lacks (OpenBLAS, sentencepiece, OpenMP, cudart), all found through $ORIGIN.
# cuBLASLt is taken from the device's CUDA 13 install (too large to carry).
#   bash scripts/device/bundle.sh && (device) bash scripts/device/gpu_suite.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
# BUILD / BUNDLE: another build folder and archive, so two builds can run side by side.
BUILD=${BUILD:-build-sm90}
BUNDLE=${BUNDLE:-.device/bundle.tar.xz}
export PATH=/usr/local/cuda/bin:$PATH
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DFLASHRT_CUDA=ON -DFLASHRT_CUDA_ARCHS=90a \
  -DCMAKE_BUILD_RPATH='$ORIGIN' >/dev/null
# The kernel benchmarks the `micro` stage of gpu_suite.sh runs, and the `probe` stage's probe.
BENCHES="bench_fp8_cuda bench_small_ops_cuda bench_fused_linear_cuda bench_linear_cuda bench_attention_cuda bench_expert_cuda probe_persistent"
BENCHES=$(for b in $BENCHES; do [ -f "bench/$b.cpp" ] || [ -f "bench/$b.cu" ] && echo "$b"; done)
cmake --build "$BUILD" -j"$(nproc)" --target flashrt_cli flashrt flashrt_gpu_tests $BENCHES
OUT=$(mktemp -d)/bundle
mkdir -p "$OUT"
for f in flashrt libflashrt.so flashrt_gpu_tests $BENCHES; do
  cp "$BUILD/$f" "$OUT"/
  strip --strip-unneeded "$OUT/$f"
done
for lib in libgomp.so.1 libopenblas.so.0 libgfortran.so.5 libquadmath.so.0 libsentencepiece.so.0 \
           libsentencepiece_train.so.0; do
  cp -L "/lib/x86_64-linux-gnu/$lib" "$OUT/"
done
cp -L /usr/local/cuda/lib/libcudart.so.13 "$OUT/"
# The commit the binaries were built from (the device's copy of the tree may carry a stale .git):
# gpu_suite.sh reports it as FLASHRT_COMMIT.
{ git rev-parse --short HEAD; git diff --quiet HEAD -- src include tools || echo "+local changes"; } |
  paste -sd' ' >"$OUT/COMMIT"
mkdir -p "$(dirname "$BUNDLE")"
tar -C "$(dirname "$OUT")" -cJf "$BUNDLE" bundle
rm -rf "$(dirname "$OUT")"
ls -la "$BUNDLE"
