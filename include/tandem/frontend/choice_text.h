// One choice's output as its tokens arrive, the same for both generators (in process and remote):
// the text each token completes (incremental detokenization, stop strings ending the choice), the
// held-back tail at the end, logprobs with their tokens' text, and the engine's finish reason in the
// API's terms.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tandem/engine/sampler.h"
#include "tandem/engine/sequence.h"
#include "tandem/frontend/generator.h"
#include "tandem/tokenizer/detokenizer.h"

namespace tandem::frontend {

// The engine's finish reason as the API reports it (a stop string and a KV hand-off count as stop).
FinishReason ApiFinishReason(engine::FinishReason reason);

// A token's logprob with its text and its top alternatives'.
TokenLogprob ApiLogprob(const tokenizer::Tokenizer& tokenizer, const engine::SampleResult& sample);

// The sampling parameters `request` asks for.
engine::SamplingParams SamplingParamsOf(const GenerateRequest& request);

class ChoiceText {
 public:
  // Decodes as the request asks (skip_special_tokens, stop strings), after its prompt. The
  // tokenizer outlives this.
  ChoiceText(const tokenizer::Tokenizer& tokenizer, const GenerateRequest& request);

  // Adds a generated token's text to what Take returns next; nothing once a stop string matched.
  void Push(int32_t token);
  // A stop string matched: the choice is over (its tokens after the match add nothing).
  bool stopped() const { return detok_->stopped(); }
  // The text pushed since the last Take; at the end of the choice (`last`) also the text held back
  // in case it began a stop string or a character.
  std::string Take(bool last);

 private:
  std::unique_ptr<tokenizer::IncrementalDetokenizer> detok_;
  std::string pending_;
};

}  // namespace tandem::frontend
