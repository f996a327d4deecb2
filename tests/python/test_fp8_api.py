"""FP8 API surface on a machine without FP8 (the CPU-only CI): use_fp8 argument checks, the clear
error for use_fp8=True without an FP8 GPU, precision reporting, and calibrate()/recalibrate()
argument checks and no-ops on the fp32 reference. The GPU side (accuracy, cache hit vs cold
calibration) runs in scripts/device/check_fp8.py."""
import numpy as np
import pytest

import flash_rt


def _obs(rng, views=2):
    return {"images": [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(views)],
            "prompt": "pick up the cup", "state": rng.normal(size=8).astype(np.float32)}


def test_use_fp8_must_be_bool_or_none(tiny_pi05_checkpoint):
    for bad in ("yes", 1, 0.5):
        with pytest.raises(TypeError, match="use_fp8"):
            flash_rt.load_model(tiny_pi05_checkpoint, hardware="cpu", use_fp8=bad)


def test_use_fp8_true_on_cpu_is_a_clear_error(tiny_pi05_checkpoint):
    with pytest.raises(Exception, match="use_fp8=True needs a CUDA GPU with FP8"):
        flash_rt.load_model(tiny_pi05_checkpoint, hardware="cpu", use_fp8=True)


def test_cpu_reports_fp32_and_calibration_is_a_no_op(tiny_pi05_checkpoint):
    rng = np.random.default_rng(0)
    with flash_rt.load_model(tiny_pi05_checkpoint, hardware="cpu", use_fp8=False,
                             action_horizon=10) as m:
        assert m.precision == "fp32"
        noise = rng.normal(size=(10, 32)).astype(np.float32)
        o = _obs(rng)
        before = m.predict(o["images"], prompt=o["prompt"], state=o["state"], noise=noise)
        m.calibrate([_obs(rng), _obs(rng)], percentile=99.9)
        m.recalibrate()
        after = m.predict(o["images"], prompt=o["prompt"], state=o["state"], noise=noise)
        np.testing.assert_array_equal(before, after)


def test_memory_report(tiny_pi05_checkpoint):
    with flash_rt.load_model(tiny_pi05_checkpoint, hardware="cpu") as m:
        mem = m.memory()
        # The tiny model's f32 weights alone are > 1 MB; the CPU has no device memory to report.
        assert mem["model_bytes"] > 1_000_000 and mem["device_bytes"] == 0


def test_calibrate_argument_errors(tiny_pi05_checkpoint):
    rng = np.random.default_rng(1)
    with flash_rt.load_model(tiny_pi05_checkpoint, hardware="cpu") as m:
        with pytest.raises(ValueError, match="empty"):
            m.calibrate([])
        with pytest.raises(ValueError, match="percentile"):
            m.calibrate([_obs(rng)], percentile=101)
        with pytest.raises(ValueError, match="max_samples"):
            m.calibrate([_obs(rng)], max_samples=0)
        with pytest.raises(ValueError, match="unknown key"):
            m.calibrate([dict(_obs(rng), camera="x")])
        with pytest.raises(ValueError, match="must be a dict"):
            m.calibrate([[1, 2, 3]])
