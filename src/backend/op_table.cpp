// The op table: ops.def expanded into OpInfo rows. has_cpu is decided at compile time: the
// member pointer &CpuBackend::op names CpuBackend as its class only when CpuBackend overrides
// the method (an inherited pure virtual would name Backend), and a name in ops.def that is not a
// Backend method does not compile. Covered by tests/cpp/test_op_table.cpp.
#include "backend/op_table.h"

#include <cstring>
#include <type_traits>

#include "backend/cpu/cpu_backend.h"

namespace frt {

namespace {
template <typename T>
struct member_class;
template <typename C, typename R, typename... A>
struct member_class<R (C::*)(A...)> {
  using type = C;
};

template <typename MemberPtr>
constexpr bool declared_by_cpu() {
  return std::is_same_v<typename member_class<MemberPtr>::type, CpuBackend>;
}
}  // namespace

const std::vector<OpInfo>& op_table() {
  static const std::vector<OpInfo> table = {
#define FRT_OP(op_name, contract)                                         \
  {#op_name, contract, declared_by_cpu<decltype(&CpuBackend::op_name)>(), \
   cuda_op_implemented(#op_name)},
#include "backend/ops.def"
#undef FRT_OP
  };
  return table;
}

const OpInfo* find_op(std::string_view name) {
  for (const OpInfo& op : op_table())
    if (name == op.name) return &op;
  return nullptr;
}

#ifndef FLASHRT_WITH_CUDA
// No CUDA backend in this build: no op has a CUDA twin.
bool cuda_op_implemented(const char* /*name*/) { return false; }
#endif

}  // namespace frt
