"""FlashRT vs the repo's PyTorch reference (bf16 eager and torch.compile), same process, same GPU.

For each (views, horizon): the engine's wall time around predict() (and its GPU time per predict
when the engine reports one), then the PyTorch reference (tests/reference/pi05_reference.py) in
bf16, eager and with its prefix pass and denoise step under torch.compile. Inputs are random
(never zeros) and change every iteration. Prints a markdown table and one JSON line per row.

  python3 bench/compare_torch.py [--checkpoint DIR] [--views 1,2,3] [--horizons 10,50]
      [--warmup 50] [--iters 500] [--torch-iters 10] [--compile-iters 30] [--no-compile]
Without --checkpoint the full-size synthetic checkpoint is made (scripts/device/full_checkpoint.py).
"""
import argparse
import json
import os
import subprocess
import time

import numpy as np
import torch

import flash_rt
from tests.reference.pi05_reference import Pi05Reference


def percentiles(xs):
    xs = np.asarray(xs, dtype=np.float64)
    return float(np.percentile(xs, 50)), float(np.percentile(xs, 90))


def make_inputs(rng, views, horizon, n):
    out = []
    for _ in range(n):
        imgs = [rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8) for _ in range(views)]
        out.append((imgs, rng.normal(size=8).astype(np.float32),
                    rng.normal(size=(horizon, 32)).astype(np.float32)))
    return out


def time_engine(model, inputs, warmup, iters, prompt):
    for i in range(warmup):
        imgs, state, noise = inputs[i % len(inputs)]
        model.predict(imgs, prompt=prompt, state=state, noise=noise)
    model.profile_reset()  # the stage split covers the timed runs only
    wall, replay = [], []
    for i in range(iters):
        imgs, state, noise = inputs[i % len(inputs)]
        t0 = time.perf_counter()
        model.predict(imgs, prompt=prompt, state=state, noise=noise)
        wall.append((time.perf_counter() - t0) * 1e3)
        g = model.last_gpu_ms()
        if g is not None:
            replay.append(g)
    return percentiles(wall) + (percentiles(replay) if replay else (float("nan"),) * 2)


def time_torch(ref, views, inputs, warmup, iters, prompt):
    for i in range(warmup):
        imgs, state, noise = inputs[i % len(inputs)]
        ref.predict(imgs, views, prompt, state, noise)
    torch.cuda.synchronize()
    wall = []
    for i in range(iters):
        imgs, state, noise = inputs[i % len(inputs)]
        t0 = time.perf_counter()
        ref.predict(imgs, views, prompt, state, noise)
        torch.cuda.synchronize()
        wall.append((time.perf_counter() - t0) * 1e3)
    return percentiles(wall)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint")
    ap.add_argument("--views", default="1,2,3")
    ap.add_argument("--horizons", default="10,50")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--iters", type=int, default=500)
    ap.add_argument("--torch-warmup", type=int, default=2)
    ap.add_argument("--torch-iters", type=int, default=10)
    ap.add_argument("--compile-iters", type=int, default=30)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--precisions", default="bf16,fp8", help="engine GEMM precisions to time")
    a = ap.parse_args()
    if a.checkpoint is None:
        from full_checkpoint import full_checkpoint
        a.checkpoint = full_checkpoint()
    prompt = "pick up the black bowl between the plate and the ramekin and place it on the plate"
    gpu = torch.cuda.get_device_name(0)
    # On the device the tree's .git may be missing or stale: gpu_suite.sh passes the bundle's
    # commit (bundle.sh records it); git is the fallback for runs from a checkout.
    commit = os.environ.get("FLASHRT_COMMIT") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() \
        or "unknown"
    rng = np.random.default_rng(0)
    ref = Pi05Reference(a.checkpoint, device="cuda", dtype=torch.bfloat16)
    rows = []
    compiled = False
    for views in [int(v) for v in a.views.split(",")]:
        for horizon in [int(h) for h in a.horizons.split(",")]:
            inputs = make_inputs(rng, views, horizon, 8)
            engine = {}
            for prec in a.precisions.split(","):
                model = flash_rt.load_model(a.checkpoint, config="pi05", hardware="cuda",
                                            num_views=views, num_steps=a.steps,
                                            action_horizon=horizon, use_fp8=prec == "fp8")
                engine[prec] = time_engine(model, inputs, a.warmup, a.iters, prompt)
                # The replays' split by stage (event nodes inside the graph).
                print(f"stages {views} view(s) h{horizon} {prec}: {model.profile_report()}",
                      flush=True)
                model.close()
            t50, t90 = time_torch(ref, views, inputs, a.torch_warmup, a.torch_iters, prompt)
            c50 = c90 = float("nan")
            if not a.no_compile and views == 2 and horizon == 10:
                if not compiled:
                    ref.prefix_pass = torch.compile(ref.prefix_pass)
                    ref.denoise_step = torch.compile(ref.denoise_step)
                    compiled = True
                c50, c90 = time_torch(ref, views, inputs, 3, a.compile_iters, prompt)
            for prec, (e50, e90, r50, r90) in engine.items():
                row = dict(commit=commit, gpu=gpu, views=views, horizon=horizon, steps=a.steps,
                           precision=prec, engine_replay_p50=r50, engine_replay_p90=r90,
                           engine_wall_p50=e50, engine_wall_p90=e90, torch_eager_p50=t50,
                           torch_eager_p90=t90, torch_compile_p50=c50, torch_compile_p90=c90,
                           speedup_vs_eager=t50 / e50, speedup_vs_compile=c50 / e50)
                rows.append(row)
                print("JSON " + json.dumps(row), flush=True)
    print(f"\n{gpu}, commit {commit}, pi05 full-size synthetic, {a.steps} steps; torch in bf16")
    print("| views | horizon | FlashRT precision | FlashRT replay p50 / p90 ms | FlashRT wall p50 / p90 | "
          "torch eager p50 / p90 | torch.compile p50 / p90 | vs eager | vs compile |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['views']} | {r['horizon']} | {r['precision']} | {r['engine_replay_p50']:.2f} / "
              f"{r['engine_replay_p90']:.2f} | {r['engine_wall_p50']:.2f} / "
              f"{r['engine_wall_p90']:.2f} | {r['torch_eager_p50']:.1f} / {r['torch_eager_p90']:.1f}"
              f" | {r['torch_compile_p50']:.1f} / {r['torch_compile_p90']:.1f} | "
              f"{r['speedup_vs_eager']:.1f}x | {r['speedup_vs_compile']:.2f}x |")


if __name__ == "__main__":
    main()
