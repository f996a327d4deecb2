#!/usr/bin/env bash
# Configures and builds FlashRT into ./build (CUDA code too when nvcc is found).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${FLASHRT_BUILD_DIR:-build}
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
# FLASHRT_TARGET: build one target only (the sanitizer build needs just the tests).
cmake --build "$BUILD_DIR" -j"$(nproc)" ${FLASHRT_TARGET:+--target "$FLASHRT_TARGET"}
