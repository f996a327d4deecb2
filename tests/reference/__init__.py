"""Independent PyTorch reference of Pi0.5 and Pi0 (openpi's formulation, literally) and its helpers.

Modules:
  safetensors_np        safetensors read/write in plain numpy (bf16, f16, f32), no `safetensors` package
  openpi_inputs         prompt formatting + tokenization, norm stats, image resize-with-pad, as openpi
  model_ops             stateless torch ops (masks, time embedding, RMSNorm/adaRMS, RoPE, attention)
  pi0_family_reference  the models: a shared base + Pi05Reference and Pi0Reference(checkpoint_dir)
                        .predict(...)
  pi05_reference        the historical import path of Pi05Reference (re-exports only)
  tiny_checkpoint       random tiny pi05 / pi0 checkpoint in the openpi layout, for testing the
                        reference alone

This file also holds the comparison metrics shared by the parity tests and the GPU scripts, so
there is one definition of "cosine" and "max abs error" and one tolerance table.
Tests: tests/python/test_reference_selfcheck.py (reference alone),
       tests/python/test_reference_parity.py, test_reference_parity_pi0.py (engine vs reference).
"""

import numpy as np


def _as_f64(a):
    return np.asarray(a, dtype=np.float64).ravel()


def cos(a, b):
    """Cosine similarity of two arrays as flat vectors, in float64. Two all-zero arrays give 1."""
    x, y = _as_f64(a), _as_f64(b)
    if x.shape != y.shape:
        raise ValueError(f"cos: shapes differ: {np.shape(a)} vs {np.shape(b)}")
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    if nx == 0.0 and ny == 0.0:
        return 1.0
    if nx == 0.0 or ny == 0.0:
        return 0.0
    return float(np.dot(x, y) / (nx * ny))


def max_abs(a, b):
    """(max |a - b|, flat index of the worst element), in float64."""
    x, y = _as_f64(a), _as_f64(b)
    if x.shape != y.shape:
        raise ValueError(f"max_abs: shapes differ: {np.shape(a)} vs {np.shape(b)}")
    if x.size == 0:
        return 0.0, -1
    d = np.abs(x - y)
    i = int(np.argmax(d))
    return float(d[i]), i


# Pass bars (fp32 engine on CPU vs this fp32 reference), in one place.
# name: (min cosine, atol, scaled). scaled=True: max_abs must be <= atol * max(1, max |reference|),
# for intermediates whose magnitude depends on the weights; the actions (O(1) by construction)
# use the absolute bar of the parity spec: cos >= 0.99999 and max abs <= 1e-4.
TOLERANCES = {
    "images": (0.999999, 1e-6, False),  # a 224x224 input: only x / 255 * 2 - 1
    # a resized input: float32 bilinear coordinates legitimately move values by up to ~1.4e-4
    # (1080p) from the exact result (see openpi_inputs.bilinear_resize); real bugs (offsets,
    # half-pixel convention, padding) move them by > 1e-2.
    "images_resized": (0.99999, 2e-4, False),
    "vision_tokens": (0.99999, 1e-4, True),
    "prefix_embeddings": (0.99999, 1e-4, True),
    "prefix_k": (0.99999, 1e-4, True),
    "prefix_v": (0.99999, 1e-4, True),
    "velocity_0": (0.99999, 1e-4, True),
    "actions_normalized": (0.99999, 1e-4, False),
    "actions": (0.99999, 1e-4, False),
}


def check_close(name, got, want, kind=None):
    """Compares `got` (engine) with `want` (reference) under TOLERANCES[kind or name].

    Returns (ok, line) where line reads like
      'prefix_k.1  shape=(290, 16)  cos=0.9999999  max_abs=3.1e-07 @ (12, 4)  [bar: cos>=0.99999, abs<=1e-4]'
    Non-finite values in `got` always fail.
    """
    min_cos, atol, scaled = TOLERANCES[kind or name]
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return False, f"{name}  shape mismatch: engine {got.shape} vs reference {want.shape}"
    if not np.all(np.isfinite(got)):
        bad = int(np.size(got) - np.count_nonzero(np.isfinite(got)))
        return False, f"{name}  engine output has {bad} non-finite values"
    c = cos(got, want)
    m, i = max_abs(got, want)
    scale = max(1.0, float(np.max(np.abs(want)))) if scaled and want.size else 1.0
    ok = c >= min_cos and m <= atol * scale
    where = np.unravel_index(i, want.shape) if i >= 0 else ()
    line = (f"{name}  shape={tuple(want.shape)}  cos={c:.9f}  max_abs={m:.3e} @ {tuple(int(v) for v in where)}"
            f"  [bar: cos>={min_cos}, abs<={atol * scale:.1e}]")
    return ok, line
