#!/usr/bin/env bash
# Builds the `flashrt` CLI (plus $BINS, e.g. BINS="bench_fused_linear_cuda") of several git refs
# (commits or branches) in the sm_90a build folder and packs them into .device/variants.tar.xz,
# for gpu_suite.sh's `variants` stage: one call times every candidate on the same warm GPU
# (kernel changes measured in the model, not only in microbenchmarks; performance_history.md session 8).
#   bash scripts/device/build_variants.sh main exp/skinny-push-reduce
# Needs a clean working tree (it checks each ref out in turn, then returns to where it was);
# switching refs in one build folder rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { echo "usage: $0 REF [REF...]" >&2; exit 2; }
git diff --quiet HEAD || { echo "build_variants: commit or stash your changes first" >&2; exit 1; }
BUILD=${BUILD:-build-sm90}
export PATH=/usr/local/cuda/bin:$PATH
start=$(git symbolic-ref -q --short HEAD || git rev-parse HEAD)
out=$(mktemp -d)/variants
trap 'git checkout -q "$start"' EXIT
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DFLASHRT_CUDA=ON -DFLASHRT_CUDA_ARCHS=90a \
  -DCMAKE_BUILD_RPATH='$ORIGIN' >/dev/null
for ref in "$@"; do
  git checkout -q --detach "$ref"
  name=$(echo "$ref" | tr '/' '_')
  cmake --build "$BUILD" -j"$(nproc)" --target flashrt_cli ${BINS:-} >/dev/null
  mkdir -p "$out/$name"
  for f in flashrt ${BINS:-}; do
    cp "$BUILD/$f" "$out/$name/" && strip --strip-unneeded "$out/$name/$f"
  done
  git rev-parse --short HEAD >"$out/$name/COMMIT"
  echo "built $ref ($(cat "$out/$name/COMMIT"))"
done
mkdir -p .device
tar -C "$(dirname "$out")" -cJf .device/variants.tar.xz variants
rm -rf "$(dirname "$out")"
ls -la .device/variants.tar.xz
