// Shared server state, admission and predict submission (see server_context.h).
// Tests: tests/python/test_server_http.py, tests/python/test_server_load.py.
#include "server/server_context.h"

#include <utility>

namespace frt::server {

const char* state_name(ServerState s) {
  switch (s) {
    case ServerState::kLoading:
      return "loading";
    case ServerState::kReady:
      return "ready";
    case ServerState::kDraining:
      return "draining";
    default:
      return "failed";
  }
}

double now_ms() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double, std::milli>(clock::now().time_since_epoch()).count();
}

ServerContext::ServerContext(ServerOptions options, std::string checkpoint,
                             flashrt::LoadOptions load)
    : options_(std::move(options)),
      host_(std::move(checkpoint), std::move(load), options_.model_name),
      queue_(options_.queue_capacity) {}

ModelShape ServerContext::shape() const {
  const ModelSummary& s = host_.summary();
  return ModelShape{s.num_views, s.state_dim, s.action_horizon, s.action_dim, s.robot_action_dim};
}

Gauges ServerContext::gauges() const {
  Gauges g;
  g.ready = state() == ServerState::kReady;
  g.queue_depth = queue_.depth();
  g.queue_capacity = queue_.capacity();
  g.websocket_connections = ws_connections_.load();
  g.inflight = inflight_.load();
  return g;
}

void ServerContext::check_admission(const std::string& authorization) const {
  if (!options_.api_key.empty() && authorization != "Api-Key " + options_.api_key)
    throw RequestError(401,
                       "missing or wrong API key; send the header 'Authorization: Api-Key <key>'");
  const ServerState s = state();
  if (s == ServerState::kLoading)
    throw RequestError(
        503, "the model is still loading / warming up; retry when GET /health says ready");
  if (s != ServerState::kReady)
    throw RequestError(503,
                       std::string("the server is ") + state_name(s) + "; not accepting requests");
}

void ServerContext::submit(InferenceInput input, Done done) {
  auto token = std::make_shared<InflightToken>(&inflight_);
  const double enqueued = now_ms();
  // The task holds the input by shared_ptr: std::function needs a copyable callable.
  auto in = std::make_shared<InferenceInput>(std::move(input));
  const RequestQueue::Admit admit = queue_.submit([this, in, token, enqueued, done] {
    const double start = now_ms();
    InferenceOutput out = host_.predict(*in);
    out.queue_ms = start - enqueued;
    metrics_.record_inference(out.queue_ms / 1000.0, out.infer_ms / 1000.0);
    done(std::move(out), token);
  });
  if (admit == RequestQueue::Admit::kFull)
    throw RequestError(503, "server busy: " + std::to_string(queue_.capacity()) +
                                " requests are already waiting (--queue-size); retry shortly");
  if (admit == RequestQueue::Admit::kClosed)
    throw RequestError(503, "the server is shutting down; not accepting requests");
}

void ServerContext::track(std::weak_ptr<Closeable> session) {
  std::lock_guard<std::mutex> lock(sessions_mu_);
  std::erase_if(sessions_, [](const std::weak_ptr<Closeable>& w) { return w.expired(); });
  sessions_.push_back(std::move(session));
}

void ServerContext::shutdown_sessions() {
  std::vector<std::shared_ptr<Closeable>> live;
  {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    for (const auto& w : sessions_)
      if (auto s = w.lock()) live.push_back(std::move(s));
    sessions_.clear();
  }
  for (auto& s : live) s->shutdown();
}

}  // namespace frt::server
