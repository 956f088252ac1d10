#include "tandem/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace tandem::engine {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

int32_t Argmax(std::span<const float> x) {
  int32_t best = 0;
  for (int32_t i = 1; i < static_cast<int32_t>(x.size()); ++i) {
    if (x[i] > x[best]) best = i;
  }
  return best;
}

// log-sum-exp of `x` (max-shifted, in double).
double LogSumExp(std::span<const float> x) {
  float m = kNegInf;
  for (float v : x) m = std::max(m, v);
  double sum = 0.0;
  for (float v : x) sum += std::exp(static_cast<double>(v) - m);
  return m + std::log(sum);
}

}  // namespace

double UniformDraw(uint64_t seed, uint64_t counter) {
  const uint64_t bits = SplitMix64(seed ^ SplitMix64(counter + 0x632BE59BD9B4E019ULL));
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

uint64_t DeriveSeed(uint64_t seed, uint64_t stream) { return SplitMix64(seed ^ SplitMix64(~stream)); }

SampleResult Sampler::Sample(std::span<const float> logits, const SamplerInput& input) {
  const SamplingParams& p = *input.params;
  const int32_t vocab = static_cast<int32_t>(logits.size());
  SampleResult result;

  work_.assign(logits.begin(), logits.end());
  for (const auto& [token, bias] : p.logit_bias) work_[token] += bias;

  const bool penalties =
      p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
  if (penalties) {
    counts_.assign(static_cast<size_t>(vocab), 0);
    seen_.assign(static_cast<size_t>(vocab), 0);
    for (int32_t t : input.output) {
      if (t >= 0 && t < vocab) {
        ++counts_[t];
        seen_[t] = 1;
      }
    }
    if (p.repetition_penalty != 1.0f) {
      for (int32_t t : input.prompt) {
        if (t >= 0 && t < vocab) seen_[t] = 1;
      }
    }
    for (int32_t t = 0; t < vocab; ++t) {
      if (!seen_[t]) continue;
      float& x = work_[t];
      if (p.repetition_penalty != 1.0f) x = x > 0.0f ? x / p.repetition_penalty : x * p.repetition_penalty;
      if (counts_[t] > 0) x -= p.presence_penalty + p.frequency_penalty * static_cast<float>(counts_[t]);
    }
  }

  if (static_cast<int32_t>(input.output.size()) < p.min_tokens) {
    if (!p.ignore_eos) {
      for (int32_t t : input.eos_token_ids) {
        if (t >= 0 && t < vocab) work_[t] = kNegInf;
      }
    }
    for (int32_t t : p.stop_token_ids) work_[t] = kNegInf;
  }

  if (p.greedy() || p.top_k == 1) {
    result.token = Argmax(work_);
  } else {
    const float inv_t = 1.0f / p.temperature;
    candidates_.resize(static_cast<size_t>(vocab));
    std::iota(candidates_.begin(), candidates_.end(), 0);
    // Descending logit, ascending id on ties: a total order, so the result is deterministic.
    auto before = [&](int32_t a, int32_t b) {
      return work_[a] > work_[b] || (work_[a] == work_[b] && a < b);
    };
    const bool need_sorted = p.top_p < 1.0f;
    if (p.top_k > 0 && p.top_k < vocab) {
      std::nth_element(candidates_.begin(), candidates_.begin() + p.top_k, candidates_.end(), before);
      candidates_.resize(static_cast<size_t>(p.top_k));
    }
    if (need_sorted) std::sort(candidates_.begin(), candidates_.end(), before);
    float max_logit = kNegInf;
    for (int32_t t : candidates_) max_logit = std::max(max_logit, work_[t]);
    probs_.resize(candidates_.size());
    double total = 0.0;
    for (size_t i = 0; i < candidates_.size(); ++i) {
      const float x = work_[candidates_[i]];
      probs_[i] =
          x == kNegInf ? 0.0f : static_cast<float>(std::exp(static_cast<double>(x - max_logit) * inv_t));
      total += probs_[i];
    }
    size_t keep = candidates_.size();
    if (p.min_p > 0.0f) {
      // The largest probability is exp(0) = 1 before normalisation.
      const float floor = p.min_p;
      total = 0.0;
      for (size_t i = 0; i < keep; ++i) {
        if (probs_[i] < floor) probs_[i] = 0.0f;
        total += probs_[i];
      }
    }
    if (need_sorted) {
      const double target = p.top_p * total;
      double cum = 0.0;
      size_t i = 0;
      for (; i < keep; ++i) {
        cum += probs_[i];
        if (cum >= target) break;
      }
      keep = std::min(keep, i + 1);
      total = 0.0;
      for (size_t j = 0; j < keep; ++j) total += probs_[j];
    }
    const double u = UniformDraw(input.seed, input.output.size()) * total;
    double cum = 0.0;
    size_t chosen = keep;
    for (size_t i = 0; i < keep; ++i) {
      if (probs_[i] <= 0.0f) continue;
      cum += probs_[i];
      chosen = i;
      if (u < cum) break;
    }
    result.token = chosen < keep ? candidates_[chosen] : Argmax(work_);
  }

  if (p.logprobs.has_value()) {
    const double lse = LogSumExp(logits);
    result.logprob = static_cast<float>(logits[result.token] - lse);
    const int32_t k = std::min(*p.logprobs, vocab);
    if (k > 0) {
      candidates_.resize(static_cast<size_t>(vocab));
      std::iota(candidates_.begin(), candidates_.end(), 0);
      auto raw_before = [&](int32_t a, int32_t b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
      };
      std::partial_sort(candidates_.begin(), candidates_.begin() + k, candidates_.end(), raw_before);
      result.top_logprobs.reserve(static_cast<size_t>(k));
      for (int32_t i = 0; i < k; ++i) {
        result.top_logprobs.push_back({candidates_[i], static_cast<float>(logits[candidates_[i]] - lse)});
      }
    }
  }
  return result;
}

}  // namespace tandem::engine
