"""CUDA-graph replay vs eager on the same engine build (issue #3 tests d and e): bit-identical
actions, and prompts of 5 different lengths each equal to an eager run. Tiny synthetic Pi0.5.
Exits 1 on any difference."""
import sys
import tempfile

import numpy as np

import flash_rt


def main():
    ckpt = tempfile.mkdtemp(prefix="frt_graphs_")
    flash_rt.make_checkpoint(ckpt, config="pi05", size="tiny", seed=2)
    kw = dict(config="pi05", hardware="cuda", num_views=2, action_horizon=10)
    graph = flash_rt.load_model(ckpt, cuda_graphs=True, **kw)
    eager = flash_rt.load_model(ckpt, cuda_graphs=False, **kw)
    rng = np.random.default_rng(3)
    prompts = ["go", "pick up the red block", "open the top drawer of the cabinet and put the bowl "
               "inside", "put both the alphabet soup and the tomato sauce in the basket " * 2,
               "stack the blocks " * 12]
    ok = True
    for rep in range(2):
        for p in prompts:
            imgs = [rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8) for _ in range(2)]
            state = rng.normal(size=8).astype(np.float32)
            noise = rng.normal(size=(10, 32)).astype(np.float32)
            a = graph.predict(imgs, prompt=p, state=state, noise=noise)
            b = eager.predict(imgs, prompt=p, state=state, noise=noise)
            same = np.array_equal(a, b)
            ok &= same
            print(f"graph vs eager rep={rep} prompt_chars={len(p):3d} replay_ms="
                  f"{graph.last_gpu_ms()} identical={same} max_abs={np.abs(a - b).max():.3e}")
    print("graphs", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
