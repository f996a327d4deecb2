// Engine: load, validate, preprocess on the host side (state normalization, tokenization),
// run the model, unnormalize.
#include "engine/engine.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/log.h"
#include "backend/profiling_backend.h"
#include "core/status.h"
#include "io/prompt.h"
#include "io/safetensors.h"

namespace frt {

namespace {

// use_fp8: -1 auto (FP8 where the GPU has it), 0 bf16, 1 FP8 or an error. Which GEMMs of a
// model go FP8 is the weight loader's choice (models/weights.cpp), so that both models meet
// their accuracy bar under FP8.
std::unique_ptr<Backend> make_gpu_backend(int use_fp8) {
  std::string why;
  if (use_fp8 == 1) return make_cuda_backend(0, Precision::kFP8);  // throws where unsupported
  if (use_fp8 == -1 && cuda_supports_fp8(0, &why)) return make_cuda_backend(0, Precision::kFP8);
  if (use_fp8 == -1) log_info("bf16 GEMMs: ", why);
  return make_cuda_backend(0, Precision::kBF16);
}

std::unique_ptr<Backend> pick_backend(const std::string& hardware, int use_fp8) {
  if (hardware != "cpu" && hardware != "cuda" && hardware != "auto" && !hardware.empty())
    throw_error(Status::kInvalidArgument, "load_model: hardware='", hardware,
                "' is not one of 'auto', 'cpu', 'cuda'");
  std::string why;
  const bool has_cuda = hardware != "cpu" && cuda_available(&why);
  if (hardware == "cuda" && !has_cuda)
    throw_error(Status::kNotSupported, "load_model: hardware='cuda' but CUDA is not usable: ", why,
                "; use hardware='cpu' or 'auto'");
  if (has_cuda) return make_gpu_backend(use_fp8);
  if (use_fp8 == 1) {
    const std::string where = hardware == "cpu" ? std::string("hardware='cpu'") : why;
    throw_error(Status::kNotSupported, "load_model: use_fp8=True needs a CUDA GPU with FP8 ",
                "tensor cores (sm_89+), but this model runs on the CPU (", where,
                "); pass use_fp8=False");
  }
  if (hardware != "cpu") log_info("no usable GPU (", why, "): running on the CPU reference backend");
  return make_cpu_backend();
}

NormMode to_mode(int normalization) {
  switch (normalization) {
    case 1: return NormMode::kQuantile;
    case 2: return NormMode::kZScore;
    default: return NormMode::kNone;
  }
}

std::vector<float> standard_normal(std::mt19937_64& rng, int64_t n) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

}  // namespace

Engine::Engine(const std::string& dir, const LoadRequest& req) : dir_(dir) {
  if (!std::filesystem::is_directory(dir))
    throw_error(Status::kNotFound, "load_model: checkpoint directory '", dir,
                "' does not exist (make a synthetic one with `flashrt make-checkpoint`)");
  SafetensorsCheckpoint ckpt(dir);
  dims_ = detect_dims(ckpt, dir, req.config);
  opts_ = resolve_options(req.options, dims_.arch);
  mode_ = to_mode(opts_.normalization);

  stats_ = read_norm_stats(find_norm_stats(dir, opts_.norm_stats_asset));
  if (mode_ == NormMode::kQuantile &&
      (stats_.actions.q01.empty() || stats_.state.q01.empty()))
    throw_error(Status::kInvalidArgument, stats_.path,
                ": quantile normalization needs q01/q99 for state and actions; pass "
                "normalization='zscore' or use stats with quantiles");
  tokenizer_ = std::make_unique<Tokenizer>(find_tokenizer(opts_.tokenizer_path, dir));
  if (tokenizer_->vocab_size() > dims_.vocab)
    throw_error(Status::kInvalidArgument, tokenizer_->path(), ": tokenizer has ",
                tokenizer_->vocab_size(), " pieces but the embedding table only ", dims_.vocab,
                " rows; wrong tokenizer for this checkpoint?");

  part_params_.assign(7, 0);
  for (const WeightSpec& s : weight_table(dims_)) {
    if (s.optional && !ckpt.find(s.name)) continue;
    int64_t n = 1;
    for (int64_t x : s.shape) n *= x;
    part_params_[static_cast<int>(s.part)] += n;
  }

  backend_ = pick_backend(req.hardware, req.use_fp8);
  if (req.profile_ops) backend_ = std::make_unique<ProfilingBackend>(std::move(backend_));
  cuda_graphs_ = req.cuda_graphs && !req.profile_ops;
  dumps_.bind(backend_.get());
  model_ = make_policy(*backend_, ckpt, dims_, opts_);
  for (int i = 0; i < opts_.num_views; ++i)
    raw_views_.push_back(backend_->alloc(DType::kU8, {kMaxImagePixels * 3}, "raw_view"));
  token_ids_ = backend_->alloc(DType::kI32, {opts_.max_token_len}, "token_ids");
  prefix_len_ = backend_->alloc(DType::kI32, {1}, "prefix_len");
  x_ = backend_->alloc(DType::kF32, {opts_.action_horizon, dims_.action_dim}, "actions");
  if (dims_.arch == Arch::kPi0) state_ = backend_->alloc(DType::kF32, {1, dims_.state_dim}, "state");
  rng_.seed(opts_.seed);
  prompt_ = opts_.default_prompt;
  if (backend_->precision() == Precision::kFP8) load_cached_scales(ckpt);
}

Engine::~Engine() = default;

int64_t Engine::params_in(Part part) const { return part_params_[static_cast<int>(part)]; }

std::string Engine::profile_report() const {
  const auto* p = dynamic_cast<const ProfilingBackend*>(backend_.get());
  return p ? p->report() : backend_->stage_report();
}

void Engine::set_prompt(const std::string& prompt) { prompt_ = prompt; }

void Engine::check_images(const Observation& obs) const {
  const int n = static_cast<int>(obs.images.size());
  if (n < 1 || n > opts_.num_views)
    throw_error(Status::kInvalidArgument, "predict: got ", n, " image(s); this model was loaded ",
                "with num_views=", opts_.num_views, ", so 1..", opts_.num_views,
                " are allowed (pass None for a missing view)");
  int present = 0;
  for (int i = 0; i < n; ++i) {
    const ImageInput& im = obs.images[i];
    if (!im.data) continue;
    ++present;
    if (im.channels != 3)
      throw_error(Status::kInvalidArgument, "predict: images[", i, "] has ", im.channels,
                  " channels; expected 3 (RGB, HxWx3)");
    if (im.height < 1 || im.width < 1)
      throw_error(Status::kInvalidArgument, "predict: images[", i, "] has size ", im.height, "x",
                  im.width, "; expected positive height and width");
    if (static_cast<int64_t>(im.height) * im.width > kMaxImagePixels)
      throw_error(Status::kInvalidArgument, "predict: images[", i, "] is ", im.height, "x",
                  im.width, "; at most ", kMaxImagePixels,
                  " pixels are accepted (the model sees 224x224): downscale it first");
  }
  if (present == 0)
    throw_error(Status::kInvalidArgument, "predict: every image is absent; at least one view ",
                "(the base camera) is needed");
}

std::vector<float> Engine::normalized_state(const Observation& obs) const {
  std::vector<float> s(obs.state, obs.state + obs.state_dim);
  for (int i = 0; i < obs.state_dim; ++i)
    if (!std::isfinite(s[i]))
      throw_error(Status::kInvalidArgument, "predict: state[", i, "] is ", s[i],
                  "; every state value must be finite");
  if (static_cast<size_t>(obs.state_dim) > stats_.state.dim())
    throw_error(Status::kInvalidArgument, "predict: state has ", obs.state_dim,
                " values but the norm stats (", stats_.path, ") cover ", stats_.state.dim(),
                "; pass the robot's own state vector");
  normalize(s, stats_.state, mode_);
  return s;
}

ModelInputs Engine::upload_inputs(const Observation& obs, std::vector<float>& noise) {
  check_images(obs);
  const std::string prompt = obs.prompt ? std::string(obs.prompt) : prompt_;
  if (prompt.empty() && !obs.prompt)
    throw_error(Status::kInvalidArgument, "predict: no prompt given and no default prompt set; ",
                "pass prompt=... or call set_prompt()");
  const bool state_in_prompt = opts_.discrete_state_input == 1;
  std::vector<float> state;
  if (obs.state) {
    state = normalized_state(obs);
  } else if (state_in_prompt) {
    throw_error(Status::kInvalidArgument, "predict: this pi05 model puts the robot state into the ",
                "prompt (discrete_state_input=1), so state is required; pass state=... or load ",
                "with discrete_state_input=0");
  } else if (dims_.arch == Arch::kPi0) {
    throw_error(Status::kInvalidArgument, "predict: pi0 feeds the robot state to the action ",
                "expert (state_proj), so state is required; pass state=...");
  }
  if (dims_.arch == Arch::kPi0 && static_cast<int>(state.size()) > dims_.state_dim)
    throw_error(Status::kInvalidArgument, "predict: state has ", state.size(),
                " values; pi0's state_proj takes at most ", dims_.state_dim);
  const int H = opts_.action_horizon, D = dims_.action_dim;
  if (obs.noise && obs.noise_len != static_cast<int64_t>(H) * D)
    throw_error(Status::kInvalidArgument, "predict: noise has ", obs.noise_len,
                " values; expected action_horizon x action_dim = ", H, "x", D, " = ", H * D);
  noise =
      obs.noise ? std::vector<float>(obs.noise, obs.noise + obs.noise_len) : standard_normal(rng_, H * D);
  for (size_t i = 0; i < noise.size(); ++i)
    if (!std::isfinite(noise[i]))
      throw_error(Status::kInvalidArgument, "predict: noise[", i, "] is not finite");

  TokenizedPrompt tp = tokenize_prompt(*tokenizer_, prompt, state_in_prompt ? &state : nullptr,
                                       state_in_prompt, opts_.max_token_len);
  dumps_.clear();

  ModelInputs in;
  for (int slot = 0; slot < opts_.num_views; ++slot) {
    Tensor view;
    if (slot < static_cast<int>(obs.images.size()) && obs.images[slot].data) {
      const ImageInput& im = obs.images[slot];
      const int64_t n = static_cast<int64_t>(im.height) * im.width * 3;
      view = make_view(raw_views_[slot].data, DType::kU8, backend_->device(),
                       {im.height, im.width, 3});
      if (im.is_float) {
        // Float frames in [0, 1] are quantized as the camera would: round(x * 255).
        std::vector<uint8_t> u8(static_cast<size_t>(n));
        const float* f = static_cast<const float*>(im.data);
        for (int64_t k = 0; k < n; ++k) {
          const float v = f[k];
          if (!(v >= 0.f && v <= 1.f))
            throw_error(Status::kInvalidArgument, "predict: images[", slot, "] has value ", v,
                        " at flat index ", k, "; float images must lie in [0, 1]");
          u8[k] = static_cast<uint8_t>(std::lrint(v * 255.f));
        }
        backend_->copy_to_device(view, u8.data(), u8.size());
      } else {
        backend_->copy_to_device(view, im.data, static_cast<size_t>(n));
      }
    }
    in.views.push_back(view);
  }
  // The prompt padded to max_token_len (id 0) and its valid length on the device: no launch
  // parameter depends on the prompt, so one captured graph serves every prompt and state.
  std::vector<int32_t> ids(static_cast<size_t>(opts_.max_token_len), 0);
  std::copy(tp.ids.begin(), tp.ids.end(), ids.begin());
  backend_->copy_to_device(token_ids_, ids.data(), ids.size() * sizeof(int32_t));
  in.token_ids = token_ids_;
  in.num_tokens = static_cast<int>(tp.ids.size());
  const int32_t prefix_len = valid_prefix_rows(dims_, in);
  backend_->copy_to_device(prefix_len_, &prefix_len, sizeof(prefix_len));
  in.prefix_len = prefix_len_;
  backend_->copy_to_device(x_, noise.data(), noise.size() * sizeof(float));
  in.x = x_;
  if (dims_.arch == Arch::kPi0) {
    // openpi pads the normalized state with zeros to the model's state width.
    std::vector<float> padded(static_cast<size_t>(dims_.state_dim), 0.f);
    std::copy(state.begin(), state.end(), padded.begin());
    backend_->copy_to_device(state_, padded.data(), padded.size() * sizeof(float));
    in.state = state_;
  }
  if (dumps_.enabled()) {
    HostTensor h(DType::kF32, {static_cast<int64_t>(tp.ids.size())});
    for (size_t i = 0; i < tp.ids.size(); ++i) h.as<float>()[i] = static_cast<float>(tp.ids[i]);
    dumps_.record_host("prompt_ids", std::move(h));
  }
  return in;
}

void Engine::predict(const Observation& obs, std::vector<float>& actions) {
  std::vector<float> noise;
  ModelInputs in = upload_inputs(obs, noise);
  if (!calibrated_) {
    // FP8 without scales (none cached): calibrate on this observation first, then predict.
    log_info("FP8: no calibration scales for this checkpoint and view count; calibrating on the "
             "first observation (cached for the next load)");
    install_scales({measure_amax(in)}, 100.0);
    backend_->copy_to_device(x_, noise.data(), noise.size() * sizeof(float));  // x was overwritten
  }
  const int H = opts_.action_horizon, D = dims_.action_dim;

  // One graph per view layout (which views are present and their sizes: the resize kernels'
  // launch shapes); prompts and states never change it. Dumps copy tensors out between ops, so
  // they run eagerly.
  const bool use_graph = cuda_graphs_ && !dumps_.enabled();
  if (use_graph) {
    std::string key = "views";
    for (const Tensor& v : in.views) {
      key += '|';
      if (!v.data) {
        key += '-';
        continue;
      }
      key += std::to_string(v.dim(0));
      key += 'x';
      key += std::to_string(v.dim(1));
    }
    backend_->run_graph(key, [&] { model_->predict(in, dumps_); });
  } else {
    model_->predict(in, dumps_);
  }

  actions.resize(static_cast<size_t>(H) * D);
  backend_->synchronize();
  last_graph_ms_ = use_graph ? backend_->last_graph_ms() : -1.f;
  backend_->copy_to_host(actions.data(), x_, actions.size() * sizeof(float));
  unnormalize_rows(actions.data(), H, D, stats_.actions, mode_);
}

}  // namespace frt
