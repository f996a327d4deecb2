"""FlashRT: realtime inference for robot Vision-Language-Action policies (Pi0.5).

    import flash_rt
    model = flash_rt.load_model("ckpt/", config="pi05", num_views=2)
    actions = model.predict([base_rgb, wrist_rgb], prompt="pick up the cup", state=state)

A ctypes + numpy layer over the C ABI of libflashrt.so (no compile step); the library is found
through $FLASH_RT_LIBRARY, the package directory or <repo>/build/. Importing this package does
not load the library: argument validation works without it. See docs/python_api.md.
Tests: tests/python/test_python_api.py.
"""

import atexit
import threading

from . import _lib
from ._errors import (ArgumentTypeError, FlashRTError, InvalidArgumentError, NotFoundError,
                      NotSupportedError)
from ._inputs import VIEW_KEYS
from ._model import VLAModel, load_model, make_checkpoint

__all__ = [
    "load_model", "make_checkpoint", "VLAModel", "VIEW_KEYS", "FlashRTError",
    "InvalidArgumentError", "NotFoundError", "NotSupportedError", "ArgumentTypeError",
    "set_log_level", "set_log_callback", "library_path", "__version__",
]

library_path = _lib.library_path

_log_lock = threading.Lock()
_log_state = {"callback": None, "c_callback": None, "level": 1}


def _level_value(level):
    if isinstance(level, str) and level.lower() in _lib.LOG_LEVELS:
        return _lib.LOG_LEVELS[level.lower()]
    if isinstance(level, int) and not isinstance(level, bool) and 0 <= level <= 3:
        return level
    raise ValueError("level={!r} is not allowed; expected one of 'debug', 'info', 'warning', "
                     "'error' (or 0..3)".format(level))


def _install():
    lib = _lib.lib()
    st = _log_state
    if st["callback"] is None:
        st["c_callback"] = None
        lib.frt_set_log_callback(_lib.LOG_CALLBACK(), None, st["level"])
        return
    names = {v: k for k, v in _lib.LOG_LEVELS.items()}
    user = st["callback"]

    def trampoline(level, message, _user):
        try:
            user(names.get(level, str(level)), message.decode("utf-8", "replace"))
        except Exception:  # never let a Python error cross back into C
            pass

    st["c_callback"] = _lib.LOG_CALLBACK(trampoline)  # kept alive while installed
    lib.frt_set_log_callback(st["c_callback"], None, st["level"])
    if not st.get("atexit"):
        # Messages logged while the interpreter tears down must not call into dead Python.
        atexit.register(_restore_stderr_logging)
        st["atexit"] = True


def _restore_stderr_logging():
    with _log_lock:
        if _log_state["callback"] is not None:
            _log_state["callback"] = None
            _install()


def set_log_level(level):
    """Drops library messages below `level` ('debug', 'info', 'warning', 'error')."""
    value = _level_value(level)
    with _log_lock:
        _log_state["level"] = value
        _install()


def set_log_callback(callback, level=None):
    """Routes library messages to callback(level_name, message); None restores stderr."""
    if callback is not None and not callable(callback):
        raise ArgumentTypeError("callback must be callable or None, got {}".format(
            type(callback).__name__))
    with _log_lock:
        if level is not None:
            _log_state["level"] = _level_value(level)
        _log_state["callback"] = callback
        _install()


def __getattr__(name):
    # __version__ comes from the library (frt_version()), loaded on first access; without the
    # library it is an AttributeError carrying the lookup message, so hasattr() stays safe.
    if name == "__version__":
        try:
            return _lib.lib().frt_version().decode()
        except OSError as e:
            raise AttributeError("flash_rt.__version__ needs libflashrt.so: {}".format(e)) from e
    raise AttributeError("module 'flash_rt' has no attribute {!r}".format(name))
