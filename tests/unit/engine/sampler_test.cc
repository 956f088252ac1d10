#include "tandem/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace tandem::engine {
namespace {

struct Fixture {
  SamplingParams params;
  std::vector<int32_t> prompt;
  std::vector<int32_t> output;
  std::vector<int32_t> eos;
  Sampler sampler;

  SampleResult Run(const std::vector<float>& logits, uint64_t seed = 1) {
    return sampler.Sample(logits, SamplerInput{&params, prompt, output, seed, eos});
  }
  // Tokens drawn over `n` seeds, with counts.
  std::map<int32_t, int> Histogram(const std::vector<float>& logits, int n) {
    std::map<int32_t, int> h;
    for (int s = 0; s < n; ++s) ++h[Run(logits, 1000 + s).token];
    return h;
  }
};

std::vector<float> Logprobs(const std::vector<float>& p) {
  std::vector<float> l;
  for (float x : p) l.push_back(std::log(x));
  return l;
}

TEST(SamplerTest, GreedyTakesArgmaxLowestIdOnTies) {
  Fixture f;
  f.params.temperature = 0.0f;
  EXPECT_EQ(f.Run({0.1f, 2.0f, -1.0f, 2.0f}).token, 1);
  EXPECT_EQ(f.Run({5.0f, 2.0f}).token, 0);
}

TEST(SamplerTest, TemperatureSpreadsOrSharpens) {
  Fixture f;
  const auto logits = Logprobs({0.6f, 0.3f, 0.1f});
  f.params.temperature = 1.0f;
  auto h = f.Histogram(logits, 4000);
  EXPECT_NEAR(h[0] / 4000.0, 0.6, 0.04);
  EXPECT_NEAR(h[1] / 4000.0, 0.3, 0.04);
  EXPECT_NEAR(h[2] / 4000.0, 0.1, 0.03);
  f.params.temperature = 0.05f;  // nearly greedy
  h = f.Histogram(logits, 500);
  EXPECT_EQ(h[0], 500);
  f.params.temperature = 10.0f;  // nearly uniform
  h = f.Histogram(logits, 3000);
  EXPECT_GT(h[2], 800);
}

TEST(SamplerTest, TopKKeepsOnlyTheKBest) {
  Fixture f;
  f.params.top_k = 2;
  const auto h = f.Histogram(Logprobs({0.3f, 0.25f, 0.2f, 0.15f, 0.1f}), 2000);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_TRUE(h.contains(0) && h.contains(1));
}

TEST(SamplerTest, TopPKeepsTheSmallestNucleus) {
  Fixture f;
  const auto logits = Logprobs({0.2f, 0.5f, 0.3f});
  f.params.top_p = 0.75f;  // 0.5 + 0.3 reach it
  auto h = f.Histogram(logits, 2000);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_FALSE(h.contains(0));
  EXPECT_NEAR(h[1] / 2000.0, 0.5 / 0.8, 0.04);
  f.params.top_p = 0.4f;  // the top token alone
  h = f.Histogram(logits, 300);
  EXPECT_EQ(h[1], 300);
}

TEST(SamplerTest, MinPDropsUnlikelyTokens) {
  Fixture f;
  f.params.min_p = 0.5f;  // keep p >= 0.5 * 0.4
  const auto h = f.Histogram(Logprobs({0.4f, 0.3f, 0.21f, 0.09f}), 2000);
  EXPECT_EQ(h.size(), 3u);
  EXPECT_FALSE(h.contains(3));
}

TEST(SamplerTest, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
  Fixture f;
  f.params.temperature = 0.0f;
  f.params.repetition_penalty = 2.0f;
  f.prompt = {0};
  EXPECT_EQ(f.Run({3.0f, 2.0f}).token, 1);  // 3/2 < 2
  f.prompt = {};
  f.output = {1};
  EXPECT_EQ(f.Run({-1.0f, -0.6f}).token, 0);  // -0.6*2 < -1
  f.params.repetition_penalty = 1.0f;
  EXPECT_EQ(f.Run({-1.0f, -0.6f}).token, 1);
}

TEST(SamplerTest, PresenceAndFrequencyPenaltiesUseOutputCounts) {
  Fixture f;
  f.params.temperature = 0.0f;
  f.output = {0, 0, 0, 1};
  const std::vector<float> logits = {5.0f, 4.5f, 3.0f};
  f.params.presence_penalty = 1.0f;  // 4 vs 3.5 vs 3
  EXPECT_EQ(f.Run(logits).token, 0);
  f.params.presence_penalty = 0.0f;
  f.params.frequency_penalty = 0.5f;  // 3.5 vs 4.0 vs 3
  EXPECT_EQ(f.Run(logits).token, 1);
  f.params.frequency_penalty = 2.0f;  // -1 vs 2.5 vs 3
  EXPECT_EQ(f.Run(logits).token, 2);
  // Prompt tokens don't count for these.
  f.output = {};
  f.prompt = {0, 0, 0};
  EXPECT_EQ(f.Run(logits).token, 0);
}

TEST(SamplerTest, LogitBiasShiftsChoice) {
  Fixture f;
  f.params.temperature = 0.0f;
  f.params.logit_bias = {{2, 10.0f}};
  EXPECT_EQ(f.Run({1.0f, 2.0f, 0.0f}).token, 2);
  f.params.logit_bias = {{1, -100.0f}};
  EXPECT_EQ(f.Run({1.0f, 2.0f, 0.0f}).token, 0);
}

TEST(SamplerTest, SeedMakesDrawsReproducible) {
  Fixture f;
  const auto logits = Logprobs({0.25f, 0.25f, 0.25f, 0.25f});
  std::vector<int32_t> a, b, c;
  for (int step = 0; step < 64; ++step) {
    f.output.assign(static_cast<size_t>(step), 0);  // the draw counter is the output length
    a.push_back(f.Run(logits, 42).token);
    b.push_back(f.Run(logits, 42).token);
    c.push_back(f.Run(logits, 43).token);
  }
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_GT(std::set<int32_t>(a.begin(), a.end()).size(), 2u);
  EXPECT_NE(DeriveSeed(42, 1), DeriveSeed(42, 2));
}

TEST(SamplerTest, MinTokensMasksEosAndStopTokens) {
  Fixture f;
  f.params.temperature = 0.0f;
  f.eos = {0};
  f.params.stop_token_ids = {1};
  f.params.min_tokens = 2;
  const std::vector<float> logits = {9.0f, 8.0f, 1.0f};
  f.output = {2};
  EXPECT_EQ(f.Run(logits).token, 2);
  f.output = {2, 2};
  EXPECT_EQ(f.Run(logits).token, 0);
  // ignore_eos leaves EOS to be sampled (it just doesn't stop the sequence).
  f.output = {2};
  f.params.ignore_eos = true;
  EXPECT_EQ(f.Run(logits).token, 0);
}

TEST(SamplerTest, LogprobsAreRawLogSoftmaxWithSortedTop) {
  Fixture f;
  f.params.temperature = 0.0f;
  f.params.logprobs = 2;
  f.params.logit_bias = {{2, 10.0f}};  // processing changes the choice, not the reported logprobs
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f};
  const auto r = f.Run(logits);
  const double lse = std::log(std::exp(1.0) + std::exp(3.0) + std::exp(2.0));
  EXPECT_EQ(r.token, 2);
  EXPECT_NEAR(r.logprob, 2.0 - lse, 1e-6);
  ASSERT_EQ(r.top_logprobs.size(), 2u);
  EXPECT_EQ(r.top_logprobs[0].token, 1);
  EXPECT_NEAR(r.top_logprobs[0].logprob, 3.0 - lse, 1e-6);
  EXPECT_EQ(r.top_logprobs[1].token, 2);
  f.params.logprobs.reset();
  EXPECT_TRUE(f.Run(logits).top_logprobs.empty());
}

TEST(SamplingParamsTest, ValidateNamesFieldAndValue) {
  auto invalid = [](const absl::Status& s, const std::string& message) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_EQ(s.message(), message);
  };
  SamplingParams p;
  EXPECT_TRUE(p.Validate(100).ok());
  p.top_p = 0.0f;
  invalid(p.Validate(100), "top_p: expected in (0, 1], found 0");
  p = {};
  p.logit_bias = {{100, 1.0f}};
  invalid(p.Validate(100), "logit_bias: expected token ids in [0, 100), found 100");
  p = {};
  p.min_tokens = 20;
  p.max_tokens = 10;
  invalid(p.Validate(100), "min_tokens: expected in [0, max_tokens=10], found 20");
  p = {};
  p.stop_token_ids = {-1};
  invalid(p.Validate(100), "stop_token_ids: expected token ids in [0, 100), found -1");
  p = {};
  p.n = 0;
  invalid(p.Validate(100), "n: expected >= 1, found 0");
}

// The kept description grows with the output and stays what Describe would give, through the
// moment min_tokens is reached (its masks go).
TEST(RowSamplingCacheTest, UpdateEqualsAFreshDescriptionAtEveryStep) {
  SamplingParams params;
  params.temperature = 0.9f;
  params.repetition_penalty = 1.3f;
  params.presence_penalty = 0.4f;
  params.frequency_penalty = 0.2f;
  params.logit_bias = {{3, 1.5f}, {40, -2.0f}};
  params.min_tokens = 5;
  params.stop_token_ids = {7};
  const std::vector<int32_t> prompt = {1, 2, 3, 2, 9, 40, 9};
  const std::vector<int32_t> eos = {0};
  std::vector<int32_t> output;
  RowSamplingCache cache;
  Sampler describer;
  backend::RowSampling fresh;
  auto sorted = [](std::vector<backend::LogitEdit> e) {
    std::sort(e.begin(), e.end(), [](const auto& a, const auto& b) { return a.token < b.token; });
    return e;
  };
  for (int step = 0; step < 12; ++step) {
    const SamplerInput in{.params = &params, .prompt = prompt, .output = output, .seed = 99, .eos_token_ids = eos};
    const backend::RowSampling& kept = cache.Update(in, 64);
    describer.Describe(in, 64, &fresh);
    EXPECT_EQ(kept.uniform, fresh.uniform) << "step " << step;
    EXPECT_EQ(kept.greedy, fresh.greedy);
    const auto a = sorted(kept.edits), b = sorted(fresh.edits);
    ASSERT_EQ(a.size(), b.size()) << "step " << step;
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].token, b[i].token) << "step " << step;
      EXPECT_EQ(a[i].bias, b[i].bias) << "step " << step << " token " << a[i].token;
      EXPECT_EQ(a[i].count, b[i].count) << "step " << step << " token " << a[i].token;
      EXPECT_EQ(a[i].repetition, b[i].repetition) << "step " << step << " token " << a[i].token;
      EXPECT_EQ(a[i].masked, b[i].masked) << "step " << step << " token " << a[i].token;
    }
    output.push_back((step * 7) % 11 + 1);  // repeats some tokens, some from the prompt
  }
}

}  // namespace
}  // namespace tandem::engine
