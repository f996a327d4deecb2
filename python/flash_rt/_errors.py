"""Exceptions of flash_rt and the mapping from C ABI status codes (frt_status_t) onto them.

Every error raised by the library is a FlashRTError (a RuntimeError) carrying ``status``;
the subclasses also derive from the built-in a Python user expects, so
``except ValueError`` / ``except FileNotFoundError`` work as usual.
Pure Python (no library needed). Tests: tests/python/test_python_api.py.
"""

# frt_status_t values (include/flashrt/flashrt.h).
OK = 0
INVALID_ARGUMENT = 1
NOT_FOUND = 2
NOT_SUPPORTED = 3
OUT_OF_MEMORY = 4
CUDA_ERROR = 5
IO_ERROR = 6
INTERNAL = 7

STATUS_NAMES = {
    OK: "OK",
    INVALID_ARGUMENT: "INVALID_ARGUMENT",
    NOT_FOUND: "NOT_FOUND",
    NOT_SUPPORTED: "NOT_SUPPORTED",
    OUT_OF_MEMORY: "OUT_OF_MEMORY",
    CUDA_ERROR: "CUDA_ERROR",
    IO_ERROR: "IO_ERROR",
    INTERNAL: "INTERNAL",
}


class FlashRTError(RuntimeError):
    """An error reported by the FlashRT library; ``status`` is the frt_status_t value."""

    status = INTERNAL


class InvalidArgumentError(FlashRTError, ValueError):
    """Bad input: shape, dtype, NaN, an option out of range (FRT_STATUS_INVALID_ARGUMENT)."""

    status = INVALID_ARGUMENT


class NotFoundError(FlashRTError, FileNotFoundError):
    """A checkpoint, tokenizer, asset or tensor is missing (FRT_STATUS_NOT_FOUND)."""

    status = NOT_FOUND


class NotSupportedError(FlashRTError):
    """Not available here, e.g. hardware='cuda' without a GPU (FRT_STATUS_NOT_SUPPORTED)."""

    status = NOT_SUPPORTED


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (e.g. num_views=2.0). Both a TypeError and a ValueError,
    so callers catching either get it."""


_BY_STATUS = {
    INVALID_ARGUMENT: InvalidArgumentError,
    NOT_FOUND: NotFoundError,
    NOT_SUPPORTED: NotSupportedError,
}


def error_for_status(status, message):
    """The exception to raise for a failing C call (status != OK) with frt_last_error()."""
    status = int(status)
    cls = _BY_STATUS.get(status, FlashRTError)
    if not message:
        message = "FlashRT call failed with status " + STATUS_NAMES.get(status, str(status))
    err = cls(message)  # one argument only: OSError subclasses reinterpret (errno, strerror)
    err.status = status
    return err
