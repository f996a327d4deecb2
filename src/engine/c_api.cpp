// The C ABI (include/flashrt/flashrt.h) over the Engine: every entry point catches all
// exceptions, maps them to a status and keeps the message as the thread's last error.
#include "flashrt/flashrt.h"

#include <cstring>
#include <mutex>
#include <new>
#include <string>

#include "core/log.h"
#include "core/status.h"
#include "engine/engine.h"
#include "models/synthetic_checkpoint.h"

static_assert(static_cast<int>(frt::Status::kInvalidArgument) == FRT_STATUS_INVALID_ARGUMENT);
static_assert(static_cast<int>(frt::Status::kNotFound) == FRT_STATUS_NOT_FOUND);
static_assert(static_cast<int>(frt::Status::kNotSupported) == FRT_STATUS_NOT_SUPPORTED);
static_assert(static_cast<int>(frt::Status::kOutOfMemory) == FRT_STATUS_OUT_OF_MEMORY);
static_assert(static_cast<int>(frt::Status::kCudaError) == FRT_STATUS_CUDA_ERROR);
static_assert(static_cast<int>(frt::Status::kIoError) == FRT_STATUS_IO_ERROR);
static_assert(static_cast<int>(frt::Status::kInternal) == FRT_STATUS_INTERNAL);

struct frt_model {
  std::mutex mutex;  // one predict at a time per model
  std::unique_ptr<frt::Engine> engine;
};

namespace {

thread_local std::string g_last_error;

frt_status_t fail(frt_status_t status, const std::string& message) {
  g_last_error = message;
  return status;
}

// Runs `fn`, converting exceptions into a status + last error.
template <typename Fn>
frt_status_t guarded(Fn&& fn) {
  try {
    fn();
    g_last_error.clear();
    return FRT_OK;
  } catch (const frt::Error& e) {
    return fail(static_cast<frt_status_t>(e.status()), e.what());
  } catch (const std::bad_alloc&) {
    return fail(FRT_STATUS_OUT_OF_MEMORY, "out of host memory");
  } catch (const std::exception& e) {
    return fail(FRT_STATUS_INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(FRT_STATUS_INTERNAL, "internal error: unknown exception");
  }
}

void require(bool ok, const char* what) {
  if (!ok) frt::throw_error(frt::Status::kInvalidArgument, what);
}

void copy_str(char* dst, size_t cap, const std::string& s) {
  std::strncpy(dst, s.c_str(), cap - 1);
  dst[cap - 1] = '\0';
}

}  // namespace

extern "C" {

FRT_API const char* frt_last_error(void) { return g_last_error.c_str(); }

FRT_API const char* frt_status_string(frt_status_t status) {
  return frt::status_name(static_cast<frt::Status>(status));
}

FRT_API const char* frt_version(void) { return FLASHRT_VERSION; }

FRT_API void frt_set_log_callback(frt_log_callback_t callback, void* user,
                                  frt_log_level_t min_level) {
  frt::set_log_callback(reinterpret_cast<frt::LogCallback>(callback), user,
                        static_cast<frt::LogLevel>(min_level));
}

FRT_API void frt_load_options_init(frt_load_options_t* o) {
  if (!o) return;
  std::memset(o, 0, sizeof(*o));
  o->struct_size = sizeof(*o);
  o->num_views = 2;
  o->discrete_state_input = -1;
  o->cuda_graphs = -1;
  o->use_fp8 = -1;
}

FRT_API frt_status_t frt_model_load(const char* dir, const frt_load_options_t* o,
                                    frt_model_t** out) {
  return guarded([&] {
    require(out != nullptr, "frt_model_load: out_model is NULL");
    *out = nullptr;
    require(dir != nullptr, "frt_model_load: checkpoint_dir is NULL");
    frt_load_options_t defaults;
    frt_load_options_init(&defaults);
    if (!o) o = &defaults;
    require(o->struct_size >= offsetof(frt_load_options_t, seed) + sizeof(uint64_t),
            "frt_model_load: options->struct_size is too small; call frt_load_options_init");
    // Fields after `seed` came with ABI additions: read them only when the caller's struct has
    // them.
    const bool has_exec_fields =
        o->struct_size >= offsetof(frt_load_options_t, profile_ops) + sizeof(int32_t);
    const bool has_fp8_field =
        o->struct_size >= offsetof(frt_load_options_t, use_fp8) + sizeof(int32_t);
    frt::LoadRequest req;
    req.config = o->config ? o->config : "auto";
    req.hardware = o->hardware ? o->hardware : "auto";
    frt::ModelOptions& m = req.options;
    m.num_views = o->num_views;
    m.num_steps = o->num_steps;
    m.action_horizon = o->action_horizon;
    m.max_token_len = o->max_token_len;
    m.discrete_state_input = o->discrete_state_input;
    m.normalization = o->normalization;
    m.norm_stats_asset = o->norm_stats_asset ? o->norm_stats_asset : "";
    m.tokenizer_path = o->tokenizer_path ? o->tokenizer_path : "";
    m.default_prompt = o->default_prompt ? o->default_prompt : "";
    m.seed = o->seed;
    if (has_exec_fields) {
      req.cuda_graphs = o->cuda_graphs != 0;
      req.profile_ops = o->profile_ops == 1;
    }
    if (has_fp8_field) {
      require(o->use_fp8 >= -1 && o->use_fp8 <= 1,
              "frt_model_load: use_fp8 must be -1 (auto), 0 (bf16) or 1 (fp8)");
      req.use_fp8 = o->use_fp8;
    }
    auto model = std::make_unique<frt_model>();
    model->engine = std::make_unique<frt::Engine>(dir, req);
    *out = model.release();
  });
}

FRT_API void frt_model_free(frt_model_t* model) { delete model; }

FRT_API frt_status_t frt_model_get_info(const frt_model_t* model, frt_model_info_t* info) {
  return guarded([&] {
    require(model && info, "frt_model_get_info: model or info is NULL");
    require(info->struct_size >= sizeof(frt_model_info_t),
            "frt_model_get_info: info->struct_size must be sizeof(frt_model_info_t)");
    const frt::Engine& e = *model->engine;
    const frt::ModelOptions& o = e.options();
    std::memset(reinterpret_cast<char*>(info) + sizeof(uint32_t), 0,
                sizeof(*info) - sizeof(uint32_t));
    copy_str(info->config, sizeof(info->config), frt::arch_name(e.dims().arch));
    copy_str(info->hardware, sizeof(info->hardware), e.backend().name());
    copy_str(info->device_name, sizeof(info->device_name),
             e.backend().device() == frt::Device::kCpu ? "cpu (fp32 reference)" : "cuda");
    info->num_views = o.num_views;
    info->num_steps = o.num_steps;
    info->action_horizon = o.action_horizon;
    info->action_dim = e.dims().action_dim;
    info->max_token_len = o.max_token_len;
    info->discrete_state_input = o.discrete_state_input;
    info->normalization = o.normalization;
    info->state_dim = static_cast<int32_t>(e.norm_stats().state.dim());
    info->robot_action_dim = static_cast<int32_t>(e.norm_stats().actions.dim());
    info->num_params_vision = e.params_in(frt::Part::kVision) + e.params_in(frt::Part::kProjector);
    info->num_params_llm = e.params_in(frt::Part::kLlm) + e.params_in(frt::Part::kEmbedding);
    info->num_params_expert = e.params_in(frt::Part::kExpert);
    info->num_params_other = e.params_in(frt::Part::kHeads);
  });
}

// The engine's view of a C observation (pointers borrowed), after the checks the C layer owns.
frt::Observation engine_observation(const frt_observation_t* obs, const char* fn) {
  require(obs->struct_size >= sizeof(frt_observation_t),
          (std::string(fn) + ": obs->struct_size must be sizeof(frt_observation_t)").c_str());
  require(obs->num_images >= 0 && (obs->num_images == 0 || obs->images),
          (std::string(fn) + ": images is NULL but num_images > 0").c_str());
  require(obs->state_dim >= 0 && (obs->state_dim == 0 || obs->state),
          (std::string(fn) + ": state is NULL but state_dim > 0").c_str());
  frt::Observation o;
  for (int i = 0; i < obs->num_images; ++i) {
    const frt_image_t& im = obs->images[i];
    if (im.data && im.dtype != FRT_IMAGE_U8 && im.dtype != FRT_IMAGE_F32)
      frt::throw_error(frt::Status::kInvalidArgument, "predict: images[", i, "].dtype is ",
                       im.dtype, "; expected FRT_IMAGE_U8 (0) or FRT_IMAGE_F32 (1)");
    o.images.push_back(frt::ImageInput{im.data, im.height, im.width, im.channels,
                                       im.dtype == FRT_IMAGE_F32});
  }
  o.prompt = obs->prompt;
  o.state = obs->state_dim > 0 ? obs->state : nullptr;
  o.state_dim = obs->state_dim;
  o.noise = obs->noise;
  o.noise_len = obs->noise_len;
  return o;
}

FRT_API frt_status_t frt_model_predict(frt_model_t* model, const frt_observation_t* obs,
                                       float* actions, int64_t capacity, int32_t* out_horizon,
                                       int32_t* out_dim) {
  return guarded([&] {
    require(model && obs, "frt_model_predict: model or obs is NULL");
    const frt::Observation o = engine_observation(obs, "frt_model_predict");
    std::lock_guard<std::mutex> lock(model->mutex);
    std::vector<float> result;
    frt::Engine& e = *model->engine;
    e.predict(o, result);
    const int32_t H = e.options().action_horizon, D = e.dims().action_dim;
    if (out_horizon) *out_horizon = H;
    if (out_dim) *out_dim = D;
    if (!actions || capacity < static_cast<int64_t>(result.size()))
      frt::throw_error(frt::Status::kInvalidArgument, "frt_model_predict: actions capacity ",
                       capacity, " is too small; need ", result.size(), " floats (", H, "x", D,
                       ")");
    std::memcpy(actions, result.data(), result.size() * sizeof(float));
  });
}

FRT_API float frt_model_last_gpu_ms(frt_model_t* model) {
  if (!model) return -1.f;
  std::lock_guard<std::mutex> lock(model->mutex);
  return model->engine->last_graph_ms();
}

FRT_API frt_status_t frt_model_profile_report(const frt_model_t* model, char* buffer,
                                             size_t capacity, size_t* needed) {
  return guarded([&] {
    require(model != nullptr, "frt_model_profile_report: model is NULL");
    const std::string r = model->engine->profile_report();
    if (needed) *needed = r.size() + 1;
    if (buffer && capacity > 0) copy_str(buffer, capacity, r);
  });
}

FRT_API frt_status_t frt_model_profile_reset(frt_model_t* model) {
  return guarded([&] {
    require(model != nullptr, "frt_model_profile_reset: model is NULL");
    std::lock_guard<std::mutex> lock(model->mutex);
    model->engine->profile_reset();
  });
}

FRT_API frt_status_t frt_model_set_prompt(frt_model_t* model, const char* prompt) {
  return guarded([&] {
    require(model && prompt, "frt_model_set_prompt: model or prompt is NULL");
    std::lock_guard<std::mutex> lock(model->mutex);
    model->engine->set_prompt(prompt);
  });
}

FRT_API const char* frt_model_prompt(const frt_model_t* model) {
  return model ? model->engine->prompt().c_str() : "";
}

FRT_API frt_status_t frt_model_recalibrate(frt_model_t* model) {
  return guarded([&] {
    require(model != nullptr, "frt_model_recalibrate: model is NULL");
    std::lock_guard<std::mutex> lock(model->mutex);
    model->engine->recalibrate();
  });
}

FRT_API frt_status_t frt_model_calibrate(frt_model_t* model, const frt_observation_t* observations,
                                         int32_t count, double percentile, int32_t max_samples) {
  return guarded([&] {
    require(model != nullptr, "frt_model_calibrate: model is NULL");
    require(count >= 1 && observations, "frt_model_calibrate: need count >= 1 observations");
    std::vector<frt::Observation> obs;
    for (int32_t i = 0; i < count; ++i)
      obs.push_back(engine_observation(&observations[i], "frt_model_calibrate"));
    std::lock_guard<std::mutex> lock(model->mutex);
    model->engine->calibrate(obs, percentile, max_samples);
  });
}

FRT_API frt_status_t frt_model_memory(const frt_model_t* model, int64_t* model_bytes,
                                      int64_t* device_bytes) {
  return guarded([&] {
    require(model != nullptr, "frt_model_memory: model is NULL");
    const frt::Backend& be = model->engine->backend();
    if (model_bytes) *model_bytes = static_cast<int64_t>(be.bytes_allocated());
    if (device_bytes) *device_bytes = static_cast<int64_t>(be.device_bytes_in_use());
  });
}

FRT_API const char* frt_model_precision(const frt_model_t* model) {
  return model ? model->engine->precision() : "";
}

FRT_API frt_status_t frt_model_enable_dumps(frt_model_t* model, int32_t enable) {
  return guarded([&] {
    require(model != nullptr, "frt_model_enable_dumps: model is NULL");
    std::lock_guard<std::mutex> lock(model->mutex);
    model->engine->dumps().set_enabled(enable != 0);
  });
}

FRT_API frt_status_t frt_model_get_dump(const frt_model_t* model, const char* name, float* out,
                                        int64_t capacity, int64_t* shape, int32_t* ndim) {
  return guarded([&] {
    require(model && name, "frt_model_get_dump: model or name is NULL");
    const frt::Dumps& d = model->engine->dumps();
    const frt::HostTensor* t = d.find(name);
    if (!t) {
      std::string have;
      for (const std::string& n : d.names()) have += (have.empty() ? "" : ", ") + n;
      frt::throw_error(frt::Status::kNotFound, "get_dump: no tensor named '", name, "'",
                       d.enabled() ? "" : " (dumps are disabled: enable_dumps(True) first)",
                       have.empty() ? "" : "; available: ", have);
    }
    if (ndim) *ndim = static_cast<int32_t>(t->shape().size());
    if (shape)
      for (size_t i = 0; i < 4; ++i) shape[i] = i < t->shape().size() ? t->shape()[i] : 0;
    if (!out || capacity == 0) return;  // shape query
    if (capacity < t->numel())
      frt::throw_error(frt::Status::kInvalidArgument, "get_dump: capacity ", capacity,
                       " < ", t->numel(), " elements of '", name, "'");
    std::memcpy(out, t->data(), t->nbytes());
  });
}

FRT_API frt_status_t frt_make_checkpoint(const char* out_dir, const char* config, const char* size,
                                         uint64_t seed) {
  return guarded([&] {
    require(out_dir && config && size, "frt_make_checkpoint: out_dir, config and size are required");
    frt::make_synthetic_checkpoint(out_dir, config, size, seed);
  });
}

}  // extern "C"
