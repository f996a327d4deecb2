// What every connection of `flashrt serve` shares: the options, the model host, the request
// queue, the metrics, the server state (loading → ready → draining) and the count of requests
// whose reply is not yet sent (SIGTERM waits for it to reach zero).
// Tests: tests/python/test_server_http.py (health states, 503 on overflow, SIGTERM drain).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "server/metrics.h"
#include "server/model_host.h"
#include "server/observation_mapping.h"
#include "server/request_queue.h"
#include "server/server_types.h"

namespace frt::server {

enum class ServerState { kLoading, kReady, kDraining, kFailed };
const char* state_name(ServerState s);

double now_ms();  // monotonic clock

// Held by a reply until it has been written (or dropped): the drain waits for all to go.
class InflightToken {
 public:
  InflightToken() = default;
  explicit InflightToken(std::atomic<int64_t>* counter) : counter_(counter) { ++*counter_; }
  InflightToken(InflightToken&& o) noexcept : counter_(std::exchange(o.counter_, nullptr)) {}
  InflightToken& operator=(InflightToken&& o) noexcept {
    if (this != &o) release(), counter_ = std::exchange(o.counter_, nullptr);
    return *this;
  }
  InflightToken(const InflightToken&) = delete;
  InflightToken& operator=(const InflightToken&) = delete;
  ~InflightToken() { release(); }
  void release() {
    if (counter_) --*counter_, counter_ = nullptr;
  }

 private:
  std::atomic<int64_t>* counter_ = nullptr;
};

// A connection the server can ask to close (SIGINT/SIGTERM, after the drain).
class Closeable {
 public:
  virtual ~Closeable() = default;
  virtual void shutdown() = 0;  // thread-safe: posts onto the connection's strand
};

class ServerContext {
 public:
  ServerContext(ServerOptions options, std::string checkpoint, flashrt::LoadOptions load);

  const ServerOptions& options() const { return options_; }
  ModelHost& host() { return host_; }
  RequestQueue& queue() { return queue_; }
  Metrics& metrics() { return metrics_; }
  ModelShape shape() const;  // valid once ready

  ServerState state() const { return state_.load(std::memory_order_acquire); }
  void set_state(ServerState s) { state_.store(s, std::memory_order_release); }
  std::atomic<int64_t>& websocket_connections() { return ws_connections_; }
  int64_t inflight() const { return inflight_.load(); }
  Gauges gauges() const;

  // Throws RequestError(503) unless ready (loading / draining), (401) on a bad API key.
  void check_admission(const std::string& authorization) const;
  // Queues one predict; `done` runs on the worker thread with the result and the token that
  // keeps the drain waiting until the reply is written. Throws RequestError(503) when the
  // queue is full or closed (Retry-After: 1).
  using Done = std::function<void(InferenceOutput, std::shared_ptr<InflightToken>)>;
  void submit(InferenceInput input, Done done);

  // Connections, so the drain can close them; expired entries are pruned on insert.
  void track(std::weak_ptr<Closeable> session);
  void shutdown_sessions();

 private:
  ServerOptions options_;
  ModelHost host_;
  RequestQueue queue_;
  Metrics metrics_;
  std::atomic<ServerState> state_{ServerState::kLoading};
  std::atomic<int64_t> ws_connections_{0};
  std::atomic<int64_t> inflight_{0};
  std::mutex sessions_mu_;
  std::vector<std::weak_ptr<Closeable>> sessions_;
};

}  // namespace frt::server
