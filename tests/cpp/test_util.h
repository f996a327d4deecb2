// Helpers shared by the C++ tests: fresh temporary directories and capturing frt::Error messages.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/log.h"
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

// Captures log messages for one scope (restores stderr logging after).
class LogCapture {
 public:
  LogCapture() { set_log_callback(&LogCapture::sink, this, LogLevel::kDebug); }
  ~LogCapture() { set_log_callback(nullptr, nullptr, LogLevel::kInfo); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  std::vector<std::string> warnings() const {
    std::vector<std::string> w;
    for (const auto& [level, m] : messages)
      if (level == static_cast<int>(LogLevel::kWarning)) w.push_back(m);
    return w;
  }
  std::vector<std::pair<int, std::string>> messages;

 private:
  static void sink(int level, const char* msg, void* user) {
    static_cast<LogCapture*>(user)->messages.emplace_back(level, msg);
  }
};

inline bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace frt::test
