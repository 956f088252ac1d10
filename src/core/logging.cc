#include "tandem/core/logging.h"

#include <cstdlib>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace tandem {

absl::StatusOr<spdlog::level::level_enum> ParseLogLevel(std::string_view level) {
  const std::string name = absl::AsciiStrToLower(std::string(level));
  if (name == "trace") return spdlog::level::trace;
  if (name == "debug") return spdlog::level::debug;
  if (name == "info") return spdlog::level::info;
  if (name == "warn" || name == "warning") return spdlog::level::warn;
  if (name == "error") return spdlog::level::err;
  if (name == "critical") return spdlog::level::critical;
  if (name == "off") return spdlog::level::off;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown log level '", std::string(level), "': expected one of trace, debug, info, warn, error, critical, off"));
}

bool LogLimiter::Allow(int64_t* held_back) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  if (now < next_) {
    ++held_back_;
    return false;
  }
  next_ = now + interval_;
  *held_back = held_back_;
  held_back_ = 0;
  return true;
}

absl::Status InitLogging(std::string_view level, std::string_view component) {
  std::string chosen(level);
  const char* env = std::getenv("TANDEM_LOG_LEVEL");
  if (env != nullptr && *env != '\0') chosen = env;
  auto parsed = ParseLogLevel(chosen);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        env != nullptr && *env != '\0' ? "TANDEM_LOG_LEVEL: " : "logging.level: ", parsed.status().message()));
  }
  spdlog::set_level(*parsed);
  spdlog::set_pattern(absl::StrCat("[%Y-%m-%d %H:%M:%S.%e] [", std::string(component), "] [%^%l%$] %v"));
  return absl::OkStatus();
}

}  // namespace tandem
