// Where the benchmarks find the SmolLM2 GGUF that scripts/fetch_model.sh downloads:
// $TANDEM_SMOLLM2_GGUF, else ~/.cache/tandem/models/SmolLM2-135M-Instruct.Q4_1.gguf.
#pragma once

#include <cstdlib>
#include <string>

namespace tandem::bench {

inline std::string DefaultSmolLm2Gguf() {
  if (const char* env = std::getenv("TANDEM_SMOLLM2_GGUF"); env != nullptr && *env) return env;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/root") + "/.cache/tandem/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

}  // namespace tandem::bench
