#!/usr/bin/env bash
# Runs on the device machine (through the `run` tool) after scripts/device/bundle.sh:
#   GPU op tests (CUDA vs CPU twin), tiny Pi0.5 CUDA vs CPU, and optionally the full-size checks
#   and benchmarks (STAGES="ops tiny full bench"). Results and logs go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
STAGES=${STAGES:-"ops tiny"}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
tar -xJf "${BUNDLE:-.device/bundle.tar.xz}" -C /tmp
B=/tmp/bundle
CUBLAS_DIR=$(dirname "$(ls /usr/local/cuda/lib64/libcublasLt.so.13 /usr/local/cuda/lib/libcublasLt.so.13 \
  /usr/local/cuda/targets/x86_64-linux/lib/libcublasLt.so.13 2>/dev/null | head -1)")
export LD_LIBRARY_PATH=$B:$CUBLAS_DIR:${LD_LIBRARY_PATH:-}
export FLASH_RT_LIBRARY=$B/libflashrt.so FLASHRT_BIN=$B/flashrt PYTHONPATH=$PWD/python:$PWD
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv | tee "$OUT/gpu.txt"
# The bundle's own record of its commit (bundle.sh) unless the caller names one.
export FLASHRT_COMMIT=${FLASHRT_COMMIT:-$(cat "$B/COMMIT" 2>/dev/null || echo unknown)}
echo "commit $FLASHRT_COMMIT" | tee -a "$OUT/gpu.txt"
# The full-size synthetic checkpoint of a config (pi05 / pi0), made once: /tmp/frt_full_<config>.
full_ckpt() {
  PYTHONPATH=$PYTHONPATH:$PWD/scripts/device python3 -c \
    "from full_checkpoint import full_checkpoint; full_checkpoint('$1')"
}
# flashrt bench (graph replays, 10 steps) of a build on a full-size checkpoint:
#   bench_full BUILD_DIR CHECKPOINT VIEWS HORIZON PRECISION ITERS WARMUP
# VERBOSE=1 adds --verbose (debug log: each cuBLASLt plan's tuning) where the build has it.
bench_full() {
  local verbose=
  [ "${VERBOSE:-0}" = 1 ] && "$1/flashrt" bench --help 2>&1 | grep -q -- --verbose && verbose=--verbose
  LD_LIBRARY_PATH=$1:$LD_LIBRARY_PATH "$1/flashrt" bench --checkpoint "$2" --hardware cuda \
    --views "$3" --steps 10 --horizon "$4" --iters "$6" --warmup "$7" --"$5" $verbose
}
for stage in $STAGES; do
  echo "=== stage $stage ==="
  case $stage in
    ops) "$B/flashrt_gpu_tests" 2>&1 | tee "$OUT/gpu_ops.log" | grep -E "FAIL|PASSED|FAILED|cos=" | tail -60 ;;
    tiny) python3 scripts/device/check_tiny_cuda.py 2>&1 | tee "$OUT/tiny.log" ;;
    graphs) python3 scripts/device/check_graphs.py 2>&1 | tee "$OUT/graphs.log" ;;
    profile) full_ckpt pi05 &&
      "$B/flashrt" bench --checkpoint /tmp/frt_full_pi05 --hardware cuda --views 2 --steps 10 \
        --horizon 10 --iters 3 --warmup 1 --profile 2>&1 | tee "$OUT/profile.log" ;;
    # Replay table; PRECISIONS="bf16 fp8" (flashrt bench --bf16 / --fp8).
    replay) full_ckpt pi05 && for p in ${PRECISIONS:-bf16 fp8}; do for v in ${VIEWS:-1 2 3}; do for h in ${HORIZONS:-10 50}; do
        echo "precision $p views $v horizon $h" | tee -a "$OUT/replay.log"
        bench_full "$B" /tmp/frt_full_pi05 $v $h $p ${ITERS:-500} ${WARMUP:-50} 2>&1 |
          tee -a "$OUT/replay.log" | grep -E "iters|replay|memory"
      done; done; done ;;
    full) PYTHONPATH=$PYTHONPATH:$PWD/scripts/device python3 scripts/device/check_full_vs_reference.py 2>&1 | tee "$OUT/full.log" ;;
    full_pi0) PYTHONPATH=$PYTHONPATH:$PWD/scripts/device python3 scripts/device/check_full_vs_reference.py --config pi0 2>&1 | tee "$OUT/full_pi0.log" ;;
    replay_pi0) full_ckpt pi0 &&
      for p in ${PRECISIONS:-bf16 fp8}; do echo "pi0 precision $p" | tee -a "$OUT/replay_pi0.log"
        bench_full "$B" /tmp/frt_full_pi0 2 10 $p ${ITERS:-500} ${WARMUP:-50} 2>&1 |
          tee -a "$OUT/replay_pi0.log" | grep -E "iters|replay|memory"
      done ;;
    fp8) PYTHONPATH=$PYTHONPATH:$PWD/scripts/device python3 scripts/device/check_fp8.py 2>&1 | tee "$OUT/fp8.log" ;;
    fp8_pi0) PYTHONPATH=$PYTHONPATH:$PWD/scripts/device python3 scripts/device/check_fp8.py --config pi0 2>&1 | tee "$OUT/fp8_pi0.log" ;;
    # Per-kernel GPU time of one eager predict (Nsight Compute; clocks left alone, METHOD.md),
    # after a warm-up predict that takes the one-time work (cuBLASLt candidate timing, FP8
    # calibration). bench/kernel_breakdown.py turns the CSV into a per-stage, per-kernel table
    # of the last predict.
    ncu) full_ckpt pi05 &&
      timeout ${NCU_TIMEOUT:-420} ncu --clock-control none --metrics gpu__time_duration.sum --csv --log-file "$OUT/ncu.csv" \
        "$B/flashrt" bench --checkpoint /tmp/frt_full_pi05 --hardware cuda --views 2 --steps 10 \
        --horizon 10 --iters 1 --warmup 1 --no-graphs --${NCU_PREC:-bf16} >"$OUT/ncu_bench.log" 2>&1; tail -3 "$OUT/ncu_bench.log" ;;
    # Server round trip over in-process predict at full size (issue #5); needs the wheels in .whl
    # (openpi-client and its wire dependencies, see docs/serving.md) carried with the call.
    server) python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl &&
      full_ckpt pi05 &&
      PYTHONPATH=$PYTHONPATH:/tmp/site:$PWD/tests/python python3 bench/bench_server.py --bin "$B/flashrt" \
        --checkpoint /tmp/frt_full_pi05 --hardware cuda --views 2 --iters ${ITERS:-200} --warmup 20 2>&1 | tee "$OUT/server.log" ;;
    # A/B of two builds on the same warm GPU (a change's speed-up): BASE_BUNDLE=<the baseline's
    # archive, e.g. bundle.sh run at the parent commit with BUNDLE=.device/base.tar.xz>, carried
    # with the call; flashrt bench of the full-size Pi0.5, 2 views, h10, baseline then this build.
    ab) full_ckpt pi05 &&
      rm -rf /tmp/ab && mkdir -p /tmp/ab && tar -xJf "${BASE_BUNDLE:?BASE_BUNDLE=<baseline archive>}" -C /tmp/ab &&
      for p in ${PRECISIONS:-bf16 fp8}; do for side in base this; do
        bin=$B; [ $side = base ] && bin=/tmp/ab/bundle
        echo "ab $side $p" | tee -a "$OUT/ab.log"
        bench_full "$bin" /tmp/frt_full_pi05 2 10 $p ${ITERS:-300} ${WARMUP:-30} 2>&1 |
          tee -a "$OUT/ab.log" | grep -E "replay|wall"
      done; done ;;
    # Candidate builds side by side on one warm GPU (scripts/device/build_variants.sh, the archive
    # carried with the call): flashrt bench of the full-size Pi0.5, 2 views, h10, per variant and
    # precision, with the replay's stage split, after each variant's $BINS (tests first: a
    # variant's timing means nothing unless its flashrt_gpu_tests passed; rc and summary logged).
    variants) full_ckpt pi05 &&
      rm -rf /tmp/variants && tar -xJf "${VARIANTS_BUNDLE:-.device/variants.tar.xz}" -C /tmp &&
      for d in /tmp/variants/*/; do
        for b in ${BINS:-}; do [ -x "$d/$b" ] && "$d/$b" >"$OUT/$(basename "$d")_$b.log" 2>&1
          echo "variant $(basename "$d") $b: rc $? $(grep -E '^\[  (PASSED|FAILED)' \
            "$OUT/$(basename "$d")_$b.log" | tr '\n' ' ')" | tee -a "$OUT/variants.log"; done
        for p in ${PRECISIONS:-bf16 fp8}; do
          echo "variant $(basename "$d") ($(cat "$d/COMMIT")) $p" | tee -a "$OUT/variants.log"
          bench_full "$d" /tmp/frt_full_pi05 2 10 $p ${ITERS:-150} ${WARMUP:-20} 2>&1 |
            tee -a "$OUT/variants.log" | grep -E "replay"
        done
      done ;;
    # Kernel microbenchmarks (graphs of back-to-back launches) of the ops being tuned.
    micro) for b in ${MICRO:-bench_small_ops_cuda bench_fused_linear_cuda bench_attention_cuda bench_expert_cuda}; do
        [ -x "$B/$b" ] && "$B/$b" 2>&1 | tee "$OUT/$b.log"; done ;;
    # Facts for a persistent-kernel design: PDL chains, grid barriers, bulk copies, clusters.
    probe) "$B/probe_persistent" 2>&1 | tee "$OUT/probe.log" ;;
    bench) PYTHONPATH=$PYTHONPATH:$PWD/scripts/device python3 bench/compare_torch.py ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log" ;;
  esac
done
