"""Per-stage, per-kernel GPU time of one eager predict from an Nsight Compute CSV.

  ncu --clock-control none --metrics gpu__time_duration.sum --csv --log-file ncu.csv \\
      flashrt bench --no-graphs --iters 1 --warmup 1 ...     (scripts/device/gpu_suite.sh STAGES=ncu)
  python3 bench/kernel_breakdown.py ncu.csv

With several predicts in the CSV (STAGES=ncu runs one warm-up predict, whose first call also times
the cuBLASLt candidates and, in FP8, calibrates) only the last one is counted (--all: every one):
a predict starts at an image resize that follows denoise kernels.
Load-time kernels (weight conversion) are dropped. Stages are found from kernel order: the
image resize opens "vision", the token-embedding gather opens "prefix", the first kernel after
the last prefix-layer kernel that writes K/V... is approximated by the first time embedding /
skinny GEMM (Euler step) which opens "denoise". Times are isolated kernel durations (ncu
serializes kernels), so their sum is a lower bound of a graph replay: launch gaps are not in it.
"""
import collections
import csv
import re
import sys

LOAD_KERNELS = ("f32_to_bf16", "fp8_quantize_weight", "quantize_weight")


def short(name):
    name = re.sub(r"\(.*$", "", name)                 # drop the argument list
    name = re.sub(r"^void ", "", name)
    name = re.sub(r"frt::(<unnamed>|\(anonymous namespace\))::", "", name)
    name = re.sub(r"<.*", "<...>", name)            # collapse template arguments
    return name[:60]


def main(path, keep_all=False):
    rows = []
    with open(path) as f:
        lines = [l for l in f if l.startswith('"')]
    for r in csv.DictReader(lines):
        if r["Metric Name"] != "gpu__time_duration.sum":
            continue
        rows.append((r["Kernel Name"], float(r["Metric Value"].replace(",", "")) / 1e3))
    rows = [r for r in rows if not any(k in r[0] for k in LOAD_KERNELS)]
    stage, out, predicts = "other", [], 1
    for name, us in rows:
        s = short(name)
        if "resize" in s and stage in ("other", "denoise"):
            if stage == "denoise":  # the next predict
                predicts += 1
                if not keep_all:
                    out = []
            stage = "vision"
        elif "embed_gather" in s and stage == "vision":
            stage = "prefix"
        elif stage == "prefix" and ("skinny" in s or "gemm_fallback" in s):
            stage = "denoise"
        out.append((stage, s, us))
    total = sum(u for _, _, u in out)
    by_stage = collections.OrderedDict()
    for st, _, u in out:
        by_stage[st] = by_stage.get(st, 0) + u
    which = "all of them" if keep_all or predicts == 1 else "the last"
    print(f"{predicts} predict(s), counting {which}: {len(out)} kernels, "
          f"{total / 1e3:.3f} ms of kernel time")
    for st, u in by_stage.items():
        print(f"  {st:8s} {u / 1e3:8.3f} ms  {100 * u / total:5.1f} %")
    agg = collections.defaultdict(lambda: [0, 0.0])
    for st, s, u in out:
        agg[(st, s)][0] += 1
        agg[(st, s)][1] += u
    print("\n| stage | kernel | calls | total ms | mean us |")
    print("|---|---|---|---|---|")
    for (st, s), (n, u) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
        if u < 0.005 * total:
            continue
        print(f"| {st} | {s} | {n} | {u / 1e3:.3f} | {u / n:.1f} |")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--all"]
    main(args[0] if args else "ncu.csv", keep_all="--all" in sys.argv[1:])
