// Helpers shared by the C++ tests: fresh temporary directories and capturing frt::Error messages.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>

#include "core/status.h"

namespace frt::test {

// An empty directory under the system temp dir, unique per test name and process.
inline std::filesystem::path fresh_test_dir(const std::string& name) {
  std::filesystem::path p =
      std::filesystem::temp_directory_path() / ("frt_" + name + "_" + std::to_string(getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

// The message of the frt::Error that fn throws ("" if none); its status into *status.
inline std::string error_of(const std::function<void()>& fn, Status* status = nullptr) {
  try {
    fn();
  } catch (const Error& e) {
    if (status) *status = e.status();
    return e.what();
  }
  return "";
}

}  // namespace frt::test
