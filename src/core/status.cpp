// Status names for messages and the C ABI's frt_status_string.
#include "core/status.h"

namespace frt {

const char* status_name(Status s) {
  switch (s) {
    case Status::kOk: return "ok";
    case Status::kInvalidArgument: return "invalid argument";
    case Status::kNotFound: return "not found";
    case Status::kNotSupported: return "not supported";
    case Status::kOutOfMemory: return "out of memory";
    case Status::kCudaError: return "CUDA error";
    case Status::kIoError: return "I/O error";
    case Status::kInternal: return "internal error";
  }
  return "unknown status";
}

}  // namespace frt
