// The HTTP endpoints' answers, independent of the socket code: GET /health, GET /healthz
// (openpi's: "OK\n"), GET /metrics, 404 / 405, and the predict reply or error.
// Tests: tests/python/test_server_http.py.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "server/server_context.h"

namespace frt::server {

struct HttpAnswer {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra (Retry-After, Allow)
};

// GET/HEAD routes and method/path errors. `is_predict` is set for POST /predict, which the
// session runs asynchronously (the answer is then unused).
HttpAnswer route(ServerContext& ctx, const std::string& method, const std::string& target,
                 bool* is_predict);
// An error answer: JSON {"error", "status"}; 503 adds Retry-After: 1.
HttpAnswer error_answer(int status, const std::string& message);
// The answer to a finished predict (200 with actions, or the worker's error).
HttpAnswer predict_answer(ServerContext& ctx, const InferenceOutput& out, double latency_ms);

}  // namespace frt::server
