#!/usr/bin/env bash
# README command 1: install dependencies, build, run the demo (CUDA when a GPU is usable,
# otherwise the CPU reference backend).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh
./build/flashrt demo --hardware auto
