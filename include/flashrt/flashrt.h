/* FlashRT C ABI: realtime inference for Vision-Language-Action robot policies.
 *
 * Stable C interface: opaque handles, status codes plus a thread-local last-error message, and
 * option/input structs that begin with their own size so later versions can add fields.
 * No C++ types cross this boundary. The C++ API (flashrt.hpp) and the Python package
 * (python/flash_rt) are thin layers over it.
 *
 *   frt_load_options_t opt; frt_load_options_init(&opt);
 *   frt_model_t* m; if (frt_model_load("ckpt/", &opt, &m) != FRT_OK) puts(frt_last_error());
 *   ... frt_model_predict(m, &obs, actions, capacity, &horizon, &dim) ...
 *   frt_model_free(m);
 */
#ifndef FLASHRT_FLASHRT_H_
#define FLASHRT_FLASHRT_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define FRT_API __declspec(dllexport)
#else
#define FRT_API __attribute__((visibility("default")))
#endif

#define FRT_ABI_VERSION 1

typedef enum frt_status {
  FRT_OK = 0,
  FRT_STATUS_INVALID_ARGUMENT = 1, /* bad input: shape, dtype, NaN, unknown option */
  FRT_STATUS_NOT_FOUND = 2,        /* a file (checkpoint, tokenizer, asset) or key is missing */
  FRT_STATUS_NOT_SUPPORTED = 3,    /* e.g. hardware="cuda" without a GPU */
  FRT_STATUS_OUT_OF_MEMORY = 4,
  FRT_STATUS_CUDA_ERROR = 5,
  FRT_STATUS_IO_ERROR = 6, /* unreadable or malformed file */
  FRT_STATUS_INTERNAL = 7
} frt_status_t;

typedef struct frt_model frt_model_t;

/* Last error message of the calling thread ("" if none). Valid until the next failing call. */
FRT_API const char* frt_last_error(void);
FRT_API const char* frt_status_string(frt_status_t status);
FRT_API const char* frt_version(void);

/* ---- logging ---- */
typedef enum frt_log_level {
  FRT_LOG_DEBUG = 0,
  FRT_LOG_INFO = 1,
  FRT_LOG_WARNING = 2,
  FRT_LOG_ERROR = 3
} frt_log_level_t;
typedef void (*frt_log_callback_t)(frt_log_level_t level, const char* message, void* user);
/* NULL callback restores the default (stderr). Messages below min_level are dropped. */
FRT_API void frt_set_log_callback(frt_log_callback_t callback, void* user,
                                  frt_log_level_t min_level);

/* ---- loading ---- */
typedef enum frt_normalization {
  FRT_NORM_DEFAULT = 0, /* the config's: pi05 quantile, pi0 z-score */
  FRT_NORM_QUANTILE = 1,
  FRT_NORM_ZSCORE = 2,
  FRT_NORM_NONE = 3 /* actions returned normalized; state used as given */
} frt_normalization_t;

typedef struct frt_load_options {
  uint32_t struct_size;        /* sizeof(frt_load_options_t); set by frt_load_options_init */
  const char* config;          /* "pi05", "pi0" or NULL / "auto" (detected from the keys) */
  const char* hardware;        /* "auto" (CUDA if a GPU is present), "cpu", "cuda" */
  int32_t num_views;           /* 1..3 image slots the model is prepared for; default 2 */
  int32_t num_steps;           /* flow-matching steps; 0 = 10 */
  int32_t action_horizon;      /* 0 = 50 (openpi default; LIBERO configs use 10) */
  int32_t max_token_len;       /* 0 = config default (pi05 200, pi0 48) */
  int32_t discrete_state_input; /* pi05: state in the prompt. -1 = default (1), 0 = off */
  int32_t normalization;       /* frt_normalization_t */
  const char* norm_stats_asset; /* assets/<id>; NULL = the only one present */
  const char* tokenizer_path;  /* NULL = search (see docs/checkpoints.md) */
  const char* default_prompt;  /* used when predict gets no prompt; may be NULL */
  uint64_t seed;               /* noise RNG seed when predict gets no noise */
  int32_t cuda_graphs;         /* -1 default (on): capture the whole predict as one CUDA graph */
  int32_t profile_ops;         /* 1: time every op, eagerly (see frt_model_profile_report) */
  int32_t use_fp8;             /* -1 default: FP8 GEMMs on GPUs that have them (sm_89+),
                                  else bf16 (which GEMMs per model: docs/calibration.md);
                                  0: bf16; 1: FP8, an error where unsupported */
} frt_load_options_t;

FRT_API void frt_load_options_init(frt_load_options_t* options);
FRT_API frt_status_t frt_model_load(const char* checkpoint_dir, const frt_load_options_t* options,
                                    frt_model_t** out_model);
FRT_API void frt_model_free(frt_model_t* model);

/* ---- information ---- */
typedef struct frt_model_info {
  uint32_t struct_size;
  char config[16];   /* "pi05" / "pi0" */
  char hardware[16]; /* "cpu" / "cuda" */
  char device_name[128];
  int32_t num_views;
  int32_t num_steps;
  int32_t action_horizon;
  int32_t action_dim; /* model action dim (32) */
  int32_t max_token_len;
  int32_t discrete_state_input;
  int32_t normalization; /* resolved frt_normalization_t */
  int32_t state_dim;     /* dims covered by the state norm stats (robot state dim) */
  int32_t robot_action_dim; /* dims covered by the action norm stats */
  int64_t num_params_vision, num_params_llm, num_params_expert, num_params_other;
} frt_model_info_t;
FRT_API frt_status_t frt_model_get_info(const frt_model_t* model, frt_model_info_t* info);

/* ---- predict ---- */
typedef enum frt_image_dtype { FRT_IMAGE_U8 = 0, FRT_IMAGE_F32 = 1 } frt_image_dtype_t;

typedef struct frt_image {
  const void* data;   /* HxWx3, row-major; NULL = view absent (masked) */
  int32_t height, width, channels; /* channels must be 3 */
  int32_t dtype;      /* frt_image_dtype_t; F32 values in [0, 1] */
} frt_image_t;

typedef struct frt_observation {
  uint32_t struct_size;      /* sizeof(frt_observation_t) */
  const frt_image_t* images; /* [num_images]: base, left wrist, right wrist */
  int32_t num_images;        /* 1..num_views; missing slots are masked */
  const char* prompt;        /* NULL = the model's current prompt */
  const float* state;        /* robot state (unnormalized), NULL if none */
  int32_t state_dim;
  const float* noise;        /* (action_horizon x action_dim) standard normal, NULL = sampled */
  int32_t noise_len;
} frt_observation_t;

/* Writes action_horizon x action_dim unnormalized actions (row-major) into actions[capacity]. */
FRT_API frt_status_t frt_model_predict(frt_model_t* model, const frt_observation_t* obs,
                                       float* actions, int64_t capacity, int32_t* out_horizon,
                                       int32_t* out_dim);
/* GPU time (ms) of the last predict's CUDA-graph replay; < 0 when it ran eagerly (CPU backend,
 * dumps enabled, graphs off). */
FRT_API float frt_model_last_gpu_ms(frt_model_t* model);
/* Per-stage / per-op timing table of the predicts so far (load option profile_ops), else the
 * mean GPU time per stage of the CUDA graph replays so far ("" when there were none); writes at
 * most capacity bytes including the terminating NUL; *needed receives the full size. */
FRT_API frt_status_t frt_model_profile_report(const frt_model_t* model, char* buffer,
                                             size_t capacity, size_t* needed);
/* Clears what frt_model_profile_report has counted so far, so the next report covers only the
 * predicts after this call (leave out warm-up runs: the first predict also tunes GEMMs and, in
 * FP8 without cached scales, calibrates). */
FRT_API frt_status_t frt_model_profile_reset(frt_model_t* model);
/* Sets the prompt used when predict gets none. */
FRT_API frt_status_t frt_model_set_prompt(frt_model_t* model, const char* prompt);
/* The current prompt ("" if none). Valid until the next set_prompt. */
FRT_API const char* frt_model_prompt(const frt_model_t* model);
/* FP8: forgets the activation scales so the next predict recalibrates on its observation and
 * rewrites the calibration cache (no-op for fp32/bf16). */
FRT_API frt_status_t frt_model_recalibrate(frt_model_t* model);
/* FP8: calibrates the activation scales on observations[0..count) (at most max_samples of them;
 * <= 0: all): per GEMM input, the `percentile` (0..100; numpy's linear method) across the
 * observations of each one's max |x| (one observation: its max). Installs the scales (no graph
 * recapture) and writes the calibration cache. No-op for fp32/bf16. */
FRT_API frt_status_t frt_model_calibrate(frt_model_t* model, const frt_observation_t* observations,
                                         int32_t count, double percentile, int32_t max_samples);
/* "fp32" (CPU reference), "bf16" or "fp8": the GEMM precision the model runs in. */
FRT_API const char* frt_model_precision(const frt_model_t* model);
/* Memory: *model_bytes = what the model allocated (weights + buffers, in the backend's formats);
 * *device_bytes = what the whole GPU has in use now (context and libraries included; 0 on the
 * CPU). Either pointer may be NULL. */
FRT_API frt_status_t frt_model_memory(const frt_model_t* model, int64_t* model_bytes,
                                      int64_t* device_bytes);

/* ---- debugging: named intermediates of the last predict ("vision_tokens", "prefix_k.3",
 * "velocity.0", ...). Needs load option capture of intermediates; see docs. ---- */
FRT_API frt_status_t frt_model_enable_dumps(frt_model_t* model, int32_t enable);
/* Copies the named tensor (f32) into out[capacity]; writes its shape into shape[4]/ndim. */
FRT_API frt_status_t frt_model_get_dump(const frt_model_t* model, const char* name, float* out,
                                        int64_t capacity, int64_t* shape, int32_t* ndim);

/* ---- tools ---- */
/* Writes a synthetic checkpoint in the openpi PyTorch layout (random weights). size: "tiny" or
 * "full"; config: "pi05" or "pi0". */
FRT_API frt_status_t frt_make_checkpoint(const char* out_dir, const char* config, const char* size,
                                         uint64_t seed);

#ifdef __cplusplus
}
#endif

#endif /* FLASHRT_FLASHRT_H_ */
