#include "load_progress.h"

#include <unistd.h>

#include <cstdio>

#include "tandem/core/logging.h"

namespace tandem::model {

namespace {
constexpr double kShowAfterSeconds = 1.0;
constexpr double kTtyIntervalSeconds = 0.1;
constexpr double kLogIntervalSeconds = 5.0;
}  // namespace

LoadProgress::LoadProgress(std::string what, uint64_t total_bytes, bool enabled)
    : what_(std::move(what)),
      total_(total_bytes),
      enabled_(enabled),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

LoadProgress::~LoadProgress() { Finish(); }

void LoadProgress::Advance(uint64_t bytes) {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mu_);
  done_ += bytes;
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double since = std::chrono::duration<double>(now - last_).count();
  if (elapsed < kShowAfterSeconds) return;
  if (shown_ && since < (tty_ ? kTtyIntervalSeconds : kLogIntervalSeconds)) return;
  last_ = now;
  Show(false);
}

void LoadProgress::Finish() {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  finished_ = true;
  if (shown_) Show(true);
}

void LoadProgress::Show(bool final) {
  shown_ = true;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double pct = total_ > 0 ? 100.0 * static_cast<double>(done_) / static_cast<double>(total_) : 100.0;
  const double mib = static_cast<double>(done_) / (1024.0 * 1024.0);
  const double total_mib = static_cast<double>(total_) / (1024.0 * 1024.0);
  if (tty_) {
    std::fprintf(stderr, "\r\033[Kloading %s: %5.1f%% (%.0f / %.0f MiB) %.1fs%s", what_.c_str(), pct, mib,
                 total_mib, elapsed, final ? "\n" : "");
    std::fflush(stderr);
  } else {
    TLOG_INFO("loading {}: {:.1f}% ({:.0f} / {:.0f} MiB) {:.1f}s", what_, pct, mib, total_mib, elapsed);
  }
}

}  // namespace tandem::model
