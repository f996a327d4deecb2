// The op table built from src/backend/ops.def: for each op its name, contract and which
// backends implement it. Covered by tests/cpp/test_op_table.cpp.
#pragma once

#include <string_view>
#include <vector>

namespace frt {

struct OpInfo {
  const char* name;
  const char* contract;
  bool has_cpu;   // CpuBackend overrides the method (checked at compile time)
  bool has_cuda;  // cuda_op_implemented(name)
};

// Every op of ops.def, in its order.
const std::vector<OpInfo>& op_table();
// nullptr when `name` is not an op.
const OpInfo* find_op(std::string_view name);

// Defined by the CUDA backend (src/backend/cuda) when compiled with CUDA; op_table.cpp defines it
// (always false) otherwise.
bool cuda_op_implemented(const char* name);

}  // namespace frt
