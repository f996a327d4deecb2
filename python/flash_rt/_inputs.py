"""Validation and conversion of predict() inputs (images, state, noise, prompt), in pure numpy,
before anything reaches the library: each error names the argument (images[i] or the dict
key), what was given and what is allowed. Returned arrays are C-contiguous and of the dtype
the C ABI takes (uint8 or float32).
Tests: tests/python/test_python_api.py (run without libflashrt.so).
"""

import numpy as np

from ._errors import ArgumentTypeError

# openpi's observation image keys, in slot order.
VIEW_KEYS = ("base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb")


def _image_array(name, image):
    """One image → C-contiguous uint8 or float32 HxWx3."""
    try:
        a = np.asarray(image)
    except Exception as e:  # e.g. ragged nested lists
        raise ValueError("{}: cannot be read as an array ({})".format(name, e)) from e
    allowed = "uint8 HxWx3, or float32/float64 HxWx3 with values in [0, 1]"
    if a.dtype == object or a.dtype.kind not in "uif":
        raise ValueError("{}: dtype {} is not allowed; expected {}".format(name, a.dtype, allowed))
    if a.ndim != 3 or a.shape[2] != 3:
        hint = ""
        if a.ndim == 3 and a.shape[0] == 3:
            hint = " (this looks channels-first, CHW: use np.transpose(img, (1, 2, 0)))"
        elif a.ndim == 3 and a.shape[2] == 4:
            hint = " (RGBA: drop alpha with img[..., :3])"
        elif a.ndim == 2:
            hint = " (grayscale: use np.repeat(img[..., None], 3, axis=2))"
        elif a.ndim == 4 and a.shape[0] == 1:
            hint = " (a batch of one: pass img[0])"
        raise ValueError("{}: shape {} is not allowed; expected (height, width, 3){}".format(
            name, tuple(a.shape), hint))
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError("{}: shape {} is empty; expected height and width >= 1".format(
            name, tuple(a.shape)))
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype.kind != "f" or a.dtype not in (np.float32, np.float64):
        raise ValueError("{}: dtype {} is not allowed; expected {} (convert integer images with "
                         "img.astype(np.uint8))".format(name, a.dtype, allowed))
    if not np.isfinite(a).all():
        raise ValueError("{}: contains NaN or inf (first at flat index {}); float images must lie "
                         "in [0, 1]".format(name, int(np.flatnonzero(~np.isfinite(a))[0])))
    lo, hi = float(a.min()), float(a.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError("{}: float values must lie in [0, 1], got min {:g} and max {:g} (0..255 "
                         "images: pass them as uint8, e.g. img.astype(np.uint8))".format(
                             name, lo, hi))
    return np.ascontiguousarray(a, dtype=np.float32)


def validate_images(images, num_views):
    """images: list/tuple [base, left_wrist, (right_wrist)] with None for a masked view, or a dict
    keyed by VIEW_KEYS. Returns a list (slot order) of arrays or None."""
    if isinstance(images, dict):
        unknown = [k for k in images if k not in VIEW_KEYS]
        if unknown:
            raise ValueError("images: unknown key(s) {}; allowed keys: {}".format(
                ", ".join(repr(k) for k in unknown), ", ".join(VIEW_KEYS)))
        slots = [VIEW_KEYS.index(k) for k in images if images[k] is not None]
        count = max(slots) + 1 if slots else 0
        if count > num_views:
            raise ValueError("images: {!r} needs {} view slots but the model was loaded with "
                             "num_views={} (keys allowed: {})".format(
                                 VIEW_KEYS[count - 1], count, num_views,
                                 ", ".join(VIEW_KEYS[:num_views])))
        items = [(repr(k), images.get(k)) for k in VIEW_KEYS[:max(count, 1)]]
        names = ["images[{}]".format(k) for k, _ in items]
        values = [v for _, v in items]
    elif isinstance(images, (list, tuple)):
        if len(images) > num_views:
            raise ValueError("images: got {} images but the model was loaded with num_views={}; "
                             "pass at most {} (base, left wrist, right wrist; None for a missing "
                             "view)".format(len(images), num_views, num_views))
        names = ["images[{}]".format(i) for i in range(len(images))]
        values = list(images)
    elif isinstance(images, np.ndarray):
        raise ValueError("images: got one array of shape {}; pass a list [base, wrist, ...] or a "
                         "dict keyed by {}".format(tuple(images.shape), ", ".join(VIEW_KEYS)))
    else:
        raise ArgumentTypeError("images must be a list/tuple of HxWx3 arrays or a dict keyed by "
                                "{}, got {}".format(", ".join(VIEW_KEYS), type(images).__name__))
    out = [None if v is None else _image_array(n, v) for n, v in zip(names, values)]
    if all(a is None for a in out):
        raise ValueError("images: no image given (all {} are None); at least one view, normally "
                         "the base camera, is needed".format(len(out)))
    return out


def validate_state(state):
    """1-D finite floats → float32 array, or None."""
    if state is None:
        return None
    try:
        a = np.asarray(state)
    except Exception as e:
        raise ValueError("state: cannot be read as an array ({})".format(e)) from e
    if a.dtype == object or a.dtype.kind not in "uif":
        raise ValueError("state: dtype {} is not allowed; expected a 1-D sequence of floats"
                         .format(a.dtype))
    if a.ndim != 1:
        raise ValueError("state: shape {} is not allowed; expected 1-D (state_dim,)".format(
            tuple(a.shape)))
    if a.size == 0:
        raise ValueError("state: empty; pass the robot state vector, or None for no state")
    with np.errstate(over="ignore"):  # values beyond float32 become inf, reported below
        a = np.ascontiguousarray(a, dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        i = int(bad[0])
        raise ValueError("state[{}] is {} (after conversion to float32); every state value must "
                         "be finite".format(i, np.asarray(state, dtype=np.float64)[i]))
    return a


def validate_noise(noise, action_horizon, action_dim):
    """(action_horizon, action_dim) finite floats → float32 array, or None."""
    if noise is None:
        return None
    a = np.asarray(noise)
    if a.dtype == object or a.dtype.kind not in "uif":
        raise ValueError("noise: dtype {} is not allowed; expected float32".format(a.dtype))
    if a.shape != (action_horizon, action_dim):
        raise ValueError("noise: shape {} is not allowed; expected (action_horizon, action_dim) "
                         "= ({}, {})".format(tuple(a.shape), action_horizon, action_dim))
    with np.errstate(over="ignore"):
        a = np.ascontiguousarray(a, dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        t, d = divmod(int(bad[0]), action_dim)
        raise ValueError("noise[{}, {}] is not finite; noise must be finite (standard normal)"
                         .format(t, d))
    return a


def validate_prompt(prompt, name="prompt"):
    if prompt is None:
        return None
    if not isinstance(prompt, str):
        raise ArgumentTypeError("{} must be a str or None, got {}".format(
            name, type(prompt).__name__))
    if "\0" in prompt:
        raise ValueError("{} contains a NUL character at index {}".format(name, prompt.index("\0")))
    return prompt
