// The engine's use of an executor's own argmax (the CUDA executor computes it on the GPU and leaves
// greedy rows there): a row is marked needs_full_logits unless its sampler step would be the plain
// argmax of the raw logits, and only then does the engine take LastArgmax() instead of sampling. A
// synthetic executor whose "device" argmax (token 5) differs from the argmax of the logits it returns
// (token 3) shows which path each request took.
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tandem/engine/engine.h"

namespace tandem::engine {
namespace {

constexpr int32_t kVocab = 8;
constexpr int32_t kHostArgmax = 3;    // argmax of the logits the executor returns
constexpr int32_t kDeviceArgmax = 5;  // what it says its device computed

class ArgmaxExecutor final : public ModelExecutor {
 public:
  int32_t vocab_size() const override { return kVocab; }
  int32_t num_kv_blocks() const override { return 64; }
  int32_t block_size() const override { return 16; }
  absl::StatusOr<std::span<const float>> Execute(const StepPlan& plan) override {
    logits_.assign(static_cast<size_t>(plan.num_logit_rows) * kVocab, 0.0f);
    argmax_.assign(static_cast<size_t>(plan.num_logit_rows), kDeviceArgmax);
    for (int32_t r = 0; r < plan.num_logit_rows; ++r) logits_[static_cast<size_t>(r * kVocab + kHostArgmax)] = 4.0f;
    for (const ExecSequence& s : plan.seqs) {
      if (s.needs_logits) full_flags[std::string(s.request_id)].push_back(s.needs_full_logits);
    }
    return std::span<const float>(logits_);
  }
  std::span<const int32_t> LastArgmax() const override { return argmax_; }

  std::map<std::string, std::vector<bool>> full_flags;  // per request, per logits row

 private:
  std::vector<float> logits_;
  std::vector<int32_t> argmax_;
};

// Runs `requests` to completion; returns each request's tokens and (in *full_flags, copied out before
// the engine and its executor go away) the needs_full_logits flag of each of its logits rows.
std::map<std::string, std::vector<int32_t>> RunEngine(std::vector<EngineRequest> requests,
                                                      std::map<std::string, std::vector<bool>>* full_flags) {
  EngineConfig config;
  config.scheduler.max_num_seqs = 8;
  config.scheduler.max_num_batched_tokens = 64;
  config.scheduler.max_model_len = 64;
  config.scheduler.enable_chunked_prefill = true;
  auto owned = std::make_unique<ArgmaxExecutor>();
  ArgmaxExecutor* executor = owned.get();
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
  *full_flags = executor->full_flags;
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

TEST(DeviceArgmaxTest, PlainGreedyTakesTheExecutorsArgmaxEverythingElseSamplesTheLogits) {
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
  requests.push_back(penalty);
  EngineRequest min_tokens = Greedy("min_tokens");
  min_tokens.params.min_tokens = 2;
  requests.push_back(min_tokens);
  EngineRequest sampled = Greedy("sampled");
  sampled.params.temperature = 1.0f;
  sampled.params.seed = 7;
  requests.push_back(sampled);

  std::map<std::string, std::vector<bool>> full;
  auto tokens = RunEngine(std::move(requests), &full);
  const std::vector<int32_t> device = {kDeviceArgmax, kDeviceArgmax, kDeviceArgmax};
  const std::vector<int32_t> host = {kHostArgmax, kHostArgmax, kHostArgmax};
  EXPECT_EQ(tokens["plain"], device);
  EXPECT_EQ(tokens["top_k_1"], device);
  EXPECT_EQ(tokens["logprobs"], host);
  EXPECT_EQ(tokens["logit_bias"], (std::vector<int32_t>{1, 1, 1}));
  EXPECT_EQ(tokens["penalty"], host);  // a 0.5 penalty on 4.0 logits keeps the argmax, on the host
  // min_tokens masks nothing here (no EOS, no stop ids) but keeps the host path until it is met.
  EXPECT_EQ(tokens["min_tokens"], (std::vector<int32_t>{kHostArgmax, kHostArgmax, kDeviceArgmax}));
  EXPECT_EQ(tokens["sampled"].size(), 3u);
  EXPECT_EQ(full["plain"], (std::vector<bool>{false, false, false}));
  EXPECT_EQ(full["logprobs"], (std::vector<bool>{true, true, true}));
  EXPECT_EQ(full["min_tokens"], (std::vector<bool>{true, true, false}));
  EXPECT_EQ(full["sampled"], (std::vector<bool>{true, true, true}));
}

}  // namespace
}  // namespace tandem::engine
