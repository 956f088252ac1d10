// Logging through spdlog. The level comes from the deployment file (logging.level) and can be
// overridden with the TANDEM_LOG_LEVEL environment variable (trace|debug|info|warn|error|off).
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "spdlog/spdlog.h"

namespace tandem {

// Sets the process-wide level from `level`; TANDEM_LOG_LEVEL, when set, wins.
absl::Status InitLogging(std::string_view level, std::string_view component);

// Parses a level name; an unknown name is an InvalidArgument error listing the valid ones.
absl::StatusOr<spdlog::level::level_enum> ParseLogLevel(std::string_view level);

}  // namespace tandem

#define TLOG_TRACE(...) SPDLOG_TRACE(__VA_ARGS__)
#define TLOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define TLOG_INFO(...) spdlog::info(__VA_ARGS__)
#define TLOG_WARN(...) spdlog::warn(__VA_ARGS__)
#define TLOG_ERROR(...) spdlog::error(__VA_ARGS__)
