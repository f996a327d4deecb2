// Checks and conversions of single request values shared by both protocols (see
// input_checks.cpp). Tests: tests/python/test_server_bad_inputs.py.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "server/openpi_codec.h"
#include "server/server_types.h"

namespace frt::server {

// The model facts requests are checked against.
struct ModelShape {
  int num_views = 0, state_dim = 0, action_horizon = 0, action_dim = 0, robot_action_dim = 0;
};

// Each throws RequestError(400) naming `what`.
std::vector<float> checked_state(const std::vector<double>& values, const std::string& what,
                                 const ModelShape& model);
std::vector<float> checked_noise(const std::vector<double>& values, const std::string& what,
                                 const ModelShape& model);
std::string checked_prompt(const std::string& text, const std::string& what);
// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629, strict), 0 if there is none.
size_t utf8_sequence(const std::string& s, size_t i);
// `s` with every byte that is not part of well-formed UTF-8 written as \xNN: error messages
// quote client bytes (keys), and a websocket text frame must be valid UTF-8.
std::string utf8_clean(const std::string& s);
// How a float image in [0, 1] reaches the model: as openpi's robot input transforms do
// ((255 * x).astype(uint8), truncating: LIBERO, DROID, ALOHA), or as floats the engine
// quantizes with rounding (model-level keys and FlashRT's own API).
enum class FloatImages { kOpenpiTruncate, kEngineRound };
// HxWx3 or 3xHxW (CHW when the last dim is not 3 and the first is), uint8 or float in [0, 1].
ImageBuffer image_from_ndarray(const NdArray& a, const std::string& what, FloatImages floats);
// Size limits every image meets (the engine's: at most 2048*2048 pixels).
void check_image_size(int64_t height, int64_t width, const std::string& what);

}  // namespace frt::server
