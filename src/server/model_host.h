// The server's one flashrt::Model: loaded, warmed up and used for predict only on the request
// queue's worker thread. Network threads read the immutable Summary (info) after ready().
// Warm-up passes fixed zero noise, so the model's seeded noise generator is untouched: the first
// served predict without noise equals the first in-process predict with the same seed.
// Tests: tests/python/test_server_openpi.py (actions equal in-process predict).
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "flashrt/flashrt.hpp"
#include "server/server_types.h"

namespace frt::server {

// What the network threads may know about the model (fixed once loaded).
struct ModelSummary {
  std::string name, checkpoint, config, hardware, precision, device_name, version;
  std::string prompt;  // the default prompt (--default-prompt); the server never changes it
  int32_t num_views = 0, num_steps = 0, action_horizon = 0, action_dim = 0;
  int32_t state_dim = 0, robot_action_dim = 0, discrete_state_input = 0;
};

class ModelHost {
 public:
  ModelHost(std::string checkpoint, flashrt::LoadOptions options, std::string name);
  ~ModelHost();

  // Worker thread only. Throws flashrt::Error / std::exception on failure.
  void load_and_warm_up(int warmup_runs);
  InferenceOutput predict(const InferenceInput& input);

  bool ready() const { return ready_.load(std::memory_order_acquire); }
  const ModelSummary& summary() const { return summary_; }  // valid once ready()
  double load_ms() const { return load_ms_; }
  double warmup_ms() const { return warmup_ms_; }

 private:
  std::string checkpoint_;
  flashrt::LoadOptions options_;
  std::unique_ptr<flashrt::Model> model_;
  ModelSummary summary_;
  std::atomic<bool> ready_{false};
  double load_ms_ = 0, warmup_ms_ = 0;
};

}  // namespace frt::server
