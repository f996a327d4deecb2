// Logger implementation: one global sink guarded by a mutex.
#include "core/log.h"

#include <cstdio>
#include <mutex>

namespace frt {
namespace {
std::mutex g_mutex;
LogCallback g_callback = nullptr;
void* g_user = nullptr;
LogLevel g_min_level = LogLevel::kInfo;

const char* level_name(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "DEBUG";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kWarning: return "WARNING";
    case LogLevel::kError: return "ERROR";
  }
  return "?";
}
}  // namespace

void set_log_callback(LogCallback cb, void* user, LogLevel min_level) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_callback = cb;
  g_user = user;
  g_min_level = min_level;
}

void log_message(LogLevel level, const std::string& message) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (static_cast<int>(level) < static_cast<int>(g_min_level)) return;
  if (g_callback) {
    g_callback(static_cast<int>(level), message.c_str(), g_user);
  } else {
    std::fprintf(stderr, "[flashrt] %s: %s\n", level_name(level), message.c_str());
  }
}

}  // namespace frt
