"""Shared fixtures of the Python suite.

- Puts <repo>/python (the flash_rt package) and <repo>/tests (the `reference` package) on
  sys.path, computed from this file's location.
- `flash_rt_engine`: the imported flash_rt module. When flash_rt or its shared library cannot
  be loaded, tests that need it are SKIPPED with the reason, unless FLASHRT_REQUIRE_ENGINE=1
  (CI sets it), which turns that into a failure.
- `tiny_pi05_checkpoint`: a synthetic tiny pi05 checkpoint written once per session by
  flash_rt.make_checkpoint into a temporary directory.
- `reference_tiny_checkpoint`: a tiny checkpoint written by tests/reference/tiny_checkpoint.py
  (no engine needed), for the reference's self-check.
- `parity_log`: parity tests record one summary line per case; they are printed in a
  "FlashRT parity vs PyTorch reference" section at the end of the run (no -s needed).
"""

import os
import pathlib
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
for _p in (REPO_ROOT / "python", REPO_ROOT / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

REQUIRE_ENGINE = os.environ.get("FLASHRT_REQUIRE_ENGINE") == "1"
_PARITY_LINES = []


def engine_unavailable(reason):
    """Skip (developer machine without a build) or fail (FLASHRT_REQUIRE_ENGINE=1, i.e. CI)."""
    msg = f"FlashRT engine not available: {reason}"
    if REQUIRE_ENGINE:
        pytest.fail(msg + " (FLASHRT_REQUIRE_ENGINE=1, so this is an error; build the library "
                    "with scripts/build.sh or point FLASH_RT_LIBRARY at libflashrt.so)", pytrace=False)
    pytest.skip(msg + " (build it with scripts/build.sh, or set FLASH_RT_LIBRARY)")


def _is_library_error(exc):
    """True for failures to find/load the shared library: ImportError, ctypes' plain OSError, or
    any error naming the library (flash_rt may raise its own type for a missing build)."""
    text = str(exc).lower()
    if isinstance(exc, ImportError) or type(exc) is OSError:
        return True
    return any(k in text for k in ("libflashrt", "flash_rt_library", "shared object", "shared library"))


@pytest.fixture(scope="session")
def flash_rt_engine():
    try:
        import flash_rt
    except Exception as e:  # noqa: BLE001 - any import failure means "no engine" here
        engine_unavailable(f"cannot import flash_rt from {REPO_ROOT / 'python'}: {type(e).__name__}: {e}")
    if not hasattr(flash_rt, "make_checkpoint") or not hasattr(flash_rt, "load_model"):
        where = getattr(flash_rt, "__file__", None) or list(getattr(flash_rt, "__path__", []))
        engine_unavailable(f"the flash_rt package at {where} has no make_checkpoint/load_model (not written yet?)")
    if hasattr(flash_rt, "library_path"):  # loads the shared library, or says why it cannot
        try:
            flash_rt.library_path()
        except Exception as e:  # noqa: BLE001
            engine_unavailable(f"{type(e).__name__}: {e}")
    return flash_rt


@pytest.fixture(scope="session")
def tiny_pi05_checkpoint(flash_rt_engine, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_pi05_engine")
    try:
        flash_rt_engine.make_checkpoint(str(out), config="pi05", size="tiny", seed=0)
    except Exception as e:  # noqa: BLE001
        if _is_library_error(e):
            engine_unavailable(f"flash_rt cannot load its library: {type(e).__name__}: {e}")
        raise
    return str(out)


@pytest.fixture(scope="session")
def reference_tiny_checkpoint(tmp_path_factory):
    from reference.tiny_checkpoint import make_tiny_checkpoint

    return make_tiny_checkpoint(str(tmp_path_factory.mktemp("tiny_pi05_reference")), seed=0)


@pytest.fixture(scope="session")
def parity_log():
    return _PARITY_LINES.append


def pytest_terminal_summary(terminalreporter):
    if _PARITY_LINES:
        terminalreporter.section("FlashRT parity vs PyTorch reference (fp32, CPU)")
        for line in _PARITY_LINES:
            terminalreporter.write_line(line)
