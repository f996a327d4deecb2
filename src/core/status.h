// Errors inside the engine: one exception type carrying a status code that maps 1:1 onto the
// C ABI's frt_status_t. The C ABI layer (src/engine/c_api.cpp) catches it and stores the message
// as the thread's last error; nothing in the library exits or aborts on user input.
//
// Message style: "<where>: <what>; expected X, got Y" plus a hint where one exists.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace frt {

// Keep in sync with frt_status_t in include/flashrt/flashrt.h (checked by a static_assert in
// c_api.cpp).
enum class Status : int {
  kOk = 0,
  kInvalidArgument = 1,
  kNotFound = 2,
  kNotSupported = 3,
  kOutOfMemory = 4,
  kCudaError = 5,
  kIoError = 6,
  kInternal = 7,
};

const char* status_name(Status s);

class Error : public std::runtime_error {
 public:
  Error(Status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  Status status() const { return status_; }

 private:
  Status status_;
};

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

// throw_error(Status::kInvalidArgument, "predict: images[0]: expected 3 channels, got ", c);
template <typename... Args>
[[noreturn]] void throw_error(Status status, Args&&... args) {
  throw Error(status, detail::concat(std::forward<Args>(args)...));
}

// Internal invariant check (not for user input: use throw_error with a good message there).
#define FRT_CHECK(cond, ...)                                                              \
  do {                                                                                    \
    if (!(cond))                                                                          \
      ::frt::throw_error(::frt::Status::kInternal, __FILE__, ":", __LINE__, ": check '", \
                         #cond, "' failed. ", ##__VA_ARGS__);                             \
  } while (0)

}  // namespace frt
