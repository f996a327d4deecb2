"""Tiny synthetic Pi0.5: CUDA backend vs CPU reference backend, same inputs (issue #3 test b).

Run on the device by scripts/device/gpu_suite.sh. Prints cosine / max abs per case; exits 1 if
any case is below cos 0.9999.
"""
import sys
import tempfile

import numpy as np

import flash_rt


def cos(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def main():
    ckpt = tempfile.mkdtemp(prefix="frt_tiny_")
    flash_rt.make_checkpoint(ckpt, config="pi05", size="tiny", seed=1)
    rng = np.random.default_rng(0)
    worst = 1.0
    for views in (1, 2, 3):
        kw = dict(config="pi05", num_views=views, action_horizon=10)
        cpu = flash_rt.load_model(ckpt, hardware="cpu", **kw)
        gpu = flash_rt.load_model(ckpt, hardware="cuda", use_fp8=False, **kw)
        for case in range(3):
            imgs = [rng.integers(0, 256, size=(224 + 16 * v, 224 + 32 * case, 3), dtype=np.uint8)
                    for v in range(views)]
            state = rng.normal(size=8).astype(np.float32)
            noise = rng.normal(size=(10, 32)).astype(np.float32)
            prompt = ["pick up the block", "open the top drawer and put the bowl inside",
                      "x" * 300][case]
            a = cpu.predict(imgs, prompt=prompt, state=state, noise=noise)
            b = gpu.predict(imgs, prompt=prompt, state=state, noise=noise)
            c, m = cos(a, b), float(np.abs(a - b).max())
            worst = min(worst, c)
            print(f"tiny views={views} case={case}: cos={c:.6f} max_abs={m:.3e} "
                  f"{'PASS' if c >= 0.9999 else 'FAIL'}")
    print(f"tiny worst cos={worst:.6f}")
    return 0 if worst >= 0.9999 else 1


if __name__ == "__main__":
    sys.exit(main())
