"""Full-size synthetic Pi0.5 or Pi0 (--config): engine on CUDA (bf16) vs the repo's PyTorch
reference in fp32 on the same GPU (issue #3 test c, issue #6), 1/2/3 views. Prints cos / max abs
per case; exits 1 below cos 0.999."""
import argparse
import sys
import time

import numpy as np
import torch

import flash_rt
from full_checkpoint import full_checkpoint
from tests.reference.pi0_family_reference import Pi0Reference, Pi05Reference


def cos(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="pi05", choices=["pi05", "pi0"])
    config = ap.parse_args().config
    t0 = time.time()
    ckpt = full_checkpoint(config)
    print(f"{config} checkpoint ready in {time.time() - t0:.1f}s: {ckpt}")
    ref_class = Pi05Reference if config == "pi05" else Pi0Reference
    ref = ref_class(ckpt, device="cuda", dtype=torch.float32)
    rng = np.random.default_rng(1)
    worst = 1.0
    for views in (1, 2, 3):
        t0 = time.time()
        m = flash_rt.load_model(ckpt, config=config, hardware="cuda", num_views=views, use_fp8=False,
                                action_horizon=10)
        print(f"engine load ({views} views): {time.time() - t0:.1f}s")
        for case in range(2):
            imgs = [rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8) for _ in range(views)]
            state = rng.normal(size=8).astype(np.float32)
            noise = rng.normal(size=(10, 32)).astype(np.float32)
            prompt = "pick up the black bowl and place it on the plate"
            a = m.predict(imgs, prompt=prompt, state=state, noise=noise)
            r = ref.predict(imgs, views, prompt, state, noise)["actions"]
            c, e = cos(a, r), float(np.abs(a - r).max())
            worst = min(worst, c)
            print(f"full {config} views={views} case={case}: cos={c:.6f} max_abs={e:.3e} "
                  f"{'PASS' if c >= 0.999 else 'FAIL'}")
        m.close()
    print(f"full {config} worst cos={worst:.6f}")
    return 0 if worst >= 0.999 else 1


if __name__ == "__main__":
    sys.exit(main())
