// The openpi observation layouts (LIBERO, DROID, ALOHA, model-level) → InferenceInput, and the
// reply's action slicing (see observation_mapping.h for the table and its openpi sources).
// Tests: tests/python/test_server_openpi.py, tests/python/test_server_bad_inputs.py.
#include "server/observation_mapping.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

namespace frt::server {
namespace {

[[noreturn]] void bad(const std::string& message) { throw RequestError(400, message); }

struct CameraKey {
  const char* key;
  int slot;  // -1: accepted, not used (ALOHA cam_low)
  bool required;
};
constexpr CameraKey kLiberoCams[] = {{"observation/image", 0, true},
                                     {"observation/wrist_image", 1, true}};
constexpr CameraKey kDroidCams[] = {{"observation/exterior_image_1_left", 0, true},
                                    {"observation/wrist_image_left", 1, true}};
constexpr CameraKey kAlohaCams[] = {{"cam_high", 0, true},
                                    {"cam_left_wrist", 1, false},
                                    {"cam_right_wrist", 2, false},
                                    {"cam_low", -1, false}};
constexpr CameraKey kModelCams[] = {
    {"base_0_rgb", 0, false}, {"left_wrist_0_rgb", 1, false}, {"right_wrist_0_rgb", 2, false}};
constexpr const char* kSlotNames[] = {"base", "left wrist", "right wrist"};

// openpi aloha_policy.py: _joint_flip_mask and the gripper constants.
constexpr std::array<double, 14> kAlohaFlip = {1, -1, -1, 1, 1, 1, 1, 1, -1, -1, 1, 1, 1, 1};

double aloha_gripper_to_angular(double v) {
  v = v * (0.05800 - 0.01844) + 0.01844;   // Aloha's linear gripper range
  const double arm = 0.036, horn = 0.022;  // Interbotix linkage
  const double s = (horn * horn + v * v - arm * arm) / (2 * horn * v);
  const double r = std::asin(std::clamp(s, -1.0, 1.0));
  return (r - 0.5476) / (1.6296 - 0.5476);
}
double aloha_gripper_from_angular(double v) { return (v + 0.5476 - -0.6213) / (1.4910 - -0.6213); }

std::vector<std::string> known_keys(RobotLayout l) {
  switch (l) {
    case RobotLayout::kLibero:
      return {"observation/image", "observation/wrist_image", "observation/state", "prompt",
              "noise"};
    case RobotLayout::kDroid:
      return {"observation/exterior_image_1_left",
              "observation/wrist_image_left",
              "observation/joint_position",
              "observation/gripper_position",
              "prompt",
              "noise"};
    case RobotLayout::kAloha:
      return {"images", "state", "prompt", "noise"};
    default:
      return {"image", "image_mask", "state", "prompt", "noise"};
  }
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& k : v) s += (s.empty() ? "'" : ", '") + k + "'";
  return s.empty() ? "(none)" : s;
}

RobotLayout detect(const msgpack::object& obs) {
  if (find_key(obs, "observation/image")) return RobotLayout::kLibero;
  if (find_key(obs, "observation/exterior_image_1_left")) return RobotLayout::kDroid;
  if (find_key(obs, "images")) return RobotLayout::kAloha;
  if (find_key(obs, "image")) return RobotLayout::kModel;
  bad("cannot tell the observation layout from its keys " + joined(map_keys(obs)) +
      "; expected 'observation/image' (LIBERO), 'observation/exterior_image_1_left' (DROID), "
      "'images' (ALOHA) or 'image' (model-level), or start the server with --robot");
}

void put_image(InferenceInput& in, int slot, ImageBuffer img, const std::string& what,
               const ModelShape& model) {
  if (slot >= model.num_views)
    bad(what + " goes to camera slot " + std::to_string(slot) + " (" + kSlotNames[slot] +
        ") but the model was loaded with " + std::to_string(model.num_views) +
        " view(s); restart the server with --views " + std::to_string(slot + 1));
  if (static_cast<int>(in.images.size()) <= slot) in.images.resize(static_cast<size_t>(slot) + 1);
  in.images[static_cast<size_t>(slot)] = std::move(img);
}

// Cameras inside a map (ALOHA "images", model "image"), `mask` optional (model image_mask).
void map_camera_dict(const msgpack::object& dict, const std::string& name, const CameraKey* cams,
                     size_t ncams, const msgpack::object* mask, InferenceInput& in,
                     const ModelShape& model, FloatImages floats) {
  if (dict.type != msgpack::type::MAP || is_ndarray(dict))
    bad("'" + name + "' must be a map of camera name → image, got " + type_name(dict));
  std::vector<std::string> allowed;
  for (size_t c = 0; c < ncams; ++c) allowed.push_back(cams[c].key);
  for (const std::string& k : map_keys(dict))
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
      bad("'" + name + "' has an unknown camera '" + k + "'; expected some of " + joined(allowed));
  if (mask) {
    if (mask->type != msgpack::type::MAP || is_ndarray(*mask))
      bad("'image_mask' must be a map of camera name → bool, got " + type_name(*mask));
    for (const std::string& k : map_keys(*mask))
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
        bad("'image_mask' has an unknown camera '" + k + "'; expected some of " + joined(allowed));
  }
  for (size_t c = 0; c < ncams; ++c) {
    const std::string what = name + "/" + cams[c].key;
    const msgpack::object* v = find_key(dict, cams[c].key);
    if (!v) {
      if (cams[c].required) bad("'" + name + "' is missing the camera '" + cams[c].key + "'");
      continue;
    }
    ImageBuffer img = image_from_ndarray(as_ndarray(*v, what), what, floats);
    if (mask) {
      if (const msgpack::object* m = find_key(*mask, cams[c].key)) {
        std::vector<int64_t> shape;
        const std::vector<double> flag =
            to_numbers(*m, "image_mask/" + std::string(cams[c].key), &shape);
        if (flag.size() != 1) bad("image_mask/" + std::string(cams[c].key) + ": expected one bool");
        if (flag[0] == 0) continue;  // masked: the slot stays absent
      }
    }
    if (cams[c].slot >= 0) put_image(in, cams[c].slot, std::move(img), what, model);
  }
}

const msgpack::object& required(const msgpack::object& obs, const char* key, RobotLayout l) {
  const msgpack::object* v = find_key(obs, key);
  if (!v)
    bad(std::string("missing key '") + key + "' (" + layout_name(l) +
        " layout; its keys: " + joined(known_keys(l)) + ")");
  return *v;
}

std::vector<double> numbers(const msgpack::object& o, const std::string& what) {
  std::vector<int64_t> shape;
  std::vector<double> v = to_numbers(o, what, &shape);
  if (shape.size() > 1)
    bad(what + ": expected a 1-D array, got " + std::to_string(shape.size()) + " dims");
  return v;
}

}  // namespace

const char* layout_name(RobotLayout l) {
  switch (l) {
    case RobotLayout::kLibero:
      return "libero";
    case RobotLayout::kDroid:
      return "droid";
    case RobotLayout::kAloha:
      return "aloha";
    case RobotLayout::kModel:
      return "model";
    default:
      return "auto";
  }
}

bool parse_layout(const std::string& name, RobotLayout* out) {
  for (RobotLayout l : {RobotLayout::kAuto, RobotLayout::kLibero, RobotLayout::kDroid,
                        RobotLayout::kAloha, RobotLayout::kModel})
    if (name == layout_name(l)) return *out = l, true;
  return false;
}

OutputTransform output_transform(RobotLayout layout, const ServerOptions& opts,
                                 const ModelShape& model) {
  OutputTransform t;
  switch (layout) {
    case RobotLayout::kLibero:
      t.dims = 7;
      break;
    case RobotLayout::kDroid:
      t.dims = 8;
      break;
    case RobotLayout::kAloha:
      t.dims = 14, t.aloha_encode = opts.aloha_adapt_to_pi;
      break;
    default:
      t.dims = model.robot_action_dim > 0 ? model.robot_action_dim : model.action_dim;
  }
  if (opts.action_dims > 0) t.dims = opts.action_dims;
  t.dims = std::min(t.dims, model.action_dim);  // like openpi's actions[:, :N]
  return t;
}

std::vector<double> apply_output(const OutputTransform& t, const InferenceOutput& out) {
  const int dims = std::min(t.dims, out.dim);
  std::vector<double> r(static_cast<size_t>(out.horizon) * dims);
  for (int h = 0; h < out.horizon; ++h)
    for (int d = 0; d < dims; ++d) {
      double v = out.actions[static_cast<size_t>(h) * out.dim + d];
      if (t.aloha_encode && d < 14) {
        v *= kAlohaFlip[static_cast<size_t>(d)];
        if (d == 6 || d == 13) v = aloha_gripper_from_angular(v);
      }
      r[static_cast<size_t>(h) * dims + d] = v;
    }
  return r;
}

MappedRequest map_observation(const msgpack::object& obs, const ServerOptions& opts,
                              const ModelShape& model) {
  if (obs.type != msgpack::type::MAP || is_ndarray(obs) || is_npgeneric(obs))
    bad("expected the observation as a msgpack map (a Python dict), got " + type_name(obs));
  MappedRequest r;
  r.layout = opts.robot == RobotLayout::kAuto ? detect(obs) : opts.robot;
  InferenceInput& in = r.input;
  const std::vector<std::string> known = known_keys(r.layout);
  if (!opts.ignore_unknown_keys)
    for (const std::string& k : map_keys(obs))
      if (std::find(known.begin(), known.end(), k) == known.end())
        bad("unknown key '" + k + "' for the " + std::string(layout_name(r.layout)) +
            " layout (known: " + joined(known) +
            "); start the server with --ignore-unknown-keys "
            "to ignore extra keys as openpi does");
  std::vector<double> state;
  std::string state_what = "observation/state";
  switch (r.layout) {
    case RobotLayout::kLibero:
    case RobotLayout::kDroid: {
      const bool libero = r.layout == RobotLayout::kLibero;
      const CameraKey* cams = libero ? kLiberoCams : kDroidCams;
      for (int c = 0; c < 2; ++c) {
        const std::string what = cams[c].key;
        put_image(in, cams[c].slot,
                  image_from_ndarray(as_ndarray(required(obs, cams[c].key, r.layout), what), what,
                                     FloatImages::kOpenpiTruncate),
                  what, model);
      }
      if (libero) {
        state = numbers(required(obs, "observation/state", r.layout), state_what);
      } else {
        state = numbers(required(obs, "observation/joint_position", r.layout),
                        "observation/joint_position");
        const std::vector<double> g =
            numbers(required(obs, "observation/gripper_position", r.layout),
                    "observation/gripper_position");
        state.insert(state.end(), g.begin(), g.end());
        state_what = "observation/joint_position ++ observation/gripper_position";
      }
      break;
    }
    case RobotLayout::kAloha: {
      map_camera_dict(required(obs, "images", r.layout), "images", kAlohaCams, 4, nullptr, in,
                      model, FloatImages::kOpenpiTruncate);
      state_what = "state";
      state = numbers(required(obs, "state", r.layout), state_what);
      if (opts.aloha_adapt_to_pi) {
        checked_state(state, state_what, model);  // finite and the right length, before the math
        if (state.size() != 14)
          bad("state has " + std::to_string(state.size()) +
              " values; ALOHA with adapt_to_pi expects 14 "
              "(2 x 6 joints + gripper); start the server with --no-aloha-adapt for other robots");
        for (size_t i = 0; i < 14; ++i) state[i] *= kAlohaFlip[i];
        state[6] = aloha_gripper_to_angular(state[6]);
        state[13] = aloha_gripper_to_angular(state[13]);
      }
      break;
    }
    default: {
      map_camera_dict(required(obs, "image", r.layout), "image", kModelCams, 3,
                      find_key(obs, "image_mask"), in, model, FloatImages::kEngineRound);
      state_what = "state";
      if (const msgpack::object* s = find_key(obs, "state")) state = numbers(*s, state_what);
      break;
    }
  }
  if (in.images.empty() || !in.images[0].present()) {
    bool any = false;
    for (const ImageBuffer& im : in.images) any = any || im.present();
    if (!any) bad("no camera image in the observation; at least the base camera is needed");
  }
  if (!state.empty() || r.layout != RobotLayout::kModel)
    in.state = checked_state(state, state_what, model);
  if (const msgpack::object* p = find_key(obs, "prompt")) {
    if (p->type == msgpack::type::STR)
      in.prompt = checked_prompt(std::string(p->via.str.ptr, p->via.str.size), "prompt");
    else if (p->type != msgpack::type::NIL)
      bad("prompt must be a str, got " + type_name(*p));
  }
  if (const msgpack::object* n = find_key(obs, "noise"))
    in.noise = checked_noise(to_numbers(*n, "noise"), "noise", model);
  r.output = output_transform(r.layout, opts, model);
  return r;
}

}  // namespace frt::server
