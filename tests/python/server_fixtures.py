"""Fixtures and helpers of the `flashrt serve` tests (tests/python/test_server_*.py).

Imported by those modules (`from server_fixtures import *`); conftest.py is left alone.

- `flashrt_bin`: the real binary ($FLASHRT_BIN, default <repo>/build/flashrt). Missing → skip,
  or a failure when FLASHRT_REQUIRE_ENGINE=1 (CI).
- `openpi_client`: the PyPI `openpi-client` package (websocket_client_policy, msgpack_numpy);
  same skip/fail rule.
- `server_checkpoint`: a tiny synthetic pi05 checkpoint written by `flashrt make-checkpoint`.
- `shared_server`: one `flashrt serve` on 127.0.0.1 (port chosen by the OS) shared by all test
  modules: CPU, 2 views, horizon 10, default prompt, 2 MiB request limit.
- `inprocess_model`: the same checkpoint loaded in this process through flash_rt (needs the
  shared library; uses conftest's flash_rt_engine), for "actions equal predict()" checks.
- ServerProcess: starts a server, waits for its "listening on" line and for /health ready, and
  always stops it (SIGTERM, then SIGKILL) — also at interpreter exit if a test crashed.

Servers run with OMP_NUM_THREADS=1: on the 2-core CI machine one compute thread beside the
network threads and the test's clients is several times faster than two fighting ones.
Bitwise equality with the in-process predict is therefore not expected (OpenBLAS/OpenMP sum in
another order with another thread count): comparisons use rtol=atol=1e-4, far below the
difference that other noise makes (checked by the tests).
"""

import atexit
import os
import pathlib
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import zlib

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
REQUIRE_ENGINE = os.environ.get("FLASHRT_REQUIRE_ENGINE") == "1"
HORIZON, ACTION_DIM, STATE_DIM, LIBERO_DIMS = 10, 32, 8, 7
DEFAULT_PROMPT = "pick up the red block"
TOL = dict(rtol=1e-4, atol=1e-4)
_LIVE = []  # every ServerProcess not yet stopped, for the atexit safety net
_TMP = pathlib.Path(tempfile.mkdtemp(prefix="flashrt_server_tests_"))  # logs, checkpoints


def missing(what):
    """Skip (developer machine) or fail (FLASHRT_REQUIRE_ENGINE=1, i.e. CI)."""
    if REQUIRE_ENGINE:
        pytest.fail("FLASHRT_REQUIRE_ENGINE=1 but " + what, pytrace=False)
    pytest.skip(what)


class ServerProcess:
    """One `flashrt serve` child process on 127.0.0.1 with an OS-chosen port."""

    def __init__(self, binary, checkpoint, *args, env=None, wait_ready=True, ready_timeout=120,
                 hardware="cpu", omp_threads="1"):
        self.log_path = pathlib.Path(tempfile.mkstemp(prefix="serve_", suffix=".log", dir=_TMP)[1])
        full_env = dict(os.environ)
        if omp_threads:
            full_env.update(OMP_NUM_THREADS=omp_threads, OPENBLAS_NUM_THREADS=omp_threads)
        full_env.update(env or {})
        cmd = [str(binary), "serve", "--checkpoint", str(checkpoint), "--hardware", hardware,
               "--host", "127.0.0.1", "--port", "0",
               "--tokenizer", str(pathlib.Path(checkpoint) / "paligemma_tokenizer.model")]
        cmd += [str(a) for a in args]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=full_env)
        _LIVE.append(self)
        self.returncode = None
        try:
            self.port = self._wait_listening(30)
            if wait_ready:
                self.wait_ready(ready_timeout)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self):
        return "http://127.0.0.1:{}".format(self.port)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def _wait_listening(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"listening on [\d.]+:(\d+)", self.log())
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise AssertionError("flashrt serve exited with {} before listening:\n{}".format(
                    self.proc.returncode, self.log()))
            time.sleep(0.02)
        raise AssertionError("flashrt serve did not listen within {} s:\n{}".format(timeout, self.log()))

    def wait_ready(self, timeout=120):
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("flashrt serve exited with {}:\n{}".format(self.proc.returncode, self.log()))
            try:
                if requests.get(self.url + "/health", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.02)
        raise AssertionError("flashrt serve not ready within {} s:\n{}".format(timeout, self.log()))

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signals the server and waits; SIGKILL if it does not exit. Returns the exit code."""
        if self.returncode is None:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            self.returncode = self.proc.returncode
            self._log.close()
        if self in _LIVE:
            _LIVE.remove(self)
        return self.returncode


@atexit.register
def _cleanup():
    for s in list(_LIVE):
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait(10)
    shutil.rmtree(_TMP, ignore_errors=True)


# ---- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def flashrt_bin():
    path = pathlib.Path(os.environ.get("FLASHRT_BIN", REPO / "build" / "flashrt"))
    if not path.is_file():
        missing("the flashrt binary is not built at {} (cmake -S . -B build && cmake --build build "
                "-j, or set FLASHRT_BIN)".format(path))
    return path


@pytest.fixture(scope="session")
def openpi_client():
    try:
        from openpi_client import msgpack_numpy, websocket_client_policy  # noqa: F401
        import openpi_client
    except Exception as e:  # noqa: BLE001 - any import failure means "not installed"
        missing("openpi-client is not importable ({}: {}); scripts/install_deps.sh installs it "
                "from PyPI".format(type(e).__name__, e))
    return openpi_client


_CKPT = {}


@pytest.fixture(scope="session")
def server_checkpoint(flashrt_bin):
    if "dir" not in _CKPT:
        out = pathlib.Path(tempfile.mkdtemp(prefix="flashrt_srv_ckpt_", dir=_TMP))
        r = subprocess.run([str(flashrt_bin), "make-checkpoint", str(out), "--seed", "0"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        _CKPT["dir"] = out
    return _CKPT["dir"]


_SHARED = {}


@pytest.fixture(scope="session")
def shared_server(flashrt_bin, server_checkpoint):
    # One process for every module: the fixture is imported into each, so cache it here.
    if "server" not in _SHARED or _SHARED["server"].returncode is not None:
        _SHARED["server"] = ServerProcess(flashrt_bin, server_checkpoint, "--views", 2,
                                          "--horizon", HORIZON, "--max-request-mb", 2,
                                          "--default-prompt", DEFAULT_PROMPT, "--seed", 0)
    yield _SHARED["server"]
    code = _SHARED["server"].stop()
    assert code == 0, "flashrt serve exited with {}:\n{}".format(code, _SHARED["server"].log())


@pytest.fixture(scope="session")
def inprocess_model(flash_rt_engine, server_checkpoint):
    """The checkpoint loaded here with the shared server's options."""
    return flash_rt_engine.load_model(
        str(server_checkpoint), config="pi05", num_views=2, hardware="cpu",
        action_horizon=HORIZON, default_prompt=DEFAULT_PROMPT, seed=0,
        tokenizer_path=str(server_checkpoint / "paligemma_tokenizer.model"))


# ---- observations and encodings --------------------------------------------------------------

def libero_observation(rng, prompt="put the bowl on the plate", noise=True):
    """What openpi's examples/libero/main.py sends: 224x224x3 uint8 views, float64 (8,) state."""
    obs = {
        "observation/image": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
        "observation/wrist_image": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
        "observation/state": rng.uniform(-1, 1, STATE_DIM),
        "prompt": prompt,
    }
    if noise:
        obs["noise"] = rng.standard_normal((HORIZON, ACTION_DIM)).astype(np.float32)
    return obs


def write_png(img):
    """Minimal RGB8 PNG encoder (no PIL): filter 0 on every row, one zlib IDAT chunk."""
    h, w, _ = img.shape

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data +
                struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def b64(data):
    import base64

    return base64.b64encode(data).decode()


def raw_predict_body(images, state=None, noise=None, prompt=None):
    """POST /predict JSON with raw uint8 HxWx3 images (all the same shape)."""
    body = {"images": [None if im is None else b64(np.ascontiguousarray(im).tobytes()) for im in images],
            "image_shape": list(next(im for im in images if im is not None).shape)}
    if state is not None:
        body["state"] = [float(v) for v in state]
    if noise is not None:
        body["noise"] = np.asarray(noise, dtype=np.float64).tolist()
    if prompt is not None:
        body["prompt"] = prompt
    return body


def ws_connect(server, **kw):
    """A raw websocket (websockets.sync) to the server; returns (connection, metadata dict)."""
    from openpi_client import msgpack_numpy
    import websockets.sync.client

    conn = websockets.sync.client.connect("ws://127.0.0.1:{}".format(server.port), compression=None,
                                          max_size=None, open_timeout=30, **kw)
    return conn, msgpack_numpy.unpackb(conn.recv(timeout=30))


def ws_infer(conn, obs, timeout=60):
    """Sends one observation; returns the decoded reply dict, or the error text (str)."""
    from openpi_client import msgpack_numpy

    conn.send(msgpack_numpy.packb(obs))
    reply = conn.recv(timeout=timeout)
    return reply if isinstance(reply, str) else msgpack_numpy.unpackb(reply)
