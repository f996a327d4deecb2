// Prometheus text rendering of the server's counters and histograms (see metrics.h).
// Tests: tests/python/test_server_http.py.
#include "server/metrics.h"

#include <cstdio>

namespace frt::server {
namespace {

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

std::string join_labels(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return a + "," + b;
}

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

}  // namespace

void Histogram::observe(double seconds) {
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  ++counts_[i];
  sum_ += seconds;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= kBounds.size(); ++i) {
    cumulative += counts_[i];
    const std::string le = i < kBounds.size() ? number(kBounds[i]) : "+Inf";
    out += name + "_bucket{" + join_labels(labels, "le=\"" + le + "\"") + "} " +
           std::to_string(cumulative) + "\n";
  }
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out += name + "_sum" + braces + " " + number(sum_) + "\n";
  out += name + "_count" + braces + " " + std::to_string(count_) + "\n";
}

void Metrics::record_request(const std::string& protocol, const std::string& route, int status,
                             double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{protocol, route, status}];
  latency_[protocol].observe(seconds);
}

void Metrics::record_inference(double queue_seconds, double infer_seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  queue_wait_.observe(queue_seconds);
  inference_.observe(infer_seconds);
}

std::string Metrics::render(const Gauges& g) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  header(out, "flashrt_requests_total", "counter",
         "Requests answered, by protocol, route and status.");
  for (const auto& [key, n] : requests_) {
    const auto& [protocol, route, status] = key;
    out += "flashrt_requests_total{protocol=\"" + protocol + "\",route=\"" + route +
           "\",status=\"" + std::to_string(status) + "\"} " + std::to_string(n) + "\n";
  }
  header(out, "flashrt_request_duration_seconds", "histogram",
         "Time from a request's arrival to its answer being ready, by protocol.");
  for (const auto& [protocol, h] : latency_)
    h.render(out, "flashrt_request_duration_seconds", "protocol=\"" + protocol + "\"");
  header(out, "flashrt_queue_wait_seconds", "histogram", "Time a predict waited for the worker.");
  queue_wait_.render(out, "flashrt_queue_wait_seconds", "");
  header(out, "flashrt_inference_seconds", "histogram", "Time in flashrt::Model::predict.");
  inference_.render(out, "flashrt_inference_seconds", "");
  header(out, "flashrt_ready", "gauge", "1 once the model is loaded and warmed up.");
  out += "flashrt_ready " + std::to_string(g.ready ? 1 : 0) + "\n";
  header(out, "flashrt_queue_depth", "gauge", "Predicts waiting for the worker.");
  out += "flashrt_queue_depth " + std::to_string(g.queue_depth) + "\n";
  header(out, "flashrt_queue_capacity", "gauge", "Most predicts that may wait (then 503).");
  out += "flashrt_queue_capacity " + std::to_string(g.queue_capacity) + "\n";
  header(out, "flashrt_inflight_requests", "gauge",
         "Predicts queued or running, reply not yet sent.");
  out += "flashrt_inflight_requests " + std::to_string(g.inflight) + "\n";
  header(out, "flashrt_websocket_connections", "gauge", "Open websocket connections.");
  out += "flashrt_websocket_connections " + std::to_string(g.websocket_connections) + "\n";
  return out;
}

}  // namespace frt::server
