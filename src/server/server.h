// `flashrt serve`'s process: binds the listening socket, loads and warms the model on the
// worker thread (GET /health says "loading" until then, "ready" after), accepts connections
// on a few network threads (HTTP and websocket on one port, told apart by the upgrade header)
// and on SIGINT/SIGTERM stops accepting, lets every queued or running request finish and its
// reply go out, closes the connections and returns 0. A second signal stops at once (1).
// Tests: tests/python/test_server_http.py (SIGTERM drains and exits 0), test_server_load.py.
#pragma once

#include <string>

#include "flashrt/flashrt.hpp"
#include "server/server_types.h"

namespace frt::server {

// Prints "flashrt serve: listening on HOST:PORT" once bound (port 0 → the one the OS chose)
// and "flashrt serve: ready ..." once warmed up, both on stdout. Returns the exit code: 0 after
// a signal-triggered drain, 1 when the model failed to load (message on stderr). Throws
// std::runtime_error when it cannot listen.
int run_server(const ServerOptions& options, const std::string& checkpoint,
               const flashrt::LoadOptions& load);

}  // namespace frt::server
