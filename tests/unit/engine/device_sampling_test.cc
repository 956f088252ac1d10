// The engine's use of an executor that samples rows where the logits are (the CUDA executor, on the
// GPU): every row is left to the executor, described by Sampler::Describe (null for the plain
// argmax), except rows of requests that want logprobs, whose full logits come back for the host. A
// synthetic executor whose "device" token (5) differs from the argmax of the logits it returns (3)
// shows which path each request took, and records the descriptions it was given.
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tandem/engine/engine.h"
#include "tandem/engine/sampler.h"

namespace tandem::engine {
namespace {

constexpr int32_t kVocab = 8;
constexpr int32_t kHostArgmax = 3;   // argmax of the logits the executor returns
constexpr int32_t kDeviceToken = 5;  // what it says its device sampled

// One logits row as the executor saw it.
struct RowSeen {
  bool full = true;
  bool described = false;
  backend::RowSampling sampling;  // when described
};

class SamplingExecutor final : public ModelExecutor {
 public:
  int32_t vocab_size() const override { return kVocab; }
  int32_t num_kv_blocks() const override { return 64; }
  int32_t block_size() const override { return 16; }
  bool samples_rows() const override { return true; }
  absl::StatusOr<std::span<const float>> Execute(const StepPlan& plan) override {
    logits_.assign(static_cast<size_t>(plan.num_logit_rows) * kVocab, 0.0f);
    tokens_.assign(static_cast<size_t>(plan.num_logit_rows), kDeviceToken);
    for (int32_t r = 0; r < plan.num_logit_rows; ++r) logits_[static_cast<size_t>(r * kVocab + kHostArgmax)] = 4.0f;
    for (const ExecSequence& s : plan.seqs) {
      if (!s.needs_logits) continue;
      RowSeen row{.full = s.needs_full_logits, .described = s.sampling != nullptr};
      if (s.sampling != nullptr) row.sampling = *s.sampling;
      rows[std::string(s.request_id)].push_back(row);
    }
    return std::span<const float>(logits_);
  }
  std::span<const int32_t> LastSampled() const override { return tokens_; }

  std::map<std::string, std::vector<RowSeen>> rows;  // per request, per logits row

 private:
  std::vector<float> logits_;
  std::vector<int32_t> tokens_;
};

// Runs `requests` to completion; returns each request's tokens and (in *rows, copied out before the
// engine and its executor go away) what the executor saw of each of its logits rows.
std::map<std::string, std::vector<int32_t>> RunEngine(std::vector<EngineRequest> requests,
                                                      std::map<std::string, std::vector<RowSeen>>* rows) {
  EngineConfig config;
  config.scheduler.max_num_seqs = 8;
  config.scheduler.max_num_batched_tokens = 64;
  config.scheduler.max_model_len = 64;
  config.scheduler.enable_chunked_prefill = true;
  config.scheduler.eos_token_ids = {7};
  auto owned = std::make_unique<SamplingExecutor>();
  SamplingExecutor* executor = owned.get();
  auto engine = Engine::Create(config, std::move(owned));
  EXPECT_TRUE(engine.ok()) << engine.status();
  for (EngineRequest& r : requests) EXPECT_TRUE((*engine)->AddRequest(std::move(r)).ok());
  std::map<std::string, std::vector<int32_t>> tokens;
  for (int i = 0; i < 100 && (*engine)->has_work(); ++i) {
    auto stepped = (*engine)->Step();
    EXPECT_TRUE(stepped.ok()) << stepped.status();
    for (RequestOutput& o : (*engine)->TakeOutputs()) {
      tokens[o.request_id].insert(tokens[o.request_id].end(), o.new_token_ids.begin(), o.new_token_ids.end());
    }
  }
  *rows = executor->rows;
  return tokens;
}

EngineRequest Greedy(const std::string& id) {
  EngineRequest r;
  r.request_id = id;
  r.prompt_token_ids = {1, 2, 3, 4};
  r.params.temperature = 0.0f;
  r.params.max_tokens = 3;
  r.params.ignore_eos = true;
  return r;
}

TEST(DeviceSamplingTest, EveryRowButLogprobsIsSampledByTheExecutorAsDescribed) {
  std::vector<EngineRequest> requests;
  requests.push_back(Greedy("plain"));
  EngineRequest top_k_one = Greedy("top_k_1");
  top_k_one.params.temperature = 0.7f;
  top_k_one.params.top_k = 1;
  requests.push_back(top_k_one);
  EngineRequest logprobs = Greedy("logprobs");
  logprobs.params.logprobs = 2;
  requests.push_back(logprobs);
  EngineRequest biased = Greedy("logit_bias");
  biased.params.logit_bias = {{1, 100.0f}};
  requests.push_back(biased);
  EngineRequest penalty = Greedy("penalty");
  penalty.params.frequency_penalty = 0.5f;
  penalty.params.repetition_penalty = 1.2f;
  requests.push_back(penalty);
  EngineRequest min_tokens = Greedy("min_tokens");
  min_tokens.params.min_tokens = 2;
  min_tokens.params.ignore_eos = false;
  min_tokens.params.stop_token_ids = {6};
  requests.push_back(min_tokens);
  EngineRequest sampled = Greedy("sampled");
  sampled.params.temperature = 0.8f;
  sampled.params.top_p = 0.9f;
  sampled.params.min_p = 0.05f;
  sampled.params.top_k = 4;
  sampled.params.seed = 7;
  requests.push_back(sampled);

  std::map<std::string, std::vector<RowSeen>> rows;
  auto tokens = RunEngine(std::move(requests), &rows);
  const std::vector<int32_t> device = {kDeviceToken, kDeviceToken, kDeviceToken};
  for (const char* id : {"plain", "top_k_1", "logit_bias", "penalty", "min_tokens", "sampled"}) {
    EXPECT_EQ(tokens[id], device) << id;
    ASSERT_EQ(rows[id].size(), 3u) << id;
    for (const RowSeen& r : rows[id]) EXPECT_FALSE(r.full) << id;
  }
  EXPECT_EQ(tokens["logprobs"], (std::vector<int32_t>{kHostArgmax, kHostArgmax, kHostArgmax}));
  for (const RowSeen& r : rows["logprobs"]) EXPECT_TRUE(r.full);

  for (const char* id : {"plain", "top_k_1"}) {  // the plain argmax
    for (const RowSeen& r : rows[id]) EXPECT_FALSE(r.described) << id;
  }
  // Greedy with an edit: described, greedy.
  for (const RowSeen& r : rows["penalty"]) EXPECT_TRUE(r.described && r.sampling.greedy);
  for (const RowSeen& r : rows["logit_bias"]) {
    ASSERT_TRUE(r.described);
    ASSERT_EQ(r.sampling.edits.size(), 1u);
    EXPECT_EQ(r.sampling.edits[0].token, 1);
    EXPECT_EQ(r.sampling.edits[0].bias, 100.0f);
  }
  // Penalties: the prompt's tokens (repetition) and the output so far (token 5, counted).
  for (size_t step = 0; step < 3; ++step) {
    const RowSeen& r = rows["penalty"][step];
    ASSERT_TRUE(r.described);
    EXPECT_EQ(r.sampling.frequency_penalty, 0.5f);
    EXPECT_EQ(r.sampling.repetition_penalty, 1.2f);
    std::map<int32_t, backend::LogitEdit> by_token;
    for (const backend::LogitEdit& e : r.sampling.edits) by_token[e.token] = e;
    EXPECT_EQ(by_token.size(), step == 0 ? 4u : 5u);
    for (int32_t t : {1, 2, 3, 4}) {
      EXPECT_TRUE(by_token[t].repetition && by_token[t].count == 0) << t;
    }
    if (step > 0) {
      EXPECT_EQ(by_token[kDeviceToken].count, static_cast<int32_t>(step));
    }
  }
  // min_tokens: EOS (7) and the stop id (6) masked for the first two tokens, then the plain argmax.
  for (size_t step = 0; step < 2; ++step) {
    const RowSeen& r = rows["min_tokens"][step];
    ASSERT_TRUE(r.described);
    ASSERT_EQ(r.sampling.edits.size(), 2u);
    for (const backend::LogitEdit& e : r.sampling.edits) {
      EXPECT_TRUE(e.masked && (e.token == 6 || e.token == 7));
    }
  }
  EXPECT_FALSE(rows["min_tokens"][2].described);
  // A draw: the parameters, and the seed's k-th uniform for the k-th token.
  for (size_t step = 0; step < 3; ++step) {
    const RowSeen& r = rows["sampled"][step];
    ASSERT_TRUE(r.described);
    EXPECT_FALSE(r.sampling.greedy);
    EXPECT_EQ(r.sampling.top_k, 4);
    EXPECT_EQ(r.sampling.top_p, 0.9f);
    EXPECT_EQ(r.sampling.min_p, 0.05f);
    EXPECT_EQ(r.sampling.temperature, 0.8f);
    EXPECT_EQ(r.sampling.uniform, UniformDraw(7, step));
  }
}

// The CPU sampler draws with the same description: a draw over ascending ids when top_p is 1 (so a
// device can walk the same order), by descending logit when top_p < 1.
TEST(DeviceSamplingTest, TheCpuDrawWalksAscendingIdsWithoutTopP) {
  const std::vector<float> logits = {0.0f, 3.0f, 1.0f, 2.0f, -1.0f, 2.5f, 0.5f, 1.5f};
  SamplingParams params;
  params.temperature = 1.0f;
  params.top_k = 3;  // ids 1, 3, 5 (logits 3, 2, 2.5)
  Sampler sampler;
  const double p1 = std::exp(0.0), p5 = std::exp(-0.5), p3 = std::exp(-1.0), total = p1 + p3 + p5;
  // Find seeds whose uniform lands in each id's interval of the ascending-id walk 1, 3, 5.
  std::map<int32_t, int> hits;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    const SamplerInput in{.params = &params, .seed = seed};
    const double u = UniformDraw(seed, 0) * total;
    const int32_t expected = u < p1 ? 1 : (u < p1 + p3 ? 3 : 5);
    const int32_t got = sampler.Sample(logits, in).token;
    EXPECT_EQ(got, expected) << "seed " << seed;
    ++hits[got];
  }
  EXPECT_EQ(hits.size(), 3u);
}

}  // namespace
}  // namespace tandem::engine
