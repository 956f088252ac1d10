// Progress of a weight load: a single updating line on a terminal (stderr is a tty), log lines
// otherwise; silent for loads that finish within about a second. Thread-safe. Internal.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace tandem::model {

class LoadProgress {
 public:
  // `total_bytes`: the work to do, in bytes of source data.
  LoadProgress(std::string what, uint64_t total_bytes, bool enabled);
  ~LoadProgress();
  void Advance(uint64_t bytes);
  // Prints the final line (if anything was shown); the destructor calls it too.
  void Finish();

 private:
  void Show(bool final);

  std::string what_;
  uint64_t total_;
  bool enabled_;
  bool tty_;
  std::mutex mu_;
  uint64_t done_ = 0;
  bool shown_ = false;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace tandem::model
