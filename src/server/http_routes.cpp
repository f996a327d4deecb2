// Answers of the HTTP endpoints (see http_routes.h).
// Tests: tests/python/test_server_http.py.
#include "server/http_routes.h"

#include <nlohmann/json.hpp>

#include "server/http_json.h"

namespace frt::server {
namespace {

using nlohmann::json;

constexpr const char* kEndpoints =
    "GET /health, GET /healthz, GET /metrics, POST /predict, or a websocket upgrade on any path "
    "(openpi protocol)";

HttpAnswer health(ServerContext& ctx) {
  const ServerState s = ctx.state();
  const bool loaded = ctx.host().ready();  // the summary is written before this turns true
  json j = {{"status", state_name(s)},
            {"ready", s == ServerState::kReady},
            {"version", flashrt::version()}};
  const ModelSummary& m = ctx.host().summary();  // immutable once loaded
  j["model"] = m.name;
  j["checkpoint"] = m.checkpoint;
  if (loaded) {
    j["config"] = m.config;
    j["hardware"] = m.hardware;
    j["precision"] = m.precision;
    j["device"] = m.device_name;
    j["prompt"] = m.prompt;
    j["num_views"] = m.num_views;
    j["num_steps"] = m.num_steps;
    j["action_horizon"] = m.action_horizon;
    j["action_dim"] = m.action_dim;
    j["state_dim"] = m.state_dim;
    j["robot_action_dim"] = m.robot_action_dim;
    j["reply_action_dims"] = output_transform(RobotLayout::kModel, ctx.options(), ctx.shape()).dims;
    j["load_ms"] = ctx.host().load_ms();
    j["warmup_ms"] = ctx.host().warmup_ms();
  } else {
    for (const char* k : {"config", "hardware", "prompt"}) j[k] = nullptr;
  }
  j["robot"] = layout_name(ctx.options().robot);
  j["queue"] = {{"depth", ctx.queue().depth()}, {"capacity", ctx.queue().capacity()}};
  HttpAnswer a;
  a.status = s == ServerState::kReady ? 200 : 503;
  a.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return a;
}

}  // namespace

HttpAnswer error_answer(int status, const std::string& message) {
  HttpAnswer a;
  a.status = status;
  a.body = error_json(status, message);
  if (status == 503) a.headers.emplace_back("Retry-After", "1");
  return a;
}

HttpAnswer route(ServerContext& ctx, const std::string& method, const std::string& target,
                 bool* is_predict) {
  *is_predict = false;
  const std::string path = target.substr(0, target.find('?'));
  auto only = [&](const char* allowed) {
    HttpAnswer a = error_answer(405, method + " " + path + " is not allowed; use " + allowed);
    a.headers.emplace_back("Allow", allowed);
    return a;
  };
  if (path == "/predict") {
    if (method != "POST") return only("POST");
    *is_predict = true;
    return {};
  }
  const bool get = method == "GET" || method == "HEAD";
  if (path == "/health") return get ? health(ctx) : only("GET, HEAD");
  if (path == "/healthz") {  // openpi's health check: 200 "OK\n" (here: once ready)
    if (!get) return only("GET, HEAD");
    HttpAnswer a;
    const bool ready = ctx.state() == ServerState::kReady;
    a.status = ready ? 200 : 503;
    a.content_type = "text/plain; charset=utf-8";
    a.body = ready ? "OK\n" : std::string(state_name(ctx.state())) + "\n";
    if (!ready) a.headers.emplace_back("Retry-After", "1");
    return a;
  }
  if (path == "/metrics") {
    if (!get) return only("GET, HEAD");
    HttpAnswer a;
    a.content_type = "text/plain; version=0.0.4; charset=utf-8";
    a.body = ctx.metrics().render(ctx.gauges());
    return a;
  }
  return error_answer(404, "no route " + method + " " + path + "; endpoints: " + kEndpoints);
}

HttpAnswer predict_answer(ServerContext& ctx, const InferenceOutput& out, double latency_ms) {
  if (out.status != 200) return error_answer(out.status, out.error);
  const OutputTransform t = output_transform(RobotLayout::kModel, ctx.options(), ctx.shape());
  const std::vector<double> actions = apply_output(t, out);
  const int dims = out.horizon > 0 ? static_cast<int>(actions.size()) / out.horizon : 0;
  HttpAnswer a;
  a.body = predict_reply_json(actions, out.horizon, dims, latency_ms, out.queue_ms, out.infer_ms);
  return a;
}

}  // namespace frt::server
