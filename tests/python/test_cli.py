"""Tests of the `flashrt` command-line tool (tools/) and, through a small compiled program, the
header-only C++ API (include/flashrt/flashrt.hpp).

The binary is $FLASHRT_BIN or <repo>/build/flashrt; without it every test skips, unless
FLASHRT_REQUIRE_ENGINE=1 (CI), where that fails. PNG inputs are written with numpy + zlib.

Run: /usr/bin/python3 -m pytest tests/python/test_cli.py -q -rs
"""

import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))

COMMANDS = ["demo", "run", "inspect", "make-checkpoint", "bench", "serve", "calibrate"]
STATE = "0.12,-0.3,0.05,0.2,-0.1,0.4,0.0,-0.25"


def _missing(what):
    if os.environ.get("FLASHRT_REQUIRE_ENGINE") == "1":
        pytest.fail("FLASHRT_REQUIRE_ENGINE=1 but " + what)
    pytest.skip(what)


@pytest.fixture(scope="module")
def flashrt_bin():
    path = pathlib.Path(os.environ.get("FLASHRT_BIN", REPO / "build" / "flashrt"))
    if not path.is_file():
        _missing("the flashrt binary is not built at {} (cmake -S . -B build && cmake --build "
                 "build -j, or set FLASHRT_BIN)".format(path))
    return path


def cli(binary, *args, env=None, timeout=300):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([str(binary)] + [str(a) for a in args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def write_png(path, img):
    """Minimal RGB8 PNG writer (no PIL): filter 0 per row, one zlib IDAT chunk."""
    h, w, _ = img.shape

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data +
                struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
           chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    pathlib.Path(path).write_bytes(png)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(7)
    base = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    wrist = rng.integers(0, 256, size=(96, 96, 3), dtype=np.uint8)
    write_png(d / "base.png", base)
    write_png(d / "wrist.png", wrist)
    return {"dir": d, "base": base, "wrist": wrist}


@pytest.fixture(scope="module")
def tiny(flashrt_bin, tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt") / "pi05_tiny"
    r = cli(flashrt_bin, "make-checkpoint", "--config", "pi05", "--size", "tiny", "--seed", "2", d)
    assert r.returncode == 0, r.stderr
    assert (d / "model.safetensors").is_file()
    return d


# ---------------------------------------------------------------- usage and exit codes

def test_top_level_help_and_version(flashrt_bin):
    r = cli(flashrt_bin, "--help")
    assert r.returncode == 0
    for c in COMMANDS:
        assert c in r.stdout
    r = cli(flashrt_bin, "--version")
    assert r.returncode == 0 and r.stdout.startswith("flashrt ") and "C ABI 1" in r.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(flashrt_bin, command):
    r = cli(flashrt_bin, command, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: flashrt " + command)


def test_no_command_and_unknown_command(flashrt_bin):
    r = cli(flashrt_bin)
    assert r.returncode == 2 and "usage: flashrt" in r.stderr
    r = cli(flashrt_bin, "predict")
    assert r.returncode == 2 and "unknown command 'predict'" in r.stderr


@pytest.mark.parametrize("args,fragment", [
    (["run", "--checkpoint", "x", "--frobnicate"], "unknown option '--frobnicate'"),
    (["demo", "--steps"], "'--steps' needs a value"),
    (["demo", "--steps", "ten"], "--steps: expected an integer"),
    (["demo", "--views", "7"], "--views: expected an integer in 1..3, got '7'"),
    (["bench", "--iters", "0"], "--iters"),
    (["demo", "--hardware", "gpu"], "'gpu' is not one of auto, cpu, cuda"),
    (["make-checkpoint", "--size", "huge", "out"], "'huge' is not one of tiny, full"),
    (["make-checkpoint"], "missing argument DIR"),
    (["inspect", "a", "b"], "unexpected argument 'b'"),
    (["demo", "--seed", "-1"], "--seed: expected a non-negative integer"),
    (["run", "--image", "a.png", "--prompt", "p"], "missing --checkpoint"),
    (["run", "--checkpoint", "x", "--prompt", "p"], "--image"),
    (["demo", "--fp8", "--bf16"], "--fp8 and --bf16 exclude each other"),
    (["calibrate", "--random", "2"], "missing --checkpoint"),
    (["calibrate", "--checkpoint", "x"], "either --obs FILE.json"),
    (["calibrate", "--checkpoint", "x", "--random", "2", "--obs", "a.json"], "either --obs"),
    (["calibrate", "--checkpoint", "x", "--random", "2", "--percentile", "120"],
     "--percentile must be one number in [0, 100]"),
    (["calibrate", "--checkpoint", "x", "--random", "2", "--bf16"], "--bf16 has no FP8 scales"),
])
def test_usage_errors_exit_2(flashrt_bin, args, fragment):
    r = cli(flashrt_bin, *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert fragment in r.stderr
    assert "usage: flashrt " + args[0] in r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("state,fragment", [("0.1,nan,0.3", "value 1 is nan"),
                                            ("0.1,0.2,abc", "value 2 ('abc') is not a number"),
                                            ("0.1,,0.2", "value 1 ('') is not a number"),
                                            ("0.1,inf", "value 1 is inf")])
def test_bad_state_names_the_position(flashrt_bin, images, state, fragment):
    r = cli(flashrt_bin, "run", "--checkpoint", images["dir"], "--image",
            images["dir"] / "base.png", "--prompt", "go", "--state", state)
    assert r.returncode == 2 and "--state: " + fragment in r.stderr, r.stderr


def test_calibrate_without_fp8_says_so(flashrt_bin, tiny, tmp_path, images):
    r = cli(flashrt_bin, "calibrate", "--checkpoint", tiny, "--hardware", "cpu", "--random", "2")
    assert r.returncode == 1 and "runs in fp32 here" in r.stderr and "nothing to calibrate" in r.stderr
    bad = tmp_path / "obs.json"
    bad.write_text('{"prompt": "go"}')
    r = cli(flashrt_bin, "calibrate", "--checkpoint", tiny, "--hardware", "cpu", "--obs", bad)
    assert r.returncode == 2 and "expected {\"images\"" in r.stderr, r.stderr
    r = cli(flashrt_bin, "run", "--checkpoint", tiny, "--hardware", "cpu", "--fp8", "--image",
            images["dir"] / "base.png", "--prompt", "go", "--state", STATE)
    assert r.returncode == 1 and "use_fp8=True needs a CUDA GPU with FP8" in r.stderr, r.stderr


def test_serve_needs_a_checkpoint(flashrt_bin):
    r = cli(flashrt_bin, "serve")
    assert r.returncode == 2 and "--checkpoint" in r.stderr


def test_runtime_errors_exit_1(flashrt_bin, tmp_path, images, tiny):
    r = cli(flashrt_bin, "inspect", tmp_path / "nope")
    assert r.returncode == 1 and r.stderr.startswith("flashrt inspect: error: ")
    r = cli(flashrt_bin, "run", "--checkpoint", tmp_path / "nope", "--image",
            images["dir"] / "base.png", "--prompt", "go", "--state", STATE)
    assert r.returncode == 1 and r.stderr.startswith("flashrt run: error: ")
    r = cli(flashrt_bin, "run", "--checkpoint", tiny, "--image", tmp_path / "missing.png",
            "--prompt", "go", "--state", STATE)
    assert r.returncode == 1 and "missing.png" in r.stderr


# ---------------------------------------------------------------- commands end to end

def test_inspect_tiny(flashrt_bin, tiny):
    r = cli(flashrt_bin, "inspect", tiny)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "config: pi05" in out
    assert "required tensors present with the expected shapes" in out
    assert "MISSING" not in out and "WRONG SHAPE" not in out
    for part in ("vision (SigLIP)", "llm (Gemma 2B layers)", "action expert", "total"):
        assert part in out
    assert "width 64, layers 2" in out  # tiny SigLIP and Gemma
    assert "bf16" in out.lower()
    assert "state dim 8, actions dim 7" in out
    for option in ("max_token_len", "discrete_state_input", "normalization", "norm_stats_asset",
                   "action_horizon", "num_steps"):
        assert option in out
    assert "load options" in out and "quantile" in out
    total = [line for line in out.splitlines() if line.strip().startswith("total ")]
    count = int(total[-1].split()[1].replace(",", ""))
    assert count > 100000


def test_inspect_flags_missing_tensors(flashrt_bin, tiny, tmp_path):
    # Rewrite the checkpoint without two tensors and with an extra one.
    blob = (tiny / "model.safetensors").read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    drop = [k for k in header if k.endswith("time_mlp_out.bias") or k.endswith("post_layernorm.bias")]
    assert len(drop) == 2
    keep = {k: v for k, v in header.items() if k not in drop and k != "__metadata__"}
    keep["extra.weight"] = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    parts, off, out = [], 0, {}
    for k, v in keep.items():
        b, e = v["data_offsets"]
        chunk = data[b:e] if k != "extra.weight" else b"\0" * 8
        out[k] = dict(v, data_offsets=[off, off + len(chunk)])
        parts.append(chunk)
        off += len(chunk)
    hj = json.dumps(out).encode()
    d = tmp_path / "broken"
    shutil.copytree(tiny, d)
    (d / "model.safetensors").write_bytes(struct.pack("<Q", len(hj)) + hj + b"".join(parts))
    r = cli(flashrt_bin, "inspect", d)
    assert r.returncode == 0, r.stderr
    assert "MISSING required tensors (2)" in r.stdout
    assert "time_mlp_out.bias" in r.stdout and "extra.weight" in r.stdout


def test_run_table_and_json(flashrt_bin, tiny, images):
    base = ["--checkpoint", tiny, "--image", images["dir"] / "base.png", "--image",
            images["dir"] / "wrist.png", "--prompt", "pick up the red block", "--state", STATE,
            "--hardware", "cpu", "--horizon", "10", "--steps", "3"]
    r = cli(flashrt_bin, "run", *base)
    assert r.returncode == 0, r.stderr
    assert "10 x 32 actions" in r.stdout
    rows = [l for l in r.stdout.splitlines() if l.strip() and l.split()[0].isdigit()]
    assert len(rows) == 10 and len(rows[0].split()) == 1 + 7  # step + the 7 robot dims
    r = cli(flashrt_bin, "run", *base, "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    a = np.array(j["actions"], dtype=np.float32)
    assert (j["horizon"], j["dim"]) == (10, 32) and a.shape == (10, 32)
    assert np.isfinite(a).all() and np.abs(a).max() > 0
    assert j["config"] == "pi05" and j["hardware"] == "cpu"


def test_run_matches_python(flashrt_bin, tiny, images):
    """The CLI (PNG decode + C++ API) and the Python package give the same chunk."""
    import flash_rt
    try:
        flash_rt._lib.lib()
    except OSError as e:
        _missing("libflashrt.so: {}".format(str(e).splitlines()[0]))
    r = cli(flashrt_bin, "run", "--checkpoint", tiny, "--image", images["dir"] / "base.png",
            "--image", images["dir"] / "wrist.png", "--prompt", "open the drawer", "--state",
            STATE, "--hardware", "cpu", "--horizon", "10", "--steps", "3", "--seed", "11",
            "--json")
    assert r.returncode == 0, r.stderr
    cli_actions = np.array(json.loads(r.stdout)["actions"], dtype=np.float32)
    with flash_rt.load_model(tiny, hardware="cpu", action_horizon=10, num_steps=3, seed=11,
                             tokenizer_path=tiny / "paligemma_tokenizer.model") as m:
        py = m.predict([images["base"], images["wrist"]], "open the drawer",
                       [float(x) for x in STATE.split(",")])
    np.testing.assert_allclose(cli_actions, py, rtol=1e-5, atol=1e-6)


def test_run_needs_state_for_pi05(flashrt_bin, tiny, images):
    r = cli(flashrt_bin, "run", "--checkpoint", tiny, "--image", images["dir"] / "base.png",
            "--prompt", "go", "--hardware", "cpu")
    assert r.returncode == 2 and "--state" in r.stderr


def test_demo(flashrt_bin, tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    args = ["demo", "--hardware", "cpu", "--horizon", "10", "--runs", "2",
            "--save-images", tmp_path / "frames"]
    r = cli(flashrt_bin, *args, env=env)
    assert r.returncode == 0, r.stderr
    assert "random" in r.stdout and "meaningless" in r.stdout
    assert "made now" in r.stdout and "predict:" in r.stdout and "ms median" in r.stdout
    assert (tmp_path / "cache" / "flash_rt" / "demo-tiny-pi05" / "model.safetensors").is_file()
    assert (tmp_path / "frames" / "view0.png").is_file()
    again = cli(flashrt_bin, *args, env=env)
    assert again.returncode == 0 and "cached" in again.stdout
    # Same checkpoint, frames and seed: the same table.
    table = [l for l in r.stdout.splitlines() if l.strip()[:1].isdigit() and "ms" not in l]
    table2 = [l for l in again.stdout.splitlines() if l.strip()[:1].isdigit() and "ms" not in l]
    assert table and table == table2


def test_bench_json(flashrt_bin, tiny):
    r = cli(flashrt_bin, "bench", "--checkpoint", tiny, "--hardware", "cpu", "--iters", "3",
            "--warmup", "1", "--horizon", "10", "--steps", "2", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout.strip().splitlines()[-1])
    assert j["iters"] == 3 and j["hardware"] == "cpu"
    assert 0 < j["min_ms"] <= j["p50_ms"] <= j["p90_ms"] <= j["p99_ms"]


# ---------------------------------------------------------------- the C++ header

CPP_PROGRAM = r"""
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include "flashrt/flashrt.hpp"
#define EXPECT(c) do { if (!(c)) { std::fprintf(stderr, "failed: %s\n", #c); return 1; } } while (0)
int main(int, char** argv) {
  flashrt::LoadOptions o;
  o.hardware = "cpu"; o.action_horizon = 6; o.num_steps = 2;
  o.tokenizer_path = std::string(argv[1]) + "/paligemma_tokenizer.model";
  try { flashrt::Model::load(std::string(argv[1]) + "/nope", o); EXPECT(false); }
  catch (const flashrt::Error& e) { EXPECT(e.status() == FRT_STATUS_NOT_FOUND); }
  flashrt::Model m = flashrt::Model::load(argv[1], o);
  flashrt::Model moved = std::move(m);
  EXPECT(m.handle() == nullptr && moved.handle() != nullptr);
  std::vector<uint8_t> px(50 * 70 * 3);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * 37) % 251);
  std::vector<float> state = {0.1f, -0.2f, 0.3f, 0, 0, 0, 0, 0.05f};
  moved.set_prompt("stack the cups");
  EXPECT(moved.prompt() == "stack the cups");
  moved.enable_dumps(true);
  flashrt::Actions a = moved.predict({flashrt::Image::u8(px.data(), 50, 70)}, std::nullopt, state);
  EXPECT(a.horizon == 6 && a.dim == 32 && a.actions.size() == 6u * 32u);
  flashrt::Dump d = moved.dump("prompt_ids");
  EXPECT(d.shape.size() == 1 && d.values.size() == static_cast<size_t>(d.shape[0]));
  EXPECT(moved.info().action_horizon == 6);
  try { moved.predict({flashrt::Image::u8(px.data(), 50, 70)}, "go"); EXPECT(false); }
  catch (const flashrt::Error& e) { EXPECT(e.status() == FRT_STATUS_INVALID_ARGUMENT); }
  std::printf("%.6f\n", a(5, 6));
  return 0;
}
"""


def test_cpp_header(tiny, tmp_path):
    lib = pathlib.Path(os.environ.get("FLASH_RT_LIBRARY", REPO / "build" / "libflashrt.so"))
    cxx = shutil.which("g++") or shutil.which("c++")
    if not lib.is_file():
        _missing("libflashrt.so is not built at {}".format(lib))
    if cxx is None:
        pytest.skip("no C++ compiler")
    src = tmp_path / "api.cpp"
    src.write_text(CPP_PROGRAM)
    exe = tmp_path / "api"
    subprocess.run([cxx, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-I", str(REPO / "include"),
                    str(src), str(lib), "-Wl,-rpath," + str(lib.parent), "-o", str(exe)],
                   check=True)
    r = subprocess.run([str(exe), str(tiny)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert np.isfinite(float(r.stdout))
