// `flashrt make-checkpoint`: writes a synthetic checkpoint (random weights, openpi layout)
// through frt_make_checkpoint.
// Tests: tests/python/test_cli.py (make-checkpoint then inspect / run).
#include <cstdio>

#include "cli_common.h"

namespace frt::cli {

int cmd_make_checkpoint(int argc, char** argv) {
  Args args("make-checkpoint",
            "Write a synthetic checkpoint in the openpi PyTorch layout (model.safetensors,\n"
            "config.json, assets/<id>/norm_stats.json, a small tokenizer) with deterministic\n"
            "random weights. Tiny: seconds and a few MB; full: the real dimensions (~7 GB).");
  args.option("--config", "pi05|pi0", "model family", "pi05")
      .option("--size", "tiny|full", "dimensions", "tiny")
      .option("--seed", "N", "weight seed", "0")
      .positional("DIR", "output directory (created; files of the same names are overwritten)")
      .epilog(
          "example:\n  flashrt make-checkpoint --config pi05 --size tiny --seed 0 /tmp/pi05_tiny");
  if (!args.parse(argc, argv)) return 0;
  const std::string config = args.choice("--config", {"pi05", "pi0"});
  const std::string size = args.choice("--size", {"tiny", "full"});
  const uint64_t seed = args.u64("--seed");
  const std::string dir = args.pos(0);
  const double t0 = now_ms();
  flashrt::make_checkpoint(dir, config, size, seed);
  std::printf("wrote a %s %s checkpoint (seed %llu, random weights) to %s in %.2f s\n",
              size.c_str(), config.c_str(), static_cast<unsigned long long>(seed), dir.c_str(),
              (now_ms() - t0) / 1000.0);
  return 0;
}

}  // namespace frt::cli
