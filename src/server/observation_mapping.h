// openpi observation dicts → model inputs, and model actions → the robot's reply.
// Layouts (facts from openpi src/openpi/policies/{libero,droid,aloha}_policy.py, checked there):
//   LIBERO  observation/image → base, observation/wrist_image → left wrist, right wrist masked;
//           observation/state (8); reply: first 7 action dims (LiberoOutputs).
//   DROID   observation/exterior_image_1_left → base, observation/wrist_image_left → left
//           wrist, right wrist masked; state = joint_position (7) ++ gripper_position (1);
//           reply: first 8 dims (DroidOutputs).
//   ALOHA   images{cam_high → base, cam_left_wrist → left wrist, cam_right_wrist → right wrist;
//           cam_low accepted, unused; a missing wrist camera is masked}, CHW images; state (14);
//           with adapt_to_pi (openpi's default) state joints 1,2,8,9 are negated and the
//           grippers (6, 13) converted to pi's angular space; reply: first 14 dims, converted
//           back (AlohaOutputs).
//   model   image{base_0_rgb, left_wrist_0_rgb, right_wrist_0_rgb}, optional image_mask{...},
//           state, prompt; reply: the dims the action norm stats cover.
// Any layout: "prompt" (str), optional "noise" (action_horizon x action_dim, a FlashRT
// extension: fixed noise makes a reply reproducible). Images may be HxWx3 or 3xHxW, uint8 or
// float in [0, 1] (as openpi's _parse_image). docs/serving.md documents all of it.
// Tests: tests/python/test_server_openpi.py, tests/python/test_server_bad_inputs.py.
#pragma once

#include <string>
#include <vector>

#include "server/input_checks.h"
#include "server/openpi_codec.h"
#include "server/server_types.h"

namespace frt::server {

struct MappedRequest {
  InferenceInput input;
  OutputTransform output;
  RobotLayout layout = RobotLayout::kAuto;
};

// Picks the layout of `obs` from its keys (when opts.robot is kAuto) and maps it. Throws
// RequestError(400) naming the key and the problem.
MappedRequest map_observation(const msgpack::object& obs, const ServerOptions& opts,
                              const ModelShape& model);

// Reply slicing for `layout` (kModel also serves the HTTP route).
OutputTransform output_transform(RobotLayout layout, const ServerOptions& opts,
                                 const ModelShape& model);
// The reply's actions: horizon x transform.dims, row-major, as double.
std::vector<double> apply_output(const OutputTransform& t, const InferenceOutput& out);

}  // namespace frt::server
