// Scalar activations of the CPU backend (linear's epilogue, geglu, activation), evaluated in
// double and rounded once. Covered by tests/cpp/test_cpu_ops.cpp (LINEAR, GEGLU, ACTIVATION).
#pragma once

#include <cmath>

#include "backend/backend.h"

namespace frt::cpu {

// tanh approximation of GELU (PyTorch gelu(approximate="tanh"), used by SigLIP and Gemma).
inline float gelu_tanh(float x) {
  const double kSqrt2OverPi = 0.79788456080286535588;  // sqrt(2/pi)
  const double d = x;
  return static_cast<float>(0.5 * d * (1.0 + std::tanh(kSqrt2OverPi * (d + 0.044715 * d * d * d))));
}

inline float silu(float x) {
  const double d = x;
  return static_cast<float>(d / (1.0 + std::exp(-d)));
}

inline float apply_activation(Activation act, float x) {
  switch (act) {
    case Activation::kGeluTanh:
      return gelu_tanh(x);
    case Activation::kSilu:
      return silu(x);
    case Activation::kNone:
      break;
  }
  return x;
}

}  // namespace frt::cpu
