// Tensor parallelism on the CPU backend: the host collective group (sums in rank order, gathers,
// broadcasts, releases waiting ranks on abort), the split of heads and intermediate columns, and the
// whole model at TP 2 and 4 against TP 1 on every golden fixture (logits within fp32 tolerance, the
// same greedy tokens) and on SmolLM2-135M (10 prompts, identical greedy tokens), built the way a
// worker builds it (CreateEngine from a deployment with pools.both.tensor_parallel). A rank that fails
// a step fails it for the worker, names itself, releases the other ranks, and breaks the executor.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "support/greedy_executor.h"
#include "support/models.h"
#include "support/status_matchers.h"
#include "tandem/backend/collective.h"
#include "tandem/backend/cpu_backend.h"
#include "tandem/backend/model_runner.h"
#include "tandem/core/status.h"
#include "tandem/engine/backend_model_executor.h"
#include "tandem/core/config.h"
#include "tandem/engine/engine.h"
#include "tandem/engine/engine_factory.h"
#include "tandem/engine/tensor_parallel_executor.h"
#include "tandem/model/loader.h"
#include "tandem/model/tensor_parallel.h"

namespace tandem::engine {
namespace {

using backend::HostCollectiveGroup;

// Runs body(rank) on `size` threads at once.
void OnRanks(int size, const std::function<void(int)>& body) {
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) threads.emplace_back(body, r);
  for (std::thread& t : threads) t.join();
}

TEST(HostCollective, AllReduceSumsInRankOrderOnEveryRank) {
  constexpr int kRanks = 3;
  constexpr size_t kCount = 1001;  // not a multiple of the ranks
  HostCollectiveGroup group(kRanks);
  std::vector<std::vector<float>> bufs(kRanks, std::vector<float>(kCount));
  for (int r = 0; r < kRanks; ++r) {
    for (size_t i = 0; i < kCount; ++i) bufs[r][i] = 0.1f * static_cast<float>(r + 1) + 1e-3f * static_cast<float>(i);
  }
  const std::vector<std::vector<float>> inputs = bufs;
  OnRanks(kRanks, [&](int r) {
    for (int round = 0; round < 3; ++round) {  // the same buffers again: later rounds sum sums
      ASSERT_TRUE(group.rank(r).AllReduceSum(bufs[r].data(), kCount, DType::kF32, nullptr).ok());
    }
  });
  for (size_t i = 0; i < kCount; ++i) {
    float want = inputs[0][i];
    for (int r = 1; r < kRanks; ++r) want += inputs[r][i];
    for (int round = 1; round < 3; ++round) want = (want + want) + want;  // rank order over equal inputs
    for (int r = 0; r < kRanks; ++r) ASSERT_EQ(bufs[r][i], want) << "rank " << r << " element " << i;
  }
}

TEST(HostCollective, AllGatherAndBroadcast) {
  constexpr int kRanks = 4;
  HostCollectiveGroup group(kRanks);
  std::vector<std::vector<int32_t>> gathered(kRanks, std::vector<int32_t>(2 * kRanks, -1));
  std::vector<std::vector<int32_t>> bcast(kRanks, std::vector<int32_t>(3, 0));
  OnRanks(kRanks, [&](int r) {
    const int32_t mine[2] = {10 * r, 10 * r + 1};
    ASSERT_TRUE(group.rank(r).AllGather(mine, gathered[r].data(), 2, DType::kI32, nullptr).ok());
    if (r == 2) bcast[r] = {7, 8, 9};
    ASSERT_TRUE(group.rank(r).Broadcast(bcast[r].data(), 3 * sizeof(int32_t), 2, nullptr).ok());
  });
  for (int r = 0; r < kRanks; ++r) {
    for (int s = 0; s < kRanks; ++s) {
      EXPECT_EQ(gathered[r][2 * s], 10 * s);
      EXPECT_EQ(gathered[r][2 * s + 1], 10 * s + 1);
    }
    EXPECT_EQ(bcast[r], (std::vector<int32_t>{7, 8, 9}));
  }
  EXPECT_ERROR(group.rank(0).Broadcast(bcast[0].data(), 4, 9, nullptr), absl::StatusCode::kInvalidArgument,
               "host collective: broadcast root 9 of 4");
}

TEST(HostCollective, AbortReleasesWaitingRanks) {
  HostCollectiveGroup group(3);
  std::vector<float> a(8, 1.0f), b(8, 1.0f);
  absl::Status sa, sb;
  std::thread t0([&] { sa = group.rank(0).AllReduceSum(a.data(), a.size(), DType::kF32, nullptr); });
  std::thread t1([&] { sb = group.rank(1).AllReduceSum(b.data(), b.size(), DType::kF32, nullptr); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // rank 2 never comes
  group.Abort(absl::InternalError("rank 2 failed"));
  t0.join();
  t1.join();
  EXPECT_EQ(sa.message(), "rank 2 failed");
  EXPECT_EQ(sb.message(), "rank 2 failed");
  std::vector<float> c(8);
  EXPECT_ERROR(group.rank(2).AllReduceSum(c.data(), c.size(), DType::kF32, nullptr), absl::StatusCode::kInternal,
               "rank 2 failed");  // and later ones
}

model::ModelConfig Heads(int nq, int nkv, int inter = 64) {
  model::ModelConfig c;
  c.name = std::string(1, 'm');  // (assigning a literal trips GCC 12's -Wrestrict)
  c.num_attention_heads = nq;
  c.num_kv_heads = nkv;
  c.intermediate_size = inter;
  c.head_dim = 8;
  return c;
}

TEST(TensorParallelShard, KvHeadsDealtOutWhenThereAreEnough) {
  // SmolLM2: 9 query heads in 3 groups over 2 ranks -> whole groups, 2 + 1.
  auto r0 = model::PlanTensorParallelShard(Heads(9, 3, 1536), 0, 2);
  auto r1 = model::PlanTensorParallelShard(Heads(9, 3, 1536), 1, 2);
  ASSERT_TRUE(r0.ok() && r1.ok());
  EXPECT_EQ(r0->kv_heads, (std::vector<int>{0, 1}));
  EXPECT_EQ(r1->kv_heads, (std::vector<int>{2}));
  EXPECT_EQ(std::make_pair(r0->q_begin, r0->q_end), std::make_pair(0, 6));
  EXPECT_EQ(std::make_pair(r1->q_begin, r1->q_end), std::make_pair(6, 9));
  EXPECT_EQ(std::make_pair(r0->inter_begin, r0->inter_end), std::make_pair(0, 768));
  EXPECT_FALSE(r0->expanded);
}

TEST(TensorParallelShard, FewerKvHeadsThanRanksReplicatesThem) {
  // Llama-3-8B-like 32/8 at TP 16: one KV head per two ranks; SmolLM2 at TP 4: 3, 2, 2, 2 query heads.
  auto llama = model::PlanTensorParallelShard(Heads(32, 8), 5, 16);
  ASSERT_TRUE(llama.ok());
  EXPECT_EQ(llama->kv_heads, (std::vector<int>{2}));
  EXPECT_EQ(llama->num_q_heads(), 2);
  const std::vector<std::vector<int>> smol_kv = {{0}, {1}, {1, 2}, {2}};
  for (int r = 0; r < 4; ++r) {
    auto s = model::PlanTensorParallelShard(Heads(9, 3), r, 4);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->kv_heads, smol_kv[static_cast<size_t>(r)]) << "rank " << r;
    EXPECT_FALSE(s->expanded) << "rank " << r;
  }
  // 8 query heads in 2 groups of 4 over 3 ranks: rank 1 holds q 3 (group 0) and q 4, 5 (group 1) —
  // unequal groups, so one KV head per query head.
  auto odd = model::PlanTensorParallelShard(Heads(8, 2), 1, 3);
  ASSERT_TRUE(odd.ok());
  EXPECT_TRUE(odd->expanded);
  EXPECT_EQ(odd->kv_heads, (std::vector<int>{0, 1, 1}));
}

TEST(TensorParallelShard, TooManyRanksIsAnError) {
  auto s = model::PlanTensorParallelShard(Heads(4, 2), 0, 8);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("exceeds m's 4 attention heads"), std::string::npos) << s.status();
  EXPECT_ERROR(model::PlanTensorParallelShard(Heads(4, 2), 2, 2), absl::StatusCode::kInvalidArgument,
               "tensor parallel: rank 2 of 2 is not a rank");
}

TEST(TensorParallelShard, Nvfp4SplitsExactlyLikeItsDequantization) {
  auto loaded = model::LoadModel({.path = std::string(TANDEM_SOURCE_DIR) + "/tests/golden/models/llama",
                                  .show_progress = false, .quantize_nvfp4 = true});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_FALSE(loaded->nvfp4.empty());
  const model::ModelConfig& c = loaded->config;
  for (int r = 0; r < 2; ++r) {
    auto shard = model::PlanTensorParallelShard(c, r, 2);
    ASSERT_TRUE(shard.ok());
    auto nvfp4 = model::ShardNvfp4(c, loaded->nvfp4, *shard);
    ASSERT_TRUE(nvfp4.ok()) << nvfp4.status();
    // loaded->weights is the exact fp32 dequantization: the shard of it must equal the dequantized shard.
    const model::ModelWeights fp32 = model::ShardWeights(c, loaded->weights, *shard);
    const model::LayerWeights& l0 = fp32.layers.front();
    const std::pair<const char*, const Tensor*> parts[] = {
        {"q_proj", &l0.q_proj}, {"k_proj", &l0.k_proj}, {"v_proj", &l0.v_proj}, {"o_proj", &l0.o_proj}};
    for (const auto& [name, want] : parts) {
      const model::Nvfp4Tensor& t = nvfp4->at(absl::StrCat("model.layers.0.self_attn.", name, ".weight"));
      ASSERT_EQ(t.rows, want->dim(0)) << name;
      ASSERT_EQ(t.cols, want->dim(1)) << name;
      std::vector<float> got(static_cast<size_t>(t.rows * t.cols));
      ASSERT_TRUE(model::DequantizeNvfp4(t, got.data()).ok());
      EXPECT_EQ(got, std::vector<float>(want->data<float>(), want->data<float>() + want->numel())) << name << " rank " << r;
    }
    const model::Nvfp4Tensor& down = nvfp4->at("model.layers.1.mlp.down_proj.weight");
    std::vector<float> got(static_cast<size_t>(down.rows * down.cols));
    ASSERT_TRUE(model::DequantizeNvfp4(down, got.data()).ok());
    const Tensor& want = fp32.layers[1].down_proj;
    EXPECT_EQ(got, std::vector<float>(want.data<float>(), want.data<float>() + want.numel())) << "down rank " << r;
  }
  // At TP 4 the 96 intermediate columns split at 24: inside a 16-column scale group.
  auto shard = model::PlanTensorParallelShard(c, 1, 4);
  ASSERT_TRUE(shard.ok());
  auto refused = model::ShardNvfp4(c, loaded->nvfp4, *shard);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("inside its 16-column scale groups"), std::string::npos) << refused.status();
}

// ---- The whole model ----------------------------------------------------------------------------

std::unique_ptr<Engine> BuildEngine(const std::string& model_path, int tp) {
  const std::string yaml = absl::StrCat("model: {path: '", model_path,
                                        "', max_model_len: 256}\nbackend: cpu\nkv_cache: {cpu_memory_mib: 64}\n"
                                        "pools:\n  both: {tensor_parallel: ",
                                        tp, ", max_num_seqs: 16, max_num_batched_tokens: 2048}\n");
  auto config = ParseDeploymentConfig(yaml, "tp.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  auto loaded = LoadDeploymentModel(*config);
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  if (!loaded.ok()) return nullptr;
  auto engine = CreateEngine(*config, config->pools.both, *loaded, EngineBuildOptions{.cpu_threads = 2});
  EXPECT_TRUE(engine.ok()) << engine.status();
  return engine.ok() ? std::move(engine).value() : nullptr;
}

class GoldenTensorParallel : public ::testing::TestWithParam<std::string> {};

// Greedy runs of `prompts` at TP 2 and 4 against TP 1: the same tokens every step and, when
// `tolerance` > 0, the prefill logits within it.
void CompareWidths(const std::string& model_path, const std::vector<std::vector<int32_t>>& prompts, int steps,
                   double tolerance) {
  std::unique_ptr<Engine> one = BuildEngine(model_path, 1);
  ASSERT_NE(one, nullptr);
  const test_support::GreedyRun want = test_support::RunGreedy(one->executor(), prompts, steps);
  for (int tp : {2, 4}) {
    std::unique_ptr<Engine> engine = BuildEngine(model_path, tp);
    ASSERT_NE(engine, nullptr);
    ASSERT_EQ(engine->executor().tensor_parallel_size(), tp);
    const test_support::GreedyRun got = test_support::RunGreedy(engine->executor(), prompts, steps);
    ASSERT_EQ(got.logits.size(), want.logits.size());
    double max_err = 0;
    for (size_t s = 0; s < prompts.size(); ++s) {  // the first step's rows: the prefills
      max_err = std::max(max_err, test_support::RelativeError(got.logits[s], want.logits[s]));
      EXPECT_EQ(got.tokens[s], want.tokens[s]) << model_path << " TP " << tp << " prompt " << s;
    }
    if (tolerance > 0) {
      EXPECT_LT(max_err, tolerance) << model_path << " TP " << tp;
    }
    std::printf("%s TP %d: max relative prefill logits error vs TP 1 %.2e\n", model_path.c_str(), tp, max_err);
  }
}

TEST_P(GoldenTensorParallel, MatchesTensorParallelOne) {
  const std::string dir = std::string(TANDEM_SOURCE_DIR) + "/tests/golden/models/" + GetParam();
  std::ifstream ref_file(dir + "/reference.json");
  ASSERT_TRUE(ref_file);
  std::vector<std::vector<int32_t>> prompts;
  const nlohmann::json ref = nlohmann::json::parse(ref_file);
  for (const auto& p : ref["prompts"]) prompts.push_back(p["prompt"].get<std::vector<int32_t>>());
  CompareWidths(dir, prompts, 16, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Architectures, GoldenTensorParallel,
                         ::testing::Values("llama", "llama32", "mistral", "qwen2", "qwen3"));


TEST(SmolLM2TensorParallel, GreedyOutputIdenticalAtTp1To4) {
  const std::string path = test_support::SmolLM2GgufPath();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "SmolLM2 GGUF not found at " << path;
  std::ifstream ref_file(std::string(TANDEM_SOURCE_DIR) + "/tests/golden/smollm2_reference.json");
  ASSERT_TRUE(ref_file);
  // The reference's 5 prompts of 64 ids, and their first 24 ids: 10 prompts.
  std::vector<std::vector<int32_t>> prompts;
  const nlohmann::json ref = nlohmann::json::parse(ref_file);
  for (const auto& p : ref["prompts"]) {
    const auto ids = p["prompt"].get<std::vector<int32_t>>();
    prompts.push_back(ids);
    prompts.emplace_back(ids.begin(), ids.begin() + 24);
  }
  ASSERT_EQ(prompts.size(), 10u);
  CompareWidths(path, prompts, 24, 0);  // greedy tokens identical
}

// A real rank executor that fails its `fail_at`-th step (a rank hitting a device error mid-run).
class FailingRank final : public ModelExecutor {
 public:
  FailingRank(std::unique_ptr<ModelExecutor> inner, int fail_at) : inner_(std::move(inner)), fail_at_(fail_at) {}
  int32_t vocab_size() const override { return inner_->vocab_size(); }
  int32_t num_kv_blocks() const override { return inner_->num_kv_blocks(); }
  int32_t block_size() const override { return inner_->block_size(); }
  absl::StatusOr<std::span<const float>> Execute(const StepPlan& plan) override {
    if (++steps_ == fail_at_) return absl::ResourceExhaustedError("out of memory");
    return inner_->Execute(plan);
  }

 private:
  std::unique_ptr<ModelExecutor> inner_;
  int fail_at_;
  int steps_ = 0;
};

TEST(TensorParallelExecutor, FailedRankFailsTheStepAndBreaksTheExecutor) {
  auto loaded = model::LoadModel({.path = std::string(TANDEM_SOURCE_DIR) + "/tests/golden/models/llama",
                                  .show_progress = false});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  // Two real ranks over one host group; rank 1 fails its second step before its first collective,
  // while rank 0 runs into the all-reduce after its first o_proj and waits there.
  auto group = std::make_shared<HostCollectiveGroup>(2);
  auto executor = TensorParallelExecutor::Create(
      2,
      [&](int r) -> absl::StatusOr<std::unique_ptr<ModelExecutor>> {
        TANDEM_ASSIGN_OR_RETURN(auto be, backend::CreateCpuBackend({.num_threads = 1}));
        TANDEM_ASSIGN_OR_RETURN(auto runner, backend::ModelRunner::Create(be.get(), loaded->config, loaded->weights,
                                                                          {.collective = &group->rank(r)}));
        TANDEM_ASSIGN_OR_RETURN(auto inner, BackendModelExecutor::Create(std::move(be), std::move(runner), 8, 16));
        return std::unique_ptr<ModelExecutor>(std::make_unique<FailingRank>(std::move(inner), r == 1 ? 2 : -1));
      },
      [group](const absl::Status& why) { group->Abort(why); });
  ASSERT_TRUE(executor.ok()) << executor.status();
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5};
  const std::vector<kvcache::BlockId> table = {0};
  StepPlan plan;
  plan.seqs.push_back(ExecSequence{.token_ids = prompt, .start_position = 0, .block_table = table, .needs_logits = true});
  plan.num_tokens = 5;
  plan.num_logit_rows = 1;
  ASSERT_TRUE((*executor)->Execute(plan).ok());
  auto failed = (*executor)->Execute(plan);  // returns: rank 0 is not left waiting
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("tensor-parallel rank 1: out of memory"), std::string::npos)
      << failed.status();
  auto later = (*executor)->Execute(plan);
  ASSERT_FALSE(later.ok());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kResourceExhausted);  // the rank's own error
  EXPECT_EQ(later.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(later.status().message().find("must restart"), std::string::npos) << later.status();
}

}  // namespace
}  // namespace tandem::engine
