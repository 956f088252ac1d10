#include "tandem/engine/sampler.h"

#include <algorithm>
#include <array>
#include <bit>
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

namespace {

// Output tokens into the penalties' edits (edit(token): the token's edit, null outside the vocabulary):
// counted for presence and frequency, under the repetition penalty.
template <typename EditFn>
void CountOutput(std::span<const int32_t> tokens, EditFn edit) {
  for (int32_t t : tokens) {
    if (backend::LogitEdit* e = edit(t)) {
      ++e->count;
      e->repetition = true;
    }
  }
}

}  // namespace

void Sampler::Describe(const SamplerInput& input, int32_t vocab, backend::RowSampling* out) {
  const SamplingParams& p = *input.params;
  out->greedy = p.greedy() || p.top_k == 1;
  out->temperature = p.temperature;
  out->top_k = p.top_k;
  out->top_p = p.top_p;
  out->min_p = p.min_p;
  out->repetition_penalty = p.repetition_penalty;
  out->presence_penalty = p.presence_penalty;
  out->frequency_penalty = p.frequency_penalty;
  out->uniform = out->greedy ? 0.0 : UniformDraw(input.seed, input.output.size());
  out->edits.clear();
  if (slot_.size() != static_cast<size_t>(vocab)) slot_.assign(static_cast<size_t>(vocab), -1);
  std::vector<backend::LogitEdit>& edits = out->edits;
  auto edit = [&](int32_t t) -> backend::LogitEdit* {
    if (t < 0 || t >= vocab) return nullptr;
    if (slot_[t] < 0) {
      slot_[t] = static_cast<int32_t>(edits.size());
      edits.push_back({.token = t});
    }
    return &edits[static_cast<size_t>(slot_[t])];
  };
  for (const auto& [token, bias] : p.logit_bias) {
    if (backend::LogitEdit* e = edit(token)) e->bias += bias;
  }
  if (p.penalized()) {
    CountOutput(input.output, edit);
    if (p.repetition_penalty != 1.0f) {
      for (int32_t t : input.prompt) {
        if (backend::LogitEdit* e = edit(t)) e->repetition = true;
      }
    }
  }
  if (static_cast<int32_t>(input.output.size()) < p.min_tokens) {
    if (!p.ignore_eos) {
      for (int32_t t : input.eos_token_ids) {
        if (backend::LogitEdit* e = edit(t)) e->masked = true;
      }
    }
    for (int32_t t : p.stop_token_ids) {
      if (backend::LogitEdit* e = edit(t)) e->masked = true;
    }
  }
  for (const backend::LogitEdit& e : edits) slot_[e.token] = -1;
}

backend::LogitEdit* RowSamplingCache::Edit(int32_t token, int32_t vocab) {
  if (token < 0 || token >= vocab) return nullptr;
  auto [it, inserted] = slot_.try_emplace(token, static_cast<int32_t>(row_.edits.size()));
  if (inserted) row_.edits.push_back({.token = token});
  return &row_.edits[static_cast<size_t>(it->second)];
}

void RowSamplingCache::Build(const SamplerInput& input, int32_t vocab) {
  Sampler describer;
  describer.Describe(input, vocab, &row_);
  slot_.clear();
  for (size_t i = 0; i < row_.edits.size(); ++i) slot_[row_.edits[i].token] = static_cast<int32_t>(i);
  counted_ = input.output.size();
  masked_ = static_cast<int32_t>(input.output.size()) < input.params->min_tokens;
  built_ = true;
}

const backend::RowSampling& RowSamplingCache::Update(const SamplerInput& input, int32_t vocab) {
  const SamplingParams& p = *input.params;
  const bool unmask = masked_ && static_cast<int32_t>(input.output.size()) >= p.min_tokens;
  if (!built_ || unmask || input.output.size() < counted_) {
    Build(input, vocab);
    return row_;
  }
  if (p.penalized()) {
    CountOutput(input.output.subspan(counted_), [&](int32_t t) { return Edit(t, vocab); });
  }
  counted_ = input.output.size();
  row_.uniform = row_.greedy ? 0.0 : UniformDraw(input.seed, input.output.size());
  return row_;
}

SampleResult Sampler::Sample(std::span<const float> logits, const SamplerInput& input) {
  const SamplingParams& p = *input.params;
  const int32_t vocab = static_cast<int32_t>(logits.size());
  SampleResult result;

  Describe(input, vocab, &row_);
  work_.assign(logits.begin(), logits.end());
  for (const backend::LogitEdit& e : row_.edits) work_[e.token] = row_.Edit(work_[e.token], e);

  if (row_.greedy) {
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
      std::sort(candidates_.begin(), candidates_.end());  // ascending ids: the draw's order without top_p
    }
    float max_logit = kNegInf;
    for (int32_t t : candidates_) max_logit = std::max(max_logit, work_[t]);
    // min_p drops p < min_p (the largest probability is exp(0) = 1 before normalisation).
    auto prob = [&](int32_t t) {
      const float x = work_[t];
      const float pr =
          x == kNegInf ? 0.0f : static_cast<float>(std::exp(static_cast<double>(x - max_logit) * inv_t));
      return pr < p.min_p ? 0.0f : pr;
    };
    // Every candidate's probability once, and their total in ascending id order (the candidates'
    // order here), whatever order the walk takes.
    double total = 0.0;
    probs_.resize(candidates_.size());
    for (size_t i = 0; i < candidates_.size(); ++i) {
      probs_[i] = prob(candidates_[i]);
      total += probs_[i];
    }
    size_t keep = candidates_.size();
    if (need_sorted) {
      // The walk by descending logit needs the order only as far as the nucleus reaches: first the
      // candidates in the probability octaves (by float exponent) whose mass reaches top_p, sorted;
      // the rest only if rounding carries the walk past them. A peaked row sorts a handful, a flat
      // one about all of it (as a full sort would).
      const double target = p.top_p * total;
      std::array<double, 256> octave_mass{};
      std::array<size_t, 256> octave_count{};
      for (float pr : probs_) {
        if (pr <= 0.0f) continue;
        const size_t octave = 255 - ((std::bit_cast<uint32_t>(pr) >> 23) & 0xFFu);  // larger p first
        octave_mass[octave] += pr;
        ++octave_count[octave];
      }
      size_t head = 0;
      double mass = 0.0;
      for (size_t o = 0; o < octave_mass.size() && mass < target; ++o) {
        mass += octave_mass[o];
        head += octave_count[o];
      }
      head = std::clamp<size_t>(head, 1, candidates_.size());
      by_token_.resize(static_cast<size_t>(vocab));
      for (size_t i = 0; i < candidates_.size(); ++i) by_token_[static_cast<size_t>(candidates_[i])] = probs_[i];
      auto sort_range = [&](size_t from, size_t to) {  // the best of [from, end) into [from, to), in order
        const auto first = candidates_.begin() + static_cast<int64_t>(from);
        const auto last = candidates_.begin() + static_cast<int64_t>(to);
        if (last != candidates_.end()) std::nth_element(first, last, candidates_.end(), before);
        std::sort(first, last, before);
        for (size_t i = from; i < to; ++i) probs_[i] = by_token_[static_cast<size_t>(candidates_[i])];
      };
      sort_range(0, head);
      size_t sorted = head;
      double cum = 0.0;
      size_t i = 0;
      for (; i < keep; ++i) {
        if (i == sorted) {
          sort_range(sorted, candidates_.size());
          sorted = candidates_.size();
        }
        cum += probs_[i];
        if (cum >= target) break;
      }
      keep = std::min(keep, i + 1);
      total = 0.0;
      for (size_t j = 0; j < keep; ++j) total += probs_[j];
    }
    const double u = row_.uniform * total;
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
