"""Finding and loading libflashrt.so, and ctypes mirrors of the C ABI (include/flashrt/flashrt.h).

Lookup order: $FLASH_RT_LIBRARY (an explicit path that must exist), then libflashrt.so next to
this package, then <repo>/build/libflashrt.so (repo = two levels above the package).
The structs below must match flashrt.h field for field; tests/python/test_python_api.py
compiles a C probe and compares sizes and offsets.
"""

import ctypes
import os
import pathlib
import threading

from . import _errors

LIBRARY_NAME = "libflashrt.so"
ABI_VERSION = 1

# frt_normalization_t
NORMALIZATIONS = {None: 0, "quantile": 1, "zscore": 2, "none": 3}
NORMALIZATION_NAMES = {0: "default", 1: "quantile", 2: "zscore", 3: "none"}
# frt_image_dtype_t
IMAGE_U8 = 0
IMAGE_F32 = 1
# frt_log_level_t
LOG_LEVELS = {"debug": 0, "info": 1, "warning": 2, "error": 3}


class LoadOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("config", ctypes.c_char_p),
        ("hardware", ctypes.c_char_p),
        ("num_views", ctypes.c_int32),
        ("num_steps", ctypes.c_int32),
        ("action_horizon", ctypes.c_int32),
        ("max_token_len", ctypes.c_int32),
        ("discrete_state_input", ctypes.c_int32),
        ("normalization", ctypes.c_int32),
        ("norm_stats_asset", ctypes.c_char_p),
        ("tokenizer_path", ctypes.c_char_p),
        ("default_prompt", ctypes.c_char_p),
        ("seed", ctypes.c_uint64),
        ("cuda_graphs", ctypes.c_int32),
        ("profile_ops", ctypes.c_int32),
        ("use_fp8", ctypes.c_int32),
    ]


class ModelInfo(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("config", ctypes.c_char * 16),
        ("hardware", ctypes.c_char * 16),
        ("device_name", ctypes.c_char * 128),
        ("num_views", ctypes.c_int32),
        ("num_steps", ctypes.c_int32),
        ("action_horizon", ctypes.c_int32),
        ("action_dim", ctypes.c_int32),
        ("max_token_len", ctypes.c_int32),
        ("discrete_state_input", ctypes.c_int32),
        ("normalization", ctypes.c_int32),
        ("state_dim", ctypes.c_int32),
        ("robot_action_dim", ctypes.c_int32),
        ("num_params_vision", ctypes.c_int64),
        ("num_params_llm", ctypes.c_int64),
        ("num_params_expert", ctypes.c_int64),
        ("num_params_other", ctypes.c_int64),
    ]


class Image(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("height", ctypes.c_int32),
        ("width", ctypes.c_int32),
        ("channels", ctypes.c_int32),
        ("dtype", ctypes.c_int32),
    ]


class Observation(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("images", ctypes.POINTER(Image)),
        ("num_images", ctypes.c_int32),
        ("prompt", ctypes.c_char_p),
        ("state", ctypes.POINTER(ctypes.c_float)),
        ("state_dim", ctypes.c_int32),
        ("noise", ctypes.POINTER(ctypes.c_float)),
        ("noise_len", ctypes.c_int32),
    ]


LOG_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)

_c_model_p = ctypes.c_void_p  # frt_model_t* (opaque)
_c_status = ctypes.c_int

# name: (restype, argtypes)
_SIGNATURES = {
    "frt_last_error": (ctypes.c_char_p, []),
    "frt_status_string": (ctypes.c_char_p, [ctypes.c_int]),
    "frt_version": (ctypes.c_char_p, []),
    "frt_set_log_callback": (None, [LOG_CALLBACK, ctypes.c_void_p, ctypes.c_int]),
    "frt_load_options_init": (None, [ctypes.POINTER(LoadOptions)]),
    "frt_model_load": (_c_status, [ctypes.c_char_p, ctypes.POINTER(LoadOptions),
                                   ctypes.POINTER(_c_model_p)]),
    "frt_model_free": (None, [_c_model_p]),
    "frt_model_get_info": (_c_status, [_c_model_p, ctypes.POINTER(ModelInfo)]),
    "frt_model_predict": (_c_status, [_c_model_p, ctypes.POINTER(Observation),
                                      ctypes.POINTER(ctypes.c_float), ctypes.c_int64,
                                      ctypes.POINTER(ctypes.c_int32),
                                      ctypes.POINTER(ctypes.c_int32)]),
    "frt_model_last_gpu_ms": (ctypes.c_float, [_c_model_p]),
    "frt_model_profile_report": (_c_status, [_c_model_p, ctypes.c_char_p, ctypes.c_size_t,
                                             ctypes.POINTER(ctypes.c_size_t)]),
    "frt_model_profile_reset": (_c_status, [_c_model_p]),
    "frt_model_set_prompt": (_c_status, [_c_model_p, ctypes.c_char_p]),
    "frt_model_prompt": (ctypes.c_char_p, [_c_model_p]),
    "frt_model_recalibrate": (_c_status, [_c_model_p]),
    "frt_model_calibrate": (_c_status, [_c_model_p, ctypes.POINTER(Observation), ctypes.c_int32,
                                        ctypes.c_double, ctypes.c_int32]),
    "frt_model_precision": (ctypes.c_char_p, [_c_model_p]),
    "frt_model_memory": (_c_status, [_c_model_p, ctypes.POINTER(ctypes.c_int64),
                                     ctypes.POINTER(ctypes.c_int64)]),
    "frt_model_enable_dumps": (_c_status, [_c_model_p, ctypes.c_int32]),
    "frt_model_get_dump": (_c_status, [_c_model_p, ctypes.c_char_p,
                                       ctypes.POINTER(ctypes.c_float), ctypes.c_int64,
                                       ctypes.POINTER(ctypes.c_int64),
                                       ctypes.POINTER(ctypes.c_int32)]),
    "frt_make_checkpoint": (_c_status, [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                        ctypes.c_uint64]),
}

_lock = threading.Lock()
_lib = None
_lib_path = None

BUILD_HINT = ("build it with `cmake -S . -B build && cmake --build build -j` in the FlashRT "
              "repository, or set FLASH_RT_LIBRARY=/path/to/libflashrt.so")


def library_candidates():
    """[(where, path)] in lookup order (FLASH_RT_LIBRARY first when set)."""
    pkg_dir = pathlib.Path(__file__).resolve().parent
    repo = pkg_dir.parent.parent
    out = []
    env = os.environ.get("FLASH_RT_LIBRARY")
    if env:
        out.append(("$FLASH_RT_LIBRARY", pathlib.Path(env)))
    out.append(("package directory", pkg_dir / LIBRARY_NAME))
    out.append(("repository build", repo / "build" / LIBRARY_NAME))
    return out


def find_library():
    """Path of libflashrt.so; FileNotFoundError listing every place looked otherwise."""
    env = os.environ.get("FLASH_RT_LIBRARY")
    if env and not pathlib.Path(env).is_file():
        # An explicit choice is never silently replaced by another copy.
        raise FileNotFoundError(
            "FLASH_RT_LIBRARY={!r} does not exist or is not a file; point it at "
            "libflashrt.so or unset it ({})".format(env, BUILD_HINT))
    for _, path in library_candidates():
        if path.is_file():
            return path
    looked = "\n".join("  {}: {}".format(where, path) for where, path in library_candidates())
    raise FileNotFoundError(
        "flash_rt: cannot find {}; looked in:\n{}\n{}".format(LIBRARY_NAME, looked, BUILD_HINT))


def lib():
    """The loaded library (loaded once, thread-safe), with every signature declared."""
    global _lib, _lib_path
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            path = find_library()
            try:
                handle = ctypes.CDLL(str(path))
            except OSError as e:
                raise OSError("flash_rt: cannot load {}: {}".format(path, e)) from e
            for name, (restype, argtypes) in _SIGNATURES.items():
                try:
                    fn = getattr(handle, name)
                except AttributeError as e:
                    raise OSError("flash_rt: {} lacks the C ABI function {}; rebuild it ({})"
                                  .format(path, name, BUILD_HINT)) from e
                fn.restype = restype
                fn.argtypes = argtypes
            _lib_path = path
            _lib = handle
    return _lib


def library_path():
    """Path of the loaded library (loads it if needed)."""
    lib()
    return _lib_path


def last_error():
    msg = lib().frt_last_error()
    return msg.decode("utf-8", "replace") if msg else ""


def check(status):
    """Raises the mapped exception (see _errors) with frt_last_error() if status != FRT_OK."""
    if status != _errors.OK:
        raise _errors.error_for_status(status, last_error())


def to_c_string(value, name):
    """UTF-8 bytes for a C string argument; None stays None."""
    if value is None:
        return None
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(text, str):
        raise _errors.ArgumentTypeError(
            "{} must be a str, got {}".format(name, type(value).__name__))
    if "\0" in text:
        raise ValueError("{} contains a NUL character at index {}; C strings cannot hold it"
                         .format(name, text.index("\0")))
    return text.encode("utf-8")
