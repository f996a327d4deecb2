#!/usr/bin/env bash
# README command 2: install dependencies, build, run every test: the C++ suite (ctest), the
# header fuzz test under AddressSanitizer + UBSan, and the Python suite (API, CLI and the
# numerical check against the PyTorch reference).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh
PY=${FLASHRT_PYTHON:-/usr/bin/python3}

echo "== C++ tests =="
ctest --test-dir build --output-on-failure -j2

echo "== safetensors fuzz test under ASan/UBSan =="
FLASHRT_BUILD_DIR=build-asan FLASHRT_TARGET=flashrt_tests bash scripts/build.sh -DFLASHRT_SANITIZE=ON -DFLASHRT_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ./build-asan/flashrt_tests --gtest_filter='*Fuzz*:*fuzz*'

echo "== Python tests =="
export FLASH_RT_LIBRARY="$PWD/build/libflashrt.so" FLASHRT_BIN="$PWD/build/flashrt"
export FLASHRT_REQUIRE_ENGINE=1 FLASHRT_REQUIRE_PI0=1
"$PY" -m pytest tests/python -q -rs
