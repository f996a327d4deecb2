// The HTTP JSON predict API: request body → InferenceInput, and the reply body.
//   POST /predict {"prompt": str?, "images": [img | null, ...], "image_shape": [H, W, 3]?,
//                  "state": [..]?, "noise": [[..]] | [..]?}
// An image is base64 (standard alphabet, padding optional, an optional "data:...;base64,"
// prefix): raw uint8 HxWx3 bytes when image_shape is given (it applies to every image), else a
// PNG/JPEG/BMP file. Images fill the camera slots base, left wrist, right wrist; null masks one.
// Reply: {"actions": [[..]], "shape": [H, D], "latency_ms", "queue_ms", "infer_ms"}.
// Unknown keys are an error (this is FlashRT's own schema). docs/serving.md documents it.
// Tests: tests/python/test_server_http.py, tests/python/test_server_bad_inputs.py.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "server/input_checks.h"
#include "server/observation_mapping.h"
#include "server/server_types.h"

namespace frt::server {

// Throws RequestError(400) naming the problem (bad JSON, bad base64, wrong sizes, NaN, ...).
InferenceInput parse_predict_json(std::string_view body, const ModelShape& model);

// Strict base64 decoding; throws RequestError(400) naming `what` and the offending position.
std::vector<uint8_t> decode_base64(std::string_view text, const std::string& what);

// {"actions": [[...]], "shape": [H, D], "latency_ms": ..., "queue_ms": ..., "infer_ms": ...}
std::string predict_reply_json(const std::vector<double>& actions, int horizon, int dims,
                               double latency_ms, double queue_ms, double infer_ms);
// {"error": message, "status": status}
std::string error_json(int status, const std::string& message);

}  // namespace frt::server
