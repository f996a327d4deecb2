"""load_model / VLAModel / make_checkpoint: the Python API over the C ABI.

Arguments are validated in Python first (_options, _inputs); what only the engine can check
(checkpoint contents, tokenizer, image size limits) comes back as a C status and is raised as
the mapped exception (_errors) with the library's message.
Tests: tests/python/test_python_api.py.
"""

import ctypes
import pathlib

import numpy as np

from . import _inputs, _lib, _options


def _float_ptr(array):
    return array.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def _info_dict(c_info):
    return {
        "config": c_info.config.decode(),
        "hardware": c_info.hardware.decode(),
        "device_name": c_info.device_name.decode(errors="replace"),
        "num_views": c_info.num_views,
        "num_steps": c_info.num_steps,
        "action_horizon": c_info.action_horizon,
        "action_dim": c_info.action_dim,
        "max_token_len": c_info.max_token_len,
        "discrete_state_input": bool(c_info.discrete_state_input),
        "normalization": _lib.NORMALIZATION_NAMES.get(c_info.normalization,
                                                      str(c_info.normalization)),
        "state_dim": c_info.state_dim,
        "robot_action_dim": c_info.robot_action_dim,
        "num_params": {
            "vision": c_info.num_params_vision,
            "llm": c_info.num_params_llm,
            "expert": c_info.num_params_expert,
            "other": c_info.num_params_other,
        },
    }


class VLAModel:
    """A loaded policy. Create with flash_rt.load_model(); free with close() or a with-block.

    Calls on one model are serialized by the library; use one model per thread for parallelism.
    """

    def __init__(self, handle, checkpoint):
        # Internal: load_model() builds it from a frt_model_t* handle and frees the handle
        # itself if this raises, so the handle is owned only once get_info succeeded.
        self._handle = None
        self._lib = _lib.lib()
        self._checkpoint = checkpoint
        c_info = _lib.ModelInfo()
        c_info.struct_size = ctypes.sizeof(_lib.ModelInfo)
        _lib.check(self._lib.frt_model_get_info(handle, ctypes.byref(c_info)))
        self._info = _info_dict(c_info)
        self._handle = handle

    # ---- lifecycle ----
    def close(self):
        """Frees the model (idempotent)."""
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            self._lib.frt_model_free(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may already be gone
            pass

    def _h(self):
        if not self._handle:
            raise RuntimeError("this VLAModel is closed")
        return self._handle

    def __repr__(self):
        i = self._info
        return "VLAModel({!r}, config={!r}, hardware={!r}, num_views={}, action_horizon={}{})".format(
            self._checkpoint, i["config"], i["hardware"], i["num_views"], i["action_horizon"],
            "" if self._handle else ", closed")

    # ---- properties ----
    @property
    def info(self):
        """Resolved configuration: config, hardware, device_name, num_views, num_steps,
        action_horizon, action_dim, max_token_len, discrete_state_input, normalization,
        state_dim, robot_action_dim, num_params {vision, llm, expert, other}."""
        return dict(self._info, num_params=dict(self._info["num_params"]))

    @property
    def config(self):
        """'pi05' or 'pi0'."""
        return self._info["config"]

    @property
    def framework(self):
        """'flashrt-cpu' or 'flashrt-cuda': the backend this model runs on."""
        return "flashrt-" + self._info["hardware"]

    @property
    def num_views(self):
        return self._info["num_views"]

    @property
    def action_horizon(self):
        return self._info["action_horizon"]

    @property
    def action_dim(self):
        return self._info["action_dim"]

    @property
    def checkpoint(self):
        return self._checkpoint

    @property
    def prompt(self):
        """The prompt used when predict() gets none ('' if none)."""
        p = self._lib.frt_model_prompt(self._h())
        return p.decode("utf-8", "replace") if p else ""

    def set_prompt(self, prompt):
        """Sets the prompt used when predict() gets none."""
        prompt = _inputs.validate_prompt(prompt)
        if prompt is None:
            raise _options.ArgumentTypeError("prompt must be a str, got None")
        _lib.check(self._lib.frt_model_set_prompt(self._h(), prompt.encode("utf-8")))

    # ---- predict ----
    def predict(self, images, prompt=None, state=None, noise=None):
        """One action chunk: float32 array (action_horizon, action_dim), unnormalized.

        images: [base, left_wrist, right_wrist] (None = masked view; up to num_views entries) or
          a dict keyed by 'base_0_rgb', 'left_wrist_0_rgb', 'right_wrist_0_rgb'; each HxWx3
          uint8, or float32/float64 in [0, 1], any size (resized with padding to 224).
        prompt: the task; None = the model's prompt (set_prompt / default_prompt).
        state: 1-D robot state, unnormalized (required by pi05 with discrete_state_input).
        noise: (action_horizon, action_dim) standard-normal start; None = sampled from the seed.
        """
        handle = self._h()
        H, D = self._info["action_horizon"], self._info["action_dim"]
        obs, keep = self._c_observation(images, prompt, state, noise)
        out = np.empty((H, D), dtype=np.float32)
        h, d = ctypes.c_int32(0), ctypes.c_int32(0)
        # `keep` holds the arrays the observation points into until the call returns.
        _lib.check(self._lib.frt_model_predict(handle, ctypes.byref(obs), _float_ptr(out), out.size,
                                               ctypes.byref(h), ctypes.byref(d)))
        if (h.value, d.value) != (H, D):
            raise RuntimeError("predict returned {}x{} actions, expected {}x{}".format(
                h.value, d.value, H, D))
        return out

    def _c_observation(self, images, prompt, state, noise):
        """(frt_observation_t, the Python objects it points into) after validating the inputs."""
        arrays = _inputs.validate_images(images, self._info["num_views"])
        prompt = _inputs.validate_prompt(prompt)
        state_a = _inputs.validate_state(state)
        noise_a = _inputs.validate_noise(noise, self._info["action_horizon"],
                                         self._info["action_dim"])
        c_images = (_lib.Image * len(arrays))()
        for slot, a in enumerate(arrays):
            if a is None:
                continue  # data NULL: masked view
            c_images[slot].data = a.ctypes.data
            c_images[slot].height, c_images[slot].width, c_images[slot].channels = a.shape
            c_images[slot].dtype = _lib.IMAGE_U8 if a.dtype == np.uint8 else _lib.IMAGE_F32
        obs = _lib.Observation()
        obs.struct_size = ctypes.sizeof(_lib.Observation)
        obs.images = c_images
        obs.num_images = len(arrays)
        obs.prompt = prompt.encode("utf-8") if prompt is not None else None
        if state_a is not None:
            obs.state, obs.state_dim = _float_ptr(state_a), state_a.size
        if noise_a is not None:
            obs.noise, obs.noise_len = _float_ptr(noise_a), noise_a.size
        return obs, (arrays, state_a, noise_a, c_images)

    def memory(self):
        """{'model_bytes': weights + buffers the model allocated, 'device_bytes': memory the whole
        GPU has in use now (context and libraries included; 0 on the CPU)}."""
        model, device = ctypes.c_int64(0), ctypes.c_int64(0)
        _lib.check(self._lib.frt_model_memory(self._h(), ctypes.byref(model), ctypes.byref(device)))
        return {"model_bytes": model.value, "device_bytes": device.value}

    # ---- FP8 ----
    @property
    def precision(self):
        """'fp32' (CPU reference), 'bf16' or 'fp8': the GEMM precision this model runs in."""
        return self._lib.frt_model_precision(self._h()).decode()

    def calibrate(self, observations, percentile=99.9, max_samples=None):
        """FP8: measures every GEMM input on each observation and installs per-input scales:
        the `percentile` (0..100) across observations of each one's max |x| (one observation:
        its max). An observation is a dict with the keys of predict(): images, prompt, state,
        noise. The scales go to the calibration cache too. No-op for fp32/bf16."""
        if isinstance(observations, dict):
            observations = [observations]
        observations = list(observations)
        if not observations:
            raise ValueError("calibrate: observations is empty; pass at least one observation")
        if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not (
                0.0 <= float(percentile) <= 100.0):
            raise ValueError("percentile={!r} is not allowed; expected a number in [0, 100] "
                             "(99.9 is usual)".format(percentile))
        if max_samples is not None and (isinstance(max_samples, bool) or not isinstance(
                max_samples, int) or max_samples < 1):
            raise ValueError("max_samples={!r} is not allowed; expected a positive int or None "
                             "(all)".format(max_samples))
        c_obs = (_lib.Observation * len(observations))()
        keep = []
        for i, o in enumerate(observations):
            if not isinstance(o, dict) or "images" not in o:
                raise ValueError("calibrate: observations[{}] must be a dict with 'images' (and "
                                 "'prompt', 'state', 'noise' as in predict())".format(i))
            unknown = set(o) - {"images", "prompt", "state", "noise"}
            if unknown:
                raise ValueError("calibrate: observations[{}] has unknown key(s) {}; expected "
                                 "images, prompt, state, noise".format(i, sorted(unknown)))
            c, k = self._c_observation(o["images"], o.get("prompt"), o.get("state"),
                                       o.get("noise"))
            c_obs[i] = c
            keep.append(k)
        _lib.check(self._lib.frt_model_calibrate(self._h(), c_obs, len(observations),
                                                 float(percentile), max_samples or 0))

    def recalibrate(self):
        """FP8: forgets the scales; the next predict recalibrates on its own observation and
        rewrites the calibration cache. No-op for fp32/bf16."""
        _lib.check(self._lib.frt_model_recalibrate(self._h()))

    # ---- timing ----
    def last_gpu_ms(self):
        """GPU time (ms) of the last predict's CUDA-graph replay; None when it ran eagerly."""
        ms = self._lib.frt_model_last_gpu_ms(self._h())
        return None if ms < 0 else float(ms)

    def profile_report(self):
        """Per-stage / per-op times of the predicts so far (load with profile_ops=True), else the
        mean GPU time per stage of the CUDA-graph replays so far ("" when none)."""
        needed = ctypes.c_size_t(0)
        _lib.check(self._lib.frt_model_profile_report(self._h(), None, 0, ctypes.byref(needed)))
        buf = ctypes.create_string_buffer(max(1, needed.value))
        _lib.check(self._lib.frt_model_profile_report(self._h(), buf, len(buf),
                                                      ctypes.byref(needed)))
        return buf.value.decode("utf-8")

    def profile_reset(self):
        """Clears what profile_report has counted, so it covers only the predicts after this call
        (leave out warm-up runs: the first predict also tunes GEMMs and may calibrate FP8)."""
        _lib.check(self._lib.frt_model_profile_reset(self._h()))

    # ---- debugging ----
    def enable_dumps(self, enable=True):
        """Record named intermediates of each predict (slower); read them with get_dump()."""
        _lib.check(self._lib.frt_model_enable_dumps(self._h(), 1 if enable else 0))

    def get_dump(self, name):
        """The named intermediate of the last predict as a float32 array."""
        if _inputs.validate_prompt(name, "name") is None:
            raise _options.ArgumentTypeError("name must be a str, got None")
        c_name = name.encode("utf-8")
        shape = (ctypes.c_int64 * 4)()
        ndim = ctypes.c_int32(0)
        _lib.check(self._lib.frt_model_get_dump(self._h(), c_name, None, 0, shape,
                                                ctypes.byref(ndim)))
        out = np.empty(tuple(shape[i] for i in range(ndim.value)), dtype=np.float32)
        if out.size:
            _lib.check(self._lib.frt_model_get_dump(self._h(), c_name, _float_ptr(out), out.size,
                                                    shape, ctypes.byref(ndim)))
        return out


def load_model(checkpoint, config="pi05", num_views=2, num_steps=None, hardware="auto",
               action_horizon=None, max_token_len=None, discrete_state_input=None,
               normalization=None, norm_stats_asset=None, tokenizer_path=None,
               default_prompt=None, seed=0, cuda_graphs=True, profile_ops=False, use_fp8=None,
               **kwargs):
    """Loads an openpi PyTorch checkpoint directory. See docs/python_api.md for each argument;
    None means the config's default (pi05: num_steps 10, action_horizon 50, max_token_len 200,
    discrete_state_input True, normalization 'quantile'). use_fp8: None = FP8 GEMMs on GPUs
    that have them (sm_89+), bf16 elsewhere; False = bf16; True = FP8 or an error."""
    _options.check_unknown_kwargs(kwargs)
    a = _options.validate_load_args(checkpoint, config, num_views, num_steps, hardware,
                                    action_horizon, max_token_len, discrete_state_input,
                                    normalization, norm_stats_asset, tokenizer_path,
                                    default_prompt, seed, cuda_graphs, profile_ops, use_fp8)
    lib = _lib.lib()
    opts = _lib.LoadOptions()
    lib.frt_load_options_init(ctypes.byref(opts))
    opts.struct_size = ctypes.sizeof(_lib.LoadOptions)
    # Keep the encoded strings referenced until frt_model_load returns.
    strings = {
        "config": _lib.to_c_string(a.config, "config"),
        "hardware": _lib.to_c_string(a.hardware, "hardware"),
        "norm_stats_asset": _lib.to_c_string(a.norm_stats_asset, "norm_stats_asset"),
        "tokenizer_path": _lib.to_c_string(a.tokenizer_path, "tokenizer_path"),
        "default_prompt": _lib.to_c_string(a.default_prompt, "default_prompt"),
    }
    for field, value in strings.items():
        setattr(opts, field, value)
    opts.num_views = a.num_views
    opts.num_steps = a.num_steps
    opts.action_horizon = a.action_horizon
    opts.max_token_len = a.max_token_len
    opts.discrete_state_input = a.discrete_state_input
    opts.normalization = _lib.NORMALIZATIONS[a.normalization]
    opts.seed = a.seed
    opts.cuda_graphs = 1 if a.cuda_graphs else 0
    opts.profile_ops = 1 if a.profile_ops else 0
    opts.use_fp8 = a.use_fp8
    handle = ctypes.c_void_p()
    _lib.check(lib.frt_model_load(_lib.to_c_string(a.checkpoint, "checkpoint"), ctypes.byref(opts),
                                  ctypes.byref(handle)))
    try:
        return VLAModel(handle.value, a.checkpoint)
    except BaseException:
        lib.frt_model_free(handle.value)
        raise


def make_checkpoint(out_dir, config="pi05", size="tiny", seed=0):
    """Writes a synthetic checkpoint (random weights, openpi layout) to out_dir; returns its Path.
    Tiny: a few MB in seconds; full: the real dimensions (~7 GB)."""
    out, config, size, seed = _options.validate_checkpoint_args(out_dir, config, size, seed)
    lib = _lib.lib()
    _lib.check(lib.frt_make_checkpoint(_lib.to_c_string(out, "out_dir"), config.encode(),
                                       size.encode(), seed))
    return pathlib.Path(out)
