// `flashrt serve`: one process serving one model over HTTP JSON and openpi's websocket protocol
// (src/server/). Parses the options, then hands over to frt::server::run_server, which returns
// 0 after a SIGINT/SIGTERM drain and 1 when the model cannot be loaded.
// Tests: tests/python/test_server_http.py, test_server_openpi.py, test_server_bad_inputs.py,
// test_server_load.py; docs/serving.md.
#include <cstdio>
#include <filesystem>

#include "cli_common.h"
#include "server/server.h"

namespace frt::cli {

int cmd_serve(int argc, char** argv) {
  Args args("serve",
            "Serve one model over HTTP JSON (GET /health, GET /metrics, POST /predict) and the\n"
            "openpi websocket protocol (openpi-client's WebsocketClientPolicy connects unchanged)\n"
            "on one port. The model is loaded and warmed up before GET /health reports ready;\n"
            "requests run in order on one worker through a bounded queue. SIGINT/SIGTERM stop\n"
            "accepting, finish the requests in flight and exit 0. See docs/serving.md.");
  args.option("--checkpoint", "DIR", "checkpoint directory (openpi PyTorch export)")
      .option("--config", "pi05|pi0|auto", "expected model family", "auto")
      .option("--host", "ADDR", "address to listen on (0.0.0.0: every interface)", "127.0.0.1")
      .option("--port", "N", "TCP port (0: any free one, printed on the 'listening' line)", "8000")
      .option("--default-prompt", "TEXT", "prompt used when a request sends none")
      .option("--tokenizer", "FILE", "tokenizer model (default: searched, docs/checkpoints.md)")
      .option("--norm-stats", "ASSET", "norm stats asset under assets/ (default: the only one)");
  add_model_options(args, 2);
  args.option("--robot", "auto|libero|droid|aloha|model",
              "websocket observation layout (auto: told by the keys of each observation)", "auto")
      .option("--action-dims", "N",
              "action dims in replies (0: LIBERO 7, DROID 8, ALOHA 14, else the norm stats')", "0")
      .flag("--ignore-unknown-keys",
            "ignore unknown observation keys, as openpi does (default: 400)")
      .flag("--no-aloha-adapt", "ALOHA: skip openpi's adapt_to_pi joint/gripper conversion")
      .option("--queue-size", "N", "predicts that may wait for the worker (then 503)", "16")
      .option("--max-request-mb", "N", "largest HTTP body / websocket message, MiB (then 413)",
              "16")
      .option("--io-threads", "N", "network threads (inference has its own)", "2")
      .option("--warmup", "N", "warm-up predicts before ready (the first captures the CUDA graph)",
              "1")
      .option("--drain-timeout", "SECONDS", "longest wait for in-flight requests on SIGTERM", "30")
      .option("--api-key", "KEY", "require 'Authorization: Api-Key KEY' (health routes exempt)")
      .option("--name", "TEXT", "model name shown by /health (default: the checkpoint dir)")
      .epilog(
          "example:\n"
          "  flashrt serve --checkpoint /ckpt/pi05_libero --horizon 10 --default-prompt \"pick "
          "up\"\n"
          "  curl localhost:8000/health\n"
          "  python -c \"from openpi_client import websocket_client_policy as w; "
          "w.WebsocketClientPolicy('localhost', 8000)\"");
  if (!args.parse(argc, argv)) return 0;
  if (!args.has("--checkpoint")) args.fail("missing --checkpoint DIR");
  const std::string checkpoint = args.str("--checkpoint");
  if (!std::filesystem::is_directory(checkpoint))
    args.fail("--checkpoint '" + checkpoint + "' is not a directory");

  flashrt::LoadOptions load = model_options(args);
  load.config = args.choice("--config", {"pi05", "pi0", "auto"});
  load.default_prompt = args.str("--default-prompt");
  load.tokenizer_path = args.str("--tokenizer");
  load.norm_stats_asset = args.str("--norm-stats");

  server::ServerOptions o;
  o.host = args.str("--host");
  o.port = static_cast<uint16_t>(args.integer("--port", 0, 65535));
  if (!server::parse_layout(args.str("--robot"), &o.robot))
    args.choice("--robot",
                {"auto", "libero", "droid", "aloha", "model"});  // throws the usage error
  o.action_dims = static_cast<int>(args.integer("--action-dims", 0, 1024));
  o.ignore_unknown_keys = args.has("--ignore-unknown-keys");
  o.aloha_adapt_to_pi = !args.has("--no-aloha-adapt");
  o.queue_capacity = static_cast<size_t>(args.integer("--queue-size", 1, 100000));
  o.max_request_bytes = static_cast<size_t>(args.integer("--max-request-mb", 1, 4096)) << 20;
  o.io_threads = static_cast<int>(args.integer("--io-threads", 1, 64));
  o.warmup_runs = static_cast<int>(args.integer("--warmup", 1, 1000));
  o.drain_timeout_s = static_cast<double>(args.integer("--drain-timeout", 0, 86400));
  o.api_key = args.str("--api-key");
  o.model_name = args.str("--name");
  std::printf("flashrt serve: loading %s (%s, %s, %d view(s))\n", checkpoint.c_str(),
              load.config.c_str(), load.hardware.c_str(), load.num_views);
  std::fflush(stdout);
  return server::run_server(o, checkpoint, load);
}

}  // namespace frt::cli
