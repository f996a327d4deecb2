// Pieces shared by the `flashrt` subcommands: the command entry points, the load options every
// model-running command takes (--hardware --views --steps --horizon --seed), synthetic camera
// images for the demo and the benchmark, the action table printer and timing statistics.
// Tests: tests/python/test_cli.py.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "args.h"
#include "flashrt/flashrt.hpp"
#include "io/image.h"

namespace frt::cli {

// Subcommands: argv[0] is the subcommand name. Return the exit code; throw UsageError for bad
// arguments and flashrt::Error / frt::Error for runtime failures (main.cpp prints them).
int cmd_demo(int argc, char** argv);
int cmd_run(int argc, char** argv);
int cmd_inspect(int argc, char** argv);
int cmd_make_checkpoint(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_calibrate(int argc, char** argv);

// Declares --hardware, --views, --steps, --horizon, --seed, --fp8, --bf16 with these defaults.
void add_model_options(Args& args, int default_views);
flashrt::LoadOptions model_options(const Args& args);
// --fp8 → 1, --bf16 → 0, neither → -1 (FP8 where the GPU has it); both → usage error.
int32_t fp8_choice(const Args& args);

// Deterministic, non-trivial RGB frame for camera slot `view`: gradients plus a few filled
// shapes, different per view, so the vision tower sees structure rather than a constant.
ImageU8 synthetic_image(int view, int height, int width);
// A smooth deterministic robot state of `dim` values in [-0.8, 0.8].
std::vector<float> synthetic_state(int dim);

// $XDG_CACHE_HOME/flash_rt, else $HOME/.cache/flash_rt (else ./.cache/flash_rt).
std::string default_cache_dir();

// Loads `dir` if it is a loadable checkpoint; otherwise (re)writes a tiny pi05 checkpoint there
// with `seed` and loads that. Uses the checkpoint's own tokenizer so a real PaliGemma
// tokenizer found through $FLASH_RT_PALIGEMMA_TOKENIZER is not paired with the tiny vocabulary.
flashrt::Model load_or_make_tiny(const std::string& dir, flashrt::LoadOptions opts, uint64_t seed,
                                 bool* made);

// Prints rows x cols of the chunk (cols = the first `cols` dims) as an aligned table.
void print_actions(const flashrt::Actions& a, int rows, int cols);

// Percentile p in [0, 100] of `values` (linear interpolation between order statistics).
double percentile(std::vector<double> values, double p);
double now_ms();  // monotonic clock, milliseconds

}  // namespace frt::cli
