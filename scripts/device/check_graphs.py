"""CUDA-graph replay vs eager on the same engine build (issue #3 tests d and e): bit-identical
actions, and prompts of 5 different lengths (and random states, which Pi0.5 writes into the
prompt) each equal to an eager run, all through ONE captured graph per model (the prompt length
lives in device memory). Tiny synthetic Pi0.5 and Pi0. Exits 1 on any difference or on a
recapture."""
import os
import sys
import tempfile

import numpy as np

import flash_rt


def count_captures(log_path):
    with open(log_path, errors="replace") as f:
        return sum("CUDA graph captured" in line for line in f)


def check(config, log_path, use_fp8):
    ckpt = tempfile.mkdtemp(prefix="frt_graphs_")
    flash_rt.make_checkpoint(ckpt, config=config, size="tiny", seed=2)
    kw = dict(config=config, hardware="cuda", num_views=2, action_horizon=10, use_fp8=use_fp8)
    config = config + ("/fp8" if use_fp8 else "/bf16")
    before = count_captures(log_path)
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
            print(f"{config} graph vs eager rep={rep} prompt_chars={len(p):3d} replay_ms="
                  f"{graph.last_gpu_ms()} identical={same} max_abs={np.abs(a - b).max():.3e}")
    captures = count_captures(log_path) - before
    print(f"{config}: {captures} graph capture(s) for {2 * len(prompts)} predicts (want 1)")
    return ok and captures == 1


def main():
    # The engine logs each capture on stderr: send fd 2 to a file to count them.
    log_path = os.path.join(tempfile.mkdtemp(prefix="frt_graphs_log_"), "stderr.log")
    saved = os.dup(2)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 2)
    try:
        os.environ["FLASH_RT_CALIBRATION_DIR"] = tempfile.mkdtemp(prefix="frt_graphs_calib_")
        ok = all([check(c, log_path, f) for c in ("pi05", "pi0") for f in (False, True)])
    finally:
        os.dup2(saved, 2)
    with open(log_path, errors="replace") as f:
        sys.stderr.write(f.read())
    print("graphs", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
