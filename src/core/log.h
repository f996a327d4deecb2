// The engine's one logger: levels and a C callback (set through frt_set_log_callback).
// Default sink: stderr, "[flashrt] WARNING: ...". Thread-safe.
#pragma once

#include <string>

#include "core/status.h"

namespace frt {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };
using LogCallback = void (*)(int level, const char* message, void* user);

void set_log_callback(LogCallback cb, void* user, LogLevel min_level);
void log_message(LogLevel level, const std::string& message);

template <typename... Args>
void log_info(Args&&... args) { log_message(LogLevel::kInfo, detail::concat(std::forward<Args>(args)...)); }
template <typename... Args>
void log_warning(Args&&... args) { log_message(LogLevel::kWarning, detail::concat(std::forward<Args>(args)...)); }
template <typename... Args>
void log_debug(Args&&... args) { log_message(LogLevel::kDebug, detail::concat(std::forward<Args>(args)...)); }

}  // namespace frt
