// What the model tests share: where the SmolLM2 GGUF lives, and how far a logits row is from a
// reference row. Header-only; tests include it as "support/models.h" (tandem_add_test adds tests/).
#pragma once

#include <cmath>
#include <cstdlib>
#include <span>
#include <string>

namespace tandem::test_support {

// $TANDEM_SMOLLM2_GGUF, else $TANDEM_CACHE (default ~/.cache/tandem)/models/SmolLM2-135M-Instruct.Q4_1.gguf,
// where scripts/setup.sh fetches it.
inline std::string SmolLM2GgufPath() {
  if (const char* env = std::getenv("TANDEM_SMOLLM2_GGUF"); env != nullptr && *env != '\0') return env;
  std::string cache;
  if (const char* c = std::getenv("TANDEM_CACHE"); c != nullptr && *c != '\0') {
    cache = c;
  } else {
    const char* home = std::getenv("HOME");
    cache = std::string(home != nullptr ? home : "/root") + "/.cache/tandem";
  }
  return cache + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

// ||got - want|| / ||want|| over the row, in double.
inline double RelativeError(std::span<const float> got, std::span<const float> want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = double{got[i]} - double{want[i]};
    diff += d * d;
    norm += double{want[i]} * want[i];
  }
  return std::sqrt(diff / norm);
}

}  // namespace tandem::test_support
