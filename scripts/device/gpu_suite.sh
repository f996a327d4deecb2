#!/usr/bin/env bash
# Runs on the device machine (through the `run` tool) after scripts/device/bundle.sh:
#   GPU op tests (CUDA vs CPU twin), tiny Pi0.5 CUDA vs CPU, and optionally the full-size checks
#   and benchmarks (STAGES="ops tiny full bench"). Results and logs go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
STAGES=${STAGES:-"ops tiny"}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
tar -xJf .device/bundle.tar.xz -C /tmp
B=/tmp/bundle
CUBLAS_DIR=$(dirname "$(ls /usr/local/cuda/lib64/libcublasLt.so.13 /usr/local/cuda/lib/libcublasLt.so.13 \
  /usr/local/cuda/targets/x86_64-linux/lib/libcublasLt.so.13 2>/dev/null | head -1)")
export LD_LIBRARY_PATH=$B:$CUBLAS_DIR:${LD_LIBRARY_PATH:-}
export FLASH_RT_LIBRARY=$B/libflashrt.so FLASHRT_BIN=$B/flashrt PYTHONPATH=$PWD/python:$PWD
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv | tee "$OUT/gpu.txt"
echo "commit ${FLASHRT_COMMIT:-unknown}" | tee -a "$OUT/gpu.txt"
for stage in $STAGES; do
  echo "=== stage $stage ==="
  case $stage in
    ops) "$B/flashrt_gpu_tests" 2>&1 | tee "$OUT/gpu_ops.log" | grep -E "FAIL|PASSED|FAILED|cos=" | tail -60 ;;
    tiny) python3 scripts/device/check_tiny_cuda.py 2>&1 | tee "$OUT/tiny.log" ;;
    graphs) python3 scripts/device/check_graphs.py 2>&1 | tee "$OUT/graphs.log" ;;
    profile) PYTHONPATH=$PYTHONPATH:$PWD/scripts/device python3 -c "from full_checkpoint import full_checkpoint; full_checkpoint()" &&
      "$B/flashrt" bench --checkpoint /tmp/frt_full_pi05 --hardware cuda --views 2 --steps 10 \
        --horizon 10 --iters 3 --warmup 1 --profile 2>&1 | tee "$OUT/profile.log" ;;
    replay) for v in 1 2 3; do for h in 10 50; do
        "$B/flashrt" bench --checkpoint /tmp/frt_full_pi05 --hardware cuda --views $v --steps 10 \
          --horizon $h --iters ${ITERS:-500} --warmup ${WARMUP:-50} 2>&1 | tee -a "$OUT/replay.log" | grep -E "iters|replay"
      done; done ;;
    full) PYTHONPATH=$PYTHONPATH:$PWD/scripts/device python3 scripts/device/check_full_vs_reference.py 2>&1 | tee "$OUT/full.log" ;;
    bench) PYTHONPATH=$PYTHONPATH:$PWD/scripts/device python3 bench/compare_torch.py 2>&1 | tee "$OUT/bench.log" ;;
  esac
done
