#include "tandem/frontend/choice_text.h"

#include <utility>

#include "tandem/tokenizer/tokenizer.h"

namespace tandem::frontend {

FinishReason ApiFinishReason(engine::FinishReason reason) {
  switch (reason) {
    case engine::FinishReason::kNone:
      return FinishReason::kNone;
    case engine::FinishReason::kStop:
    case engine::FinishReason::kStopString:
    case engine::FinishReason::kPrefillHandoff:
      return FinishReason::kStop;
    case engine::FinishReason::kLength:
      return FinishReason::kLength;
    case engine::FinishReason::kAborted:
      return FinishReason::kAborted;
    case engine::FinishReason::kError:
      return FinishReason::kError;
  }
  return FinishReason::kError;
}

TokenLogprob ApiLogprob(const tokenizer::Tokenizer& tokenizer, const engine::SampleResult& sample) {
  TokenLogprob out{sample.token, TokenText(tokenizer, sample.token), sample.logprob, {}};
  for (const engine::TokenLogprob& t : sample.top_logprobs) {
    out.top.push_back(TopLogprob{t.token, TokenText(tokenizer, t.token), t.logprob});
  }
  return out;
}

engine::SamplingParams SamplingParamsOf(const GenerateRequest& r) {
  engine::SamplingParams p;
  p.n = r.n;
  p.temperature = r.temperature;
  p.top_k = r.top_k;
  p.top_p = r.top_p;
  p.min_p = r.min_p;
  p.repetition_penalty = r.repetition_penalty;
  p.presence_penalty = r.presence_penalty;
  p.frequency_penalty = r.frequency_penalty;
  p.logit_bias = r.logit_bias;
  p.seed = r.seed;
  p.max_tokens = r.max_tokens;
  p.min_tokens = r.min_tokens;
  p.stop_token_ids = r.stop_token_ids;
  p.ignore_eos = r.ignore_eos;
  p.logprobs = r.logprobs;
  return p;
}

ChoiceText::ChoiceText(const tokenizer::Tokenizer& tokenizer, const GenerateRequest& request) {
  tokenizer::DetokenizerOptions options;
  options.skip_special_tokens = request.skip_special_tokens;
  options.stop_strings = request.stop;
  detok_ = std::make_unique<tokenizer::IncrementalDetokenizer>(tokenizer, std::move(options), request.prompt_token_ids);
}

void ChoiceText::Push(int32_t token) {
  if (!detok_->stopped()) pending_ += detok_->Push(token);
}

std::string ChoiceText::Take(bool last) {
  std::string out = std::move(pending_);
  pending_.clear();
  if (last && !detok_->stopped()) out += detok_->Finish();
  return out;
}

}  // namespace tandem::frontend
