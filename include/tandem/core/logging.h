// Logging through spdlog. The level comes from the deployment file (logging.level) and can be
// overridden with the TANDEM_LOG_LEVEL environment variable (trace|debug|info|warn|error|off).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "spdlog/spdlog.h"

namespace tandem {

// Sets the process-wide level from `level`; TANDEM_LOG_LEVEL, when set, wins.
absl::Status InitLogging(std::string_view level, std::string_view component);

// Parses a level name; an unknown name is an InvalidArgument error listing the valid ones.
absl::StatusOr<spdlog::level::level_enum> ParseLogLevel(std::string_view level);

// Rate-limits a line that can repeat in a tight loop (an accept that keeps failing): Allow() says
// yes at most once per `interval` and counts the lines held back in between, to be reported with
// the next one that is logged. Thread-safe.
class LogLimiter {
 public:
  explicit LogLimiter(std::chrono::steady_clock::duration interval) : interval_(interval) {}
  // True when a line may be logged now; then `*held_back` is how many were not logged since the last.
  bool Allow(int64_t* held_back);

 private:
  const std::chrono::steady_clock::duration interval_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point next_{};
  int64_t held_back_ = 0;
};

}  // namespace tandem

#define TLOG_TRACE(...) SPDLOG_TRACE(__VA_ARGS__)
#define TLOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define TLOG_INFO(...) spdlog::info(__VA_ARGS__)
#define TLOG_WARN(...) spdlog::warn(__VA_ARGS__)
#define TLOG_ERROR(...) spdlog::error(__VA_ARGS__)
