// Request counters and latency histograms of `flashrt serve`, rendered as Prometheus text
// (exposition format 0.0.4) by GET /metrics. Thread-safe: network threads and the worker record.
// Tests: tests/python/test_server_http.py (metrics: counts by status move, histogram is
// cumulative and ends with +Inf == _count).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

namespace frt::server {

class Histogram {
 public:
  static constexpr std::array<double, 14> kBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                     0.25,  0.5,    1.0,   2.5,  5.0,   10.0, 30.0};
  void observe(double seconds);
  // Appends name_bucket{...,le="..."} (cumulative), name_sum, name_count with `labels`
  // ("protocol=\"http\"" or "").
  void render(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  std::array<uint64_t, kBounds.size() + 1> counts_{};  // last: above every bound
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Instantaneous values the server owns; sampled when /metrics is rendered.
struct Gauges {
  bool ready = false;
  size_t queue_depth = 0, queue_capacity = 0;
  int64_t websocket_connections = 0;
  int64_t inflight = 0;
};

class Metrics {
 public:
  // One finished request: protocol "http" / "websocket", route ("/predict", "/health", "ws"),
  // HTTP status (websocket: 200 for a reply, the status of the error otherwise).
  void record_request(const std::string& protocol, const std::string& route, int status,
                      double seconds);
  // One predict on the worker: time in the queue and in flashrt::Model::predict.
  void record_inference(double queue_seconds, double infer_seconds);
  std::string render(const Gauges& gauges) const;

 private:
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> latency_;  // by protocol
  Histogram queue_wait_, inference_;
};

}  // namespace frt::server
