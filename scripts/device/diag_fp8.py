"""Where FP8 loses accuracy: per-stage cosine of the FP8 engine's intermediates against the bf16
engine's (dumps), for Pi0.5 and Pi0 (full-size synthetic, 2 views). A diagnostic, not a test."""
import os
import sys
import tempfile

import numpy as np

import flash_rt
from full_checkpoint import full_checkpoint


def cos(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def main():
    os.environ["FLASH_RT_CALIBRATION_DIR"] = tempfile.mkdtemp(prefix="frt_diag_")
    for config in sys.argv[1:] or ["pi0", "pi05"]:
        ckpt = full_checkpoint(config)
        rng = np.random.default_rng(3)
        obs = dict(images=[rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(2)],
                   prompt="pick up the black bowl and place it on the plate",
                   state=rng.normal(size=8).astype(np.float32),
                   noise=rng.normal(size=(10, 32)).astype(np.float32))
        out = {}
        for fp8 in (False, True):
            m = flash_rt.load_model(ckpt, config=config, hardware="cuda", num_views=2,
                                    action_horizon=10, use_fp8=fp8)
            m.predict(**obs)  # FP8: calibrates on this observation first
            m.enable_dumps(True)
            a = m.predict(**obs)
            names = ["vision_tokens.0", "vision_tokens.1", "prefix_embeddings"] + \
                [f"prefix_k.{l}" for l in (0, 1, 4, 8, 12, 17)] + \
                [f"prefix_v.{l}" for l in (0, 8, 17)] + ["velocity.0"]
            out[fp8] = {n: m.get_dump(n) for n in names}
            out[fp8]["actions"] = a
            m.close()
        for n in out[False]:
            b, f = out[False][n], out[True][n]
            print(f"{config} {n:18s} cos fp8 vs bf16 {cos(b, f):.6f}  max|bf16| {np.abs(b).max():.3g}"
                  f"  max|diff| {np.abs(b - f).max():.3g}")


if __name__ == "__main__":
    main()
