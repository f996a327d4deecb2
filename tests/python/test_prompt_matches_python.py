"""C++ prompt tokenization (src/io/prompt.cpp) against openpi's formula run with Python
sentencepiece, case by case (plain and pi05 formats, cleaning, Unicode, state bin edges,
truncation).

openpi's formula (src/openpi/models/tokenizer.py, PaligemmaTokenizer.tokenize) is re-stated
below in a few lines of numpy, independently of tests/reference, so this test checks the C++
code and not one Python copy against another.

The C++ side is a small driver compiled here with g++ from the engine's own sources (no
library build needed). The tokenizer model: $FLASHRT_TEST_TOKENIZER (e.g. the real
paligemma_tokenizer.model) if set, else a tiny one trained by the driver through
train_tiny_tokenizer(). Skipped, with the reason, when g++ or the sentencepiece development
files are missing.
"""

import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SOURCES = ["src/io/tokenizer.cpp", "src/io/tiny_tokenizer_corpus.cpp", "src/io/prompt.cpp",
           "src/core/status.cpp", "src/core/log.cpp"]

# Reads cases from stdin, one per line: format (pi05|plain) TAB max_len TAB state (comma
# separated floats, or '-') TAB hex-encoded UTF-8 prompt. Prints the ids or "ERR <message>".
DRIVER = r"""
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>
#include "core/log.h"
#include "core/status.h"
#include "io/prompt.h"
#include "io/tokenizer.h"
static void quiet(int, const char*, void*) {}
int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "train") {
    frt::train_tiny_tokenizer(argv[2], 1024);
    return 0;
  }
  frt::set_log_callback(&quiet, nullptr, frt::LogLevel::kDebug);
  frt::Tokenizer tok(argv[1]);
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string fmt, max_len, state_csv, hex;
    std::getline(in, fmt, '\t'); std::getline(in, max_len, '\t');
    std::getline(in, state_csv, '\t'); std::getline(in, hex, '\t');
    std::string prompt;
    for (size_t i = 0; i + 1 < hex.size(); i += 2)
      prompt += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    std::vector<float> state;
    if (state_csv != "-") {
      std::istringstream s(state_csv);
      std::string v;
      while (std::getline(s, v, ',')) state.push_back(std::stof(v));
    }
    try {
      auto tp = frt::tokenize_prompt(tok, prompt, fmt == "pi05" ? &state : nullptr,
                                     fmt == "pi05", std::stoi(max_len));
      for (size_t i = 0; i < tp.ids.size(); ++i) std::printf(i ? " %d" : "%d", tp.ids[i]);
      std::printf("\n");
    } catch (const frt::Error& e) {
      std::printf("ERR %s\n", e.what());
    }
  }
  return 0;
}
"""


def openpi_tokenize(sp, prompt, state, max_len):
    """openpi's PaligemmaTokenizer.tokenize, valid ids only (padding dropped)."""
    cleaned = prompt.strip().replace("_", " ").replace("\n", " ")
    if state is not None:
        bins = np.digitize(state, bins=np.linspace(-1, 1, 256 + 1)[:-1]) - 1
        full = f"Task: {cleaned}, State: {' '.join(map(str, bins))};\nAction: "
        ids = sp.encode(full, add_bos=True)
    else:
        ids = sp.encode(cleaned, add_bos=True) + sp.encode("\n")
    return list(ids[:max_len])


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ not found: the C++ side of this test is compiled on the fly")
    for header in ("sentencepiece_processor.h", "sentencepiece_trainer.h"):
        if not pathlib.Path("/usr/include", header).exists():
            pytest.skip(f"/usr/include/{header} missing (Debian libsentencepiece-dev)")
    out = tmp_path_factory.mktemp("prompt_driver")
    src = out / "driver.cpp"
    src.write_text(DRIVER)
    exe = out / "driver"
    cmd = [gxx, "-std=c++20", "-O1", f"-I{REPO / 'src'}", f"-I{REPO / 'include'}", str(src)]
    cmd += [str(REPO / s) for s in SOURCES]
    cmd += ["-lsentencepiece", "-lsentencepiece_train", "-lpthread", "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, "compiling the driver failed:\n" + r.stderr[-4000:]
    return exe, out


@pytest.fixture(scope="module")
def model_path(driver):
    exe, out = driver
    env = os.environ.get("FLASHRT_TEST_TOKENIZER")
    if env:
        assert pathlib.Path(env).is_file(), f"FLASHRT_TEST_TOKENIZER={env!r} is not a file"
        return env
    path = out / "tiny_tokenizer.model"
    subprocess.run([str(exe), "train", str(path)], check=True)
    return str(path)


def f32(values):
    """States as float32, the type the C++ engine holds; numpy then bins the same numbers."""
    return np.asarray(values, dtype=np.float32)


def cases():
    rng = np.random.default_rng(0)
    prompts = [
        "pick up the red block and put it in the bowl",
        "  Put_the cup\non the plate  ",
        "",
        " \n ",
        "stack it;",
        "_grasp_ the mug",
        "Gr\u00fc\u00dfe \u673a\u5668\u4eba \U0001F916 caf\u00e9",
        "a  b\t\tc\rd",
        "\u3000open the drawer\u00a0",
        "put both the alphabet soup and the tomato sauce in the basket",
    ]
    states = [
        f32(rng.uniform(-1.2, 1.2, 8)),
        f32([-1.0, 0.0, 0.9921875, 1.0, -1.5, 2.0, 1 / 128, -1e-30]),
        f32(rng.uniform(-1, 1, 32)),
        f32([]),
    ]
    out = []
    for i, p in enumerate(prompts):
        out.append(("plain", 48, None, p))
        out.append(("pi05", 200, states[i % len(states)], p))
    long = " ".join(prompts[i % len(prompts)] for i in range(6))
    out.append(("plain", 10, None, long))  # truncated
    out.append(("pi05", 12, states[0], long))  # truncated
    return out


def test_cpp_prompt_ids_match_openpi_formula(driver, model_path):
    import sentencepiece  # Debian python3-sentencepiece

    exe, _ = driver
    sp = sentencepiece.SentencePieceProcessor()
    with open(model_path, "rb") as f:
        sp.LoadFromSerializedProto(f.read())

    cs = cases()
    lines = []
    for fmt, max_len, state, prompt in cs:
        state_csv = "-" if state is None else ",".join(repr(float(v)) for v in state)
        if state is not None and len(state) == 0:
            state_csv = ""
        lines.append(f"{fmt}\t{max_len}\t{state_csv}\t{prompt.encode('utf-8').hex()}")
    r = subprocess.run([str(exe), model_path], input="\n".join(lines) + "\n",
                       capture_output=True, text=True, check=True)
    got = r.stdout.splitlines()
    assert len(got) == len(cs), r.stdout + r.stderr

    truncated = 0
    for (fmt, max_len, state, prompt), line in zip(cs, got):
        assert not line.startswith("ERR"), f"{fmt} {prompt!r}: {line}"
        cpp = [int(t) for t in line.split()]
        py = openpi_tokenize(sp, prompt, state, max_len)
        assert cpp == py, f"{fmt} prompt={prompt!r} state={state}:\n  C++    {cpp}\n  openpi {py}"
        assert cpp[0] == sp.bos_id()
        truncated += len(cpp) == max_len
    assert truncated >= 2  # the two long cases really were cut
