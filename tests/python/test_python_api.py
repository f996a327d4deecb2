"""Tests of the Python package flash_rt (python/flash_rt).

Part 1 runs without libflashrt.so: argument validation (load_model, predict inputs), the status
→ exception mapping, the library lookup message, and the ctypes struct layout against the C
header (compiled probe). Part 2 runs the engine on a tiny synthetic checkpoint (hardware='cpu')
and skips when the library is missing, unless FLASHRT_REQUIRE_ENGINE=1 (CI), where that fails.

Run: /usr/bin/python3 -m pytest tests/python/test_python_api.py -q -rs
"""

import ctypes
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))

import flash_rt  # noqa: E402
from flash_rt import _errors, _inputs, _lib, _options  # noqa: E402

RNG = np.random.default_rng(1234)


def rand_u8(h, w):
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------- part 1: no library needed

class TestImages:
    def test_list_is_converted_to_contiguous_arrays(self):
        base = rand_u8(6, 9)[:, ::-1]  # a non-contiguous view
        wrist = RNG.random((5, 4, 3))  # float64 in [0, 1)
        out = _inputs.validate_images([base, wrist], num_views=2)
        assert out[0].dtype == np.uint8 and out[0].flags.c_contiguous
        np.testing.assert_array_equal(out[0], base)
        assert out[1].dtype == np.float32 and out[1].flags.c_contiguous
        np.testing.assert_allclose(out[1], wrist, rtol=1e-6)

    def test_none_is_a_masked_view(self):
        img = rand_u8(4, 4)
        out = _inputs.validate_images([img, None, img], num_views=3)
        assert out[1] is None and out[2] is not None

    def test_dict_keys_map_to_slots(self):
        a, b = rand_u8(4, 4), rand_u8(3, 3)
        out = _inputs.validate_images({"left_wrist_0_rgb": b, "base_0_rgb": a}, num_views=2)
        np.testing.assert_array_equal(out[0], a)
        np.testing.assert_array_equal(out[1], b)
        out = _inputs.validate_images({"base_0_rgb": a}, num_views=3)
        assert len(out) == 1

    def test_dict_unknown_key_lists_allowed(self):
        with pytest.raises(ValueError) as e:
            _inputs.validate_images({"base_0_rgb": rand_u8(4, 4), "top_rgb": rand_u8(4, 4)}, 2)
        msg = str(e.value)
        assert "'top_rgb'" in msg and "left_wrist_0_rgb" in msg and "right_wrist_0_rgb" in msg

    def test_dict_slot_beyond_num_views(self):
        with pytest.raises(ValueError, match="num_views=2"):
            _inputs.validate_images({"base_0_rgb": rand_u8(4, 4),
                                     "right_wrist_0_rgb": rand_u8(4, 4)}, 2)

    def test_chw_suggests_transpose(self):
        with pytest.raises(ValueError) as e:
            _inputs.validate_images([np.zeros((3, 224, 224), np.uint8)], 2)
        assert "images[0]" in str(e.value) and "transpose" in str(e.value)
        assert "(3, 224, 224)" in str(e.value)

    @pytest.mark.parametrize("shape,hint", [((8, 8, 4), "RGBA"), ((8, 8), "grayscale"),
                                            ((1, 8, 8, 3), "batch"), ((8, 8, 2), "(height, width, 3)")])
    def test_wrong_shapes(self, shape, hint):
        with pytest.raises(ValueError) as e:
            _inputs.validate_images([rand_u8(4, 4), np.zeros(shape, np.uint8)], 2)
        assert "images[1]" in str(e.value) and hint in str(e.value)

    @pytest.mark.parametrize("dtype", [np.int64, np.uint16, np.bool_, np.complex64])
    def test_wrong_dtype_names_it(self, dtype):
        with pytest.raises(ValueError) as e:
            _inputs.validate_images([np.zeros((4, 4, 3), dtype)], 2)
        assert "images[0]" in str(e.value) and np.dtype(dtype).name in str(e.value)
        assert "uint8" in str(e.value)

    def test_dtype_error_names_the_dict_key(self):
        with pytest.raises(ValueError, match="left_wrist_0_rgb"):
            _inputs.validate_images({"base_0_rgb": rand_u8(4, 4),
                                     "left_wrist_0_rgb": np.zeros((4, 4, 3), np.int32)}, 2)

    def test_float_out_of_range_reports_min_max(self):
        img = RNG.random((4, 4, 3)).astype(np.float32) * 255.0
        img[0, 0, 0] = -2.5
        with pytest.raises(ValueError) as e:
            _inputs.validate_images([img], 2)
        msg = str(e.value)
        assert "min -2.5" in msg and "max {:g}".format(float(img.max())) in msg

    def test_float_nan(self):
        img = RNG.random((4, 4, 3)).astype(np.float32)
        img[1, 2, 0] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            _inputs.validate_images([img], 2)

    def test_too_many_images(self):
        with pytest.raises(ValueError, match="num_views=2"):
            _inputs.validate_images([rand_u8(4, 4)] * 3, 2)

    @pytest.mark.parametrize("images", [[], [None, None], {}])
    def test_no_image(self, images):
        with pytest.raises(ValueError, match="at least one view"):
            _inputs.validate_images(images, 2)

    def test_single_array_instead_of_list(self):
        with pytest.raises(ValueError, match="list"):
            _inputs.validate_images(rand_u8(4, 4), 2)
        with pytest.raises(TypeError):
            _inputs.validate_images("base.png", 2)


class TestStateNoisePrompt:
    def test_state_converted(self):
        s = _inputs.validate_state([0.5, -1, 2])
        assert s.dtype == np.float32 and s.tolist() == [0.5, -1.0, 2.0]

    @pytest.mark.parametrize("bad,index", [([0.1, float("nan"), 0.3], 1), ([0.0, 0.0, np.inf], 2),
                                           ([1e39, 0.0], 0)])
    def test_state_not_finite_names_index(self, bad, index):
        with pytest.raises(ValueError, match=r"state\[{}\]".format(index)):
            _inputs.validate_state(bad)

    @pytest.mark.parametrize("bad,what", [(np.zeros((2, 3)), "1-D"), ([], "empty"),
                                          (["a", "b"], "dtype"), (3.0, "1-D")])
    def test_state_shape_and_dtype(self, bad, what):
        with pytest.raises(ValueError, match=what):
            _inputs.validate_state(bad)

    def test_noise(self):
        n = RNG.standard_normal((10, 32))
        out = _inputs.validate_noise(n, 10, 32)
        assert out.dtype == np.float32 and out.flags.c_contiguous
        with pytest.raises(ValueError, match=r"\(10, 32\)"):
            _inputs.validate_noise(n.T, 10, 32)
        n[3, 5] = np.nan
        with pytest.raises(ValueError, match=r"noise\[3, 5\]"):
            _inputs.validate_noise(n, 10, 32)

    def test_prompt(self):
        assert _inputs.validate_prompt("pick") == "pick"
        with pytest.raises(TypeError):
            _inputs.validate_prompt(b"pick")
        with pytest.raises(ValueError, match="NUL"):
            _inputs.validate_prompt("a\0b")


class TestLoadArguments:
    def test_missing_checkpoint(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            flash_rt.load_model(tmp_path / "nope")

    def test_checkpoint_is_a_file(self, tmp_path):
        f = tmp_path / "model.safetensors"
        f.write_bytes(b"x")
        with pytest.raises(NotADirectoryError, match="directory"):
            flash_rt.load_model(f)

    def test_unknown_kwargs_are_named(self, tmp_path):
        with pytest.raises(TypeError) as e:
            flash_rt.load_model(tmp_path, num_view=2, autotune=True)
        assert "'num_view'" in str(e.value) and "did you mean 'num_views'" in str(e.value)
        assert "'autotune'" in str(e.value)

    @pytest.mark.parametrize("kw,fragment", [
        (dict(config="pi0.5"), "did you mean 'pi05'"),
        (dict(config=None), "config=None"),
        (dict(hardware="gpu"), "did you mean 'cuda'"),
        (dict(num_views=0), "num_views=0"),
        (dict(num_views=4), "1..3"),
        (dict(num_steps=0), "num_steps=0"),
        (dict(action_horizon=-5), "action_horizon=-5"),
        (dict(max_token_len=1), "max_token_len=1"),
        (dict(discrete_state_input=2), "discrete_state_input=2"),
        (dict(normalization="z-score"), "did you mean 'zscore'"),
        (dict(norm_stats_asset=""), "norm_stats_asset"),
        (dict(seed=-1), "seed=-1"),
    ])
    def test_bad_values(self, tmp_path, kw, fragment):
        with pytest.raises(ValueError) as e:
            _options.validate_load_args(tmp_path, **kw)
        assert fragment in str(e.value)

    @pytest.mark.parametrize("kw", [dict(num_views=2.0), dict(num_steps=True), dict(seed=1.5),
                                    dict(action_horizon="10"), dict(default_prompt=3)])
    def test_wrong_types_are_type_and_value_errors(self, tmp_path, kw):
        name = next(iter(kw))
        with pytest.raises(TypeError, match=name):
            _options.validate_load_args(tmp_path, **kw)
        with pytest.raises(ValueError, match=name):
            _options.validate_load_args(tmp_path, **kw)

    def test_missing_tokenizer(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="tokenizer_path"):
            _options.validate_load_args(tmp_path, tokenizer_path=tmp_path / "tok.model")

    def test_encodings(self, tmp_path):
        a = _options.validate_load_args(tmp_path, num_views=np.int64(3), num_steps=None,
                                        discrete_state_input=False, normalization="none", seed=7)
        assert (a.num_views, a.num_steps, a.action_horizon, a.max_token_len) == (3, 0, 0, 0)
        assert a.discrete_state_input == 0 and a.seed == 7 and a.normalization == "none"
        assert _options.validate_load_args(tmp_path).discrete_state_input == -1

    def test_make_checkpoint_arguments(self, tmp_path):
        with pytest.raises(ValueError, match="size='huge'"):
            flash_rt.make_checkpoint(tmp_path, size="huge")
        with pytest.raises(ValueError, match="config='auto'"):
            flash_rt.make_checkpoint(tmp_path, config="auto")

    def test_log_level(self):
        with pytest.raises(ValueError, match="level='loud'"):
            flash_rt.set_log_level("loud")


class TestErrorsAndLookup:
    @pytest.mark.parametrize("status,builtin", [(_errors.INVALID_ARGUMENT, ValueError),
                                                (_errors.NOT_FOUND, FileNotFoundError),
                                                (_errors.NOT_SUPPORTED, RuntimeError),
                                                (_errors.IO_ERROR, RuntimeError),
                                                (_errors.CUDA_ERROR, RuntimeError)])
    def test_status_mapping(self, status, builtin):
        err = _errors.error_for_status(status, "predict: images[0] is bad; expected 3")
        assert isinstance(err, builtin) and isinstance(err, flash_rt.FlashRTError)
        assert err.status == status
        assert str(err) == "predict: images[0] is bad; expected 3"

    def test_not_supported_is_not_a_value_error(self):
        err = _errors.error_for_status(_errors.NOT_SUPPORTED, "no GPU")
        assert isinstance(err, flash_rt.NotSupportedError) and not isinstance(err, ValueError)

    def test_explicit_library_path_must_exist(self, monkeypatch, tmp_path):
        monkeypatch.setenv("FLASH_RT_LIBRARY", str(tmp_path / "libnope.so"))
        with pytest.raises(FileNotFoundError, match="FLASH_RT_LIBRARY"):
            _lib.find_library()

    def test_missing_library_lists_places_and_build_command(self, monkeypatch, tmp_path):
        monkeypatch.delenv("FLASH_RT_LIBRARY", raising=False)
        places = [("package directory", tmp_path / "a" / "libflashrt.so"),
                  ("repository build", tmp_path / "b" / "libflashrt.so")]
        monkeypatch.setattr(_lib, "library_candidates", lambda: places)
        with pytest.raises(OSError) as e:
            _lib.find_library()
        msg = str(e.value)
        assert str(places[0][1]) in msg and str(places[1][1]) in msg
        assert "cmake -S . -B build && cmake --build build -j" in msg

    def test_candidates_order(self, monkeypatch):
        monkeypatch.setenv("FLASH_RT_LIBRARY", "/x/libflashrt.so")
        paths = [p for _, p in _lib.library_candidates()]
        assert paths[0] == pathlib.Path("/x/libflashrt.so")
        assert paths[1] == REPO / "python" / "flash_rt" / "libflashrt.so"
        assert paths[2] == REPO / "build" / "libflashrt.so"


def test_ctypes_structs_match_the_c_header(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the layout probe")
    structs = {"frt_load_options_t": _lib.LoadOptions, "frt_model_info_t": _lib.ModelInfo,
               "frt_image_t": _lib.Image, "frt_observation_t": _lib.Observation}
    lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "flashrt/flashrt.h"',
             "int main(void) {"]
    for cname, py in structs.items():
        lines.append('printf("{0} size %zu\\n", sizeof({0}));'.format(cname))
        for field, _ in py._fields_:
            lines.append('printf("{0} {1} %zu\\n", offsetof({0}, {1}));'.format(cname, field))
    lines.append('printf("abi %d\\n", FRT_ABI_VERSION); return 0; }')
    src = tmp_path / "probe.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "probe"
    subprocess.run([cc, "-std=c99", "-Wall", "-Werror", "-I", str(REPO / "include"), str(src),
                    "-o", str(exe)], check=True)
    got = {}
    for line in subprocess.run([str(exe)], check=True, capture_output=True,
                               text=True).stdout.splitlines():
        parts = line.split()
        got[(parts[0], parts[1] if len(parts) == 3 else "")] = int(parts[-1])
    assert got[("abi", "")] == _lib.ABI_VERSION
    for cname, py in structs.items():
        assert got[(cname, "size")] == ctypes.sizeof(py), cname
        for field, _ in py._fields_:
            assert got[(cname, field)] == getattr(py, field).offset, (cname, field)
    # Every C field is mirrored: the last field ends where the struct's padding begins.
    for cname, py in structs.items():
        last = py._fields_[-1][0]
        assert getattr(py, last).offset + getattr(py, last).size <= got[(cname, "size")]


# ---------------------------------------------------------------- part 2: the engine

def _require_library():
    try:
        return _lib.lib()
    except OSError as e:
        if os.environ.get("FLASHRT_REQUIRE_ENGINE") == "1":
            pytest.fail("FLASHRT_REQUIRE_ENGINE=1 but libflashrt.so is unusable: {}".format(e))
        pytest.skip("libflashrt.so not available (build it: cmake -S . -B build && "
                    "cmake --build build -j): {}".format(str(e).splitlines()[0]))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    _require_library()
    d = tmp_path_factory.mktemp("pi05_tiny")
    assert flash_rt.make_checkpoint(d, config="pi05", size="tiny", seed=3) == d
    return d


@pytest.fixture(scope="module")
def model(tiny):
    m = flash_rt.load_model(tiny, hardware="cpu", action_horizon=10, num_steps=4,
                            tokenizer_path=tiny / "paligemma_tokenizer.model")
    yield m
    m.close()


@pytest.fixture(scope="module")
def obs():
    return {"images": [rand_u8(240, 320), rand_u8(224, 224)],
            "state": RNG.uniform(-0.5, 0.5, size=8).astype(np.float32)}


def _noise(m, seed=0):
    return np.random.default_rng(seed).standard_normal((m.action_horizon, m.action_dim))


def test_version():
    _require_library()
    assert isinstance(flash_rt.__version__, str) and flash_rt.__version__[0].isdigit()


def test_info_and_properties(model):
    info = model.info
    assert info["config"] == "pi05" and model.config == "pi05"
    assert info["hardware"] == "cpu" and model.framework == "flashrt-cpu"
    assert (info["num_views"], info["action_horizon"], info["num_steps"]) == (2, 10, 4)
    assert info["action_dim"] == 32 and info["normalization"] == "quantile"
    assert info["discrete_state_input"] is True and info["max_token_len"] == 200
    assert info["state_dim"] == 8 and info["robot_action_dim"] == 7
    assert all(v > 0 for v in info["num_params"].values())
    info["config"] = "changed"  # a copy: the model's view is unchanged
    assert model.config == "pi05"


def test_predict_shape_and_dtype(model, obs):
    a = model.predict(obs["images"], prompt="pick up the block", state=obs["state"])
    assert a.shape == (10, 32) and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.abs(a).max() > 0


def _op_calls(report, stage, op):
    for line in report.splitlines():
        f = line.split()
        if len(f) == 5 and f[0] == stage and f[1] == op:
            return int(f[2])
    return 0


def test_profile_reset_leaves_out_earlier_predicts(tiny, obs):
    with flash_rt.load_model(tiny, hardware="cpu", num_steps=2, action_horizon=10,
                             profile_ops=True,
                             tokenizer_path=tiny / "paligemma_tokenizer.model") as m:
        for _ in range(2):
            m.predict(obs["images"], "go", obs["state"])
        twice = _op_calls(m.profile_report(), "vision", "attention")
        assert twice > 0 and twice % 2 == 0
        m.profile_reset()
        assert _op_calls(m.profile_report(), "vision", "attention") == 0
        m.predict(obs["images"], "go", obs["state"])
        assert _op_calls(m.profile_report(), "vision", "attention") == twice // 2


def test_default_horizon_is_50(tiny, obs):
    with flash_rt.load_model(tiny, hardware="cpu", num_steps=2,
                             tokenizer_path=tiny / "paligemma_tokenizer.model") as m:
        assert m.predict(obs["images"], "go", obs["state"]).shape == (50, 32)


def test_fixed_noise_is_deterministic_and_used(model, obs):
    n = _noise(model)
    a = model.predict(obs["images"], "pick up the block", obs["state"], noise=n)
    b = model.predict(obs["images"], "pick up the block", obs["state"], noise=n)
    c = model.predict(obs["images"], "pick up the block", obs["state"], noise=_noise(model, 1))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-4


def test_seed_makes_sampled_noise_reproducible(tiny, obs):
    def first(seed):
        with flash_rt.load_model(tiny, hardware="cpu", action_horizon=10, num_steps=2, seed=seed,
                                 tokenizer_path=tiny / "paligemma_tokenizer.model") as m:
            return m.predict(obs["images"], "go", obs["state"])
    np.testing.assert_array_equal(first(5), first(5))
    assert np.abs(first(5) - first(6)).max() > 1e-4


def test_dict_and_list_images_agree(model, obs):
    n = _noise(model)
    a = model.predict(obs["images"], "open the drawer", obs["state"], noise=n)
    b = model.predict({"left_wrist_0_rgb": obs["images"][1], "base_0_rgb": obs["images"][0]},
                      "open the drawer", obs["state"], noise=n)
    np.testing.assert_array_equal(a, b)
    swapped = model.predict(obs["images"][::-1], "open the drawer", obs["state"], noise=n)
    assert np.abs(a - swapped).max() > 1e-5


def test_float_images_match_uint8(model, obs):
    n = _noise(model)
    a = model.predict(obs["images"], "open the drawer", obs["state"], noise=n)
    f = [im.astype(np.float64) / 255.0 for im in obs["images"]]
    b = model.predict(f, "open the drawer", obs["state"], noise=n)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_masked_view_equals_fewer_images(model, obs):
    n = _noise(model)
    a = model.predict([obs["images"][0], None], "go", obs["state"], noise=n)
    b = model.predict([obs["images"][0]], "go", obs["state"], noise=n)
    full = model.predict(obs["images"], "go", obs["state"], noise=n)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - full).max() > 1e-5


def test_prompt_and_state_change_the_output(model, obs):
    n = _noise(model)
    model.set_prompt("pick up the red block")
    assert model.prompt == "pick up the red block"
    a = model.predict(obs["images"], state=obs["state"], noise=n)
    explicit = model.predict(obs["images"], "pick up the red block", obs["state"], noise=n)
    np.testing.assert_array_equal(a, explicit)
    model.set_prompt("close the top drawer of the cabinet")
    b = model.predict(obs["images"], state=obs["state"], noise=n)
    assert np.abs(a - b).max() > 1e-5
    c = model.predict(obs["images"], state=-obs["state"], noise=n)
    assert np.abs(b - c).max() > 1e-5


def test_engine_errors_are_mapped(model, tiny, obs, tmp_path):
    with pytest.raises(ValueError, match="state"):  # pi05 puts the state into the prompt
        model.predict(obs["images"], "go")
    with pytest.raises(ValueError, match="images"):  # larger than the engine accepts
        model.predict([np.zeros((3000, 3000, 3), np.uint8)], "go", obs["state"])
    with pytest.raises(ValueError, match="pi05"):
        flash_rt.load_model(tiny, config="pi0", hardware="cpu")
    with pytest.raises(FileNotFoundError) as e:  # a directory without weights
        flash_rt.load_model(tmp_path, hardware="cpu")
    assert isinstance(e.value, flash_rt.FlashRTError) and e.value.status == _errors.NOT_FOUND
    with pytest.raises(FileNotFoundError, match="nope"):
        flash_rt.load_model(tiny, hardware="cpu", norm_stats_asset="nope")


def test_cuda_without_gpu_is_not_supported(tiny):
    try:
        m = flash_rt.load_model(tiny, hardware="cuda")
    except flash_rt.NotSupportedError as e:
        assert isinstance(e, RuntimeError) and str(e)
    else:
        m.close()
        pytest.skip("a usable GPU is present")


def test_dumps(model, obs):
    model.enable_dumps(True)
    try:
        model.predict(obs["images"], "pick up the block", obs["state"])
        ids = model.get_dump("prompt_ids")
        assert ids.ndim == 1 and ids.dtype == np.float32 and ids.size > 3
        with pytest.raises(FileNotFoundError, match="prompt_ids"):  # lists what exists
            model.get_dump("no_such_tensor")
    finally:
        model.enable_dumps(False)


def test_recalibrate_and_close(tiny, obs):
    m = flash_rt.load_model(tiny, hardware="cpu", action_horizon=10, num_steps=2,
                            tokenizer_path=tiny / "paligemma_tokenizer.model")
    m.recalibrate()
    assert "pi05" in repr(m)
    m.close()
    m.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        m.predict(obs["images"], "go", obs["state"])


def test_log_callback_receives_messages(tiny, obs):
    got = []
    flash_rt.set_log_callback(lambda level, msg: got.append((level, msg)), level="debug")
    try:
        # A prompt longer than max_token_len is truncated with a warning through the logger.
        with flash_rt.load_model(tiny, hardware="cpu", action_horizon=10, num_steps=2,
                                 max_token_len=8,
                                 tokenizer_path=tiny / "paligemma_tokenizer.model") as m:
            m.predict(obs["images"], "pick up the red block and put it in the bowl " * 4,
                      obs["state"])
    finally:
        flash_rt.set_log_callback(None, level="info")
    assert any(level == "warning" and "trunc" in msg.lower() for level, msg in got), got
