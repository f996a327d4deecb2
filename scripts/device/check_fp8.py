"""FP8 on the GPU (issue #4, issue #6): full-size synthetic Pi0.5 / Pi0 (--config), FP8 engine vs
the bf16 engine and vs the repo's PyTorch reference in fp32, over >= 8 random observations for
1/2/3 views (min cos reported, bar 0.998; the bf16 engine vs the reference too, bar 0.999); the calibration cache: load + first predict with a
cache hit vs a cold calibration (same process, fresh cache directory); calibrate() with the
99.9 percentile over 8 observations. Exits 1 when a bar is missed.

  python3 scripts/device/check_fp8.py [--config pi05|pi0] [--samples 8]
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

import flash_rt
from full_checkpoint import full_checkpoint
from tests.reference.pi0_family_reference import Pi0Reference, Pi05Reference

PROMPTS = ["pick up the black bowl and place it on the plate", "open the top drawer",
           "put both the alphabet soup and the tomato sauce in the basket",
           "turn on the stove and put the moka pot on it"]


def cos(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def observation(rng, views, state_dim=8, horizon=10):
    return {"images": [rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8)
                       for _ in range(views)],
            "prompt": PROMPTS[int(rng.integers(len(PROMPTS)))],
            "state": rng.normal(size=state_dim).astype(np.float32),
            "noise": rng.normal(size=(horizon, 32)).astype(np.float32)}


def timed_first_predict(ckpt, config, obs):
    t0 = time.perf_counter()
    m = flash_rt.load_model(ckpt, config=config, hardware="cuda", num_views=3,
                            action_horizon=10, use_fp8=True)
    t1 = time.perf_counter()
    a = m.predict(**obs)
    t2 = time.perf_counter()
    return m, a, (t1 - t0) * 1e3, (t2 - t1) * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="pi05", choices=["pi05", "pi0"])
    ap.add_argument("--samples", type=int, default=8)
    args = ap.parse_args()
    os.environ["FLASH_RT_CALIBRATION_DIR"] = tempfile.mkdtemp(prefix="frt_calib_")
    ckpt = full_checkpoint(args.config)
    rng = np.random.default_rng(7)
    ok = True

    # Cache: cold (calibrates on the first observation, writes the cache) vs hit.
    first = observation(rng, 2)
    m, a_cold, load_cold, first_cold = timed_first_predict(ckpt, args.config, first)
    print(f"{args.config} precision={m.precision}")
    m.close()
    m, a_hit, load_hit, first_hit = timed_first_predict(ckpt, args.config, first)
    cold, hit = load_cold + first_cold, load_hit + first_hit
    print(f"cache: cold load {load_cold:.0f} ms + first predict {first_cold:.0f} ms = {cold:.0f} ms; "
          f"hit load {load_hit:.0f} ms + first predict {first_hit:.0f} ms = {hit:.0f} ms; "
          f"first predict {first_cold / first_hit:.2f}x, load+first {cold / hit:.2f}x faster; "
          f"same actions: {np.array_equal(a_cold, a_hit)}")

    bf16 = flash_rt.load_model(ckpt, config=args.config, hardware="cuda", num_views=3,
                               action_horizon=10, use_fp8=False)
    ref_class = Pi05Reference if args.config == "pi05" else Pi0Reference
    ref = ref_class(ckpt, device="cuda", dtype=torch.float32)
    for views in (1, 2, 3):
        worst_bf16, worst_ref, bf16_ref = 1.0, 1.0, 1.0
        for _ in range(args.samples):
            o = observation(rng, views)
            f8 = m.predict(**o)
            b = bf16.predict(**o)
            r = ref.predict(o["images"], views, o["prompt"], o["state"], o["noise"])["actions"]
            worst_bf16, worst_ref = min(worst_bf16, cos(f8, b)), min(worst_ref, cos(f8, r))
            bf16_ref = min(bf16_ref, cos(b, r))
        good = worst_bf16 >= 0.998 and worst_ref >= 0.998 and bf16_ref >= 0.999
        ok &= good
        print(f"{args.config} fp8 views={views} samples={args.samples}: min cos vs bf16 "
              f"{worst_bf16:.6f}, vs fp32 reference {worst_ref:.6f}; bf16 vs fp32 reference "
              f"{bf16_ref:.6f} {'PASS' if good else 'FAIL'}")

    # calibrate() over 8 observations at the 99.9th percentile, then the same check at 2 views.
    t0 = time.perf_counter()
    m.calibrate([observation(rng, 2) for _ in range(8)], percentile=99.9)
    print(f"calibrate(8 observations, p99.9): {(time.perf_counter() - t0) * 1e3:.0f} ms")
    worst = 1.0
    for _ in range(args.samples):
        o = observation(rng, 2)
        r = ref.predict(o["images"], 2, o["prompt"], o["state"], o["noise"])["actions"]
        worst = min(worst, cos(m.predict(**o), r))
    ok &= worst >= 0.998
    print(f"{args.config} fp8 after calibrate(p99.9) views=2: min cos vs fp32 reference "
          f"{worst:.6f} {'PASS' if worst >= 0.998 else 'FAIL'}")
    print("fp8", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
