// The hook through which text-level stop conditions (stop strings) reach the engine. The engine
// knows token ids only; the frontend wraps the tokenizer's IncrementalDetokenizer in a
// StopStringHook per sequence. Token-level stops (EOS, stop_token_ids, max_tokens, min_tokens,
// ignore_eos) are the engine's own.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

namespace tandem::engine {

class StopStringHook {
 public:
  virtual ~StopStringHook() = default;
  // Called on the engine thread once per new output token, in order (after min_tokens allows
  // stopping). Returns true when the text so far ends a stop string; the sequence then finishes
  // with FinishReason::kStopString and the frontend trims the text.
  virtual bool OnToken(int32_t token_id) = 0;
};

// Makes one hook per sequence (a request with n > 1 has n sequences).
using StopStringHookFactory = std::function<std::unique_ptr<StopStringHook>()>;

}  // namespace tandem::engine
