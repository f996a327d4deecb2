// Plain data shared by the pieces of `flashrt serve`: the server options, one decoded request
// (InferenceInput, transport-neutral: both the HTTP JSON route and the openpi websocket route
// produce it), the worker's answer (InferenceOutput) and RequestError, the exception every
// request-level problem becomes (an HTTP status + a message naming the problem).
// Tests: tests/python/test_server_http.py, test_server_openpi.py, test_server_bad_inputs.py.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace frt::server {

// Which observation layout a websocket client sends (docs/serving.md, "Observation mapping").
enum class RobotLayout { kAuto, kLibero, kDroid, kAloha, kModel };
const char* layout_name(RobotLayout layout);
// "auto", "libero", "droid", "aloha", "model"; false for anything else.
bool parse_layout(const std::string& name, RobotLayout* out);

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;        // 0: the OS picks one (printed on the "listening" line)
  int io_threads = 2;          // network threads; inference runs on one worker of its own
  size_t queue_capacity = 16;  // requests waiting for the worker; more → 503 + Retry-After
  size_t max_request_bytes = 16u << 20;  // HTTP body / websocket message; more → 413 / error
  int warmup_runs = 1;                   // predicts before "ready" (first one captures the graph)
  double drain_timeout_s = 30.0;         // SIGINT/SIGTERM: longest wait for in-flight requests
  std::string api_key;                   // non-empty: require "Authorization: Api-Key <key>"
  // Observation mapping (websocket) and reply slicing (both protocols).
  RobotLayout robot = RobotLayout::kAuto;
  int action_dims = 0;               // 0: per layout (LIBERO 7, DROID 8, ALOHA 14, else norm stats)
  bool ignore_unknown_keys = false;  // openpi's behaviour: extra top-level keys are ignored
  bool aloha_adapt_to_pi = true;     // openpi AlohaInputs/Outputs(adapt_to_pi=True) conversions
  std::string model_name;            // shown by /health (default: the checkpoint directory)
};

// One camera view, owned, HxWx3 row-major; exactly one of u8 / f32 is filled (f32 in [0, 1]).
struct ImageBuffer {
  int32_t height = 0, width = 0;
  std::vector<uint8_t> u8;
  std::vector<float> f32;
  bool present() const { return !u8.empty() || !f32.empty(); }
};

// A decoded predict request, ready for flashrt::Model::predict.
struct InferenceInput {
  std::vector<ImageBuffer> images;  // camera slots: base, left wrist, right wrist (absent = masked)
  std::optional<std::string> prompt;  // nullopt: the model's current (default) prompt
  std::vector<float> state;
  std::vector<float> noise;  // empty: sampled from the model's seeded generator
};

// What the reply keeps of the model's (horizon x action_dim) chunk.
struct OutputTransform {
  int dims = 0;               // leading action dims returned (openpi's output transforms)
  bool aloha_encode = false;  // ALOHA adapt_to_pi: joint flips + gripper conversion
};

struct InferenceOutput {
  int status = 200;   // 200, or the HTTP status of the failure (400 bad input, 500 engine)
  std::string error;  // message when status != 200
  int32_t horizon = 0, dim = 0;
  std::vector<float> actions;  // horizon x dim, row-major, unnormalized
  double queue_ms = 0;         // waiting for the worker
  double infer_ms = 0;         // flashrt::Model::predict alone
};

// A request-level problem: `status` is the HTTP status (400, 401, 404, 405, 413, 503, ...); the
// websocket route sends what() as an error text frame.
class RequestError : public std::runtime_error {
 public:
  RequestError(int status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

}  // namespace frt::server
