// `flashrt`: the command-line frontend. Dispatches to the subcommands (cmd_*.cpp) and owns the
// exit-code contract: 0 success, 1 runtime error ("flashrt <cmd>: error: <message>"),
// 2 usage error (message + usage line on stderr).
// Tests: tests/python/test_cli.py.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "cli_common.h"
#include "core/status.h"
#include "flashrt/flashrt.hpp"

namespace frt::cli {
int cmd_serve(int argc, char** argv);  // tools/cmd_serve.cpp (src/server/)
}  // namespace frt::cli

namespace {

using frt::cli::UsageError;

struct Command {
  const char* name;
  int (*fn)(int, char**);
  const char* summary;
};

const Command kCommands[] = {
    {"demo", frt::cli::cmd_demo, "run a tiny synthetic Pi0.5 model on generated images"},
    {"run", frt::cli::cmd_run, "predict one action chunk from image files"},
    {"inspect", frt::cli::cmd_inspect, "describe a checkpoint without loading it"},
    {"make-checkpoint", frt::cli::cmd_make_checkpoint, "write a synthetic checkpoint"},
    {"bench", frt::cli::cmd_bench, "time predict (warm-up, then p50/p90 over N runs)"},
    {"serve", frt::cli::cmd_serve, "serve a model over HTTP JSON and the openpi websocket protocol"},
    {"calibrate", frt::cli::cmd_calibrate, "calibrate FP8 activation scales and cache them"},
};

void print_help(FILE* out) {
  std::fprintf(out,
               "usage: flashrt <command> [options]\n\n"
               "FlashRT %s: realtime inference for robot VLA policies (Pi0.5).\n\ncommands:\n",
               frt_version());
  for (const Command& c : kCommands) std::fprintf(out, "  %-16s %s\n", c.name, c.summary);
  std::fprintf(out,
               "\n  flashrt <command> --help   options of one command\n"
               "  flashrt --version          version and C ABI version\n"
               "\nexit codes: 0 ok, 1 runtime error, 2 usage error\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_help(stderr);
    return 2;
  }
  const std::string first = argv[1];
  if (first == "--help" || first == "-h" || first == "help") {
    print_help(stdout);
    return 0;
  }
  if (first == "--version" || first == "-V") {
    std::printf("flashrt %s (C ABI %d)\n", frt_version(), FRT_ABI_VERSION);
    return 0;
  }
  const Command* cmd = nullptr;
  for (const Command& c : kCommands)
    if (first == c.name) cmd = &c;
  if (!cmd) {
    std::fprintf(stderr, "flashrt: unknown command '%s'\n\n", first.c_str());
    print_help(stderr);
    return 2;
  }
  try {
    return cmd->fn(argc - 1, argv + 1);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "flashrt %s: %s\n%s\nTry 'flashrt %s --help'.\n", cmd->name, e.what(),
                 e.usage().c_str(), cmd->name);
    return 2;
  } catch (const flashrt::Error& e) {
    std::fprintf(stderr, "flashrt %s: error: %s\n", cmd->name, e.what());
  } catch (const frt::Error& e) {  // internal readers used directly (inspect, image decoding)
    std::fprintf(stderr, "flashrt %s: error: %s\n", cmd->name, e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flashrt %s: error: %s\n", cmd->name, e.what());
  }
  return 1;
}
