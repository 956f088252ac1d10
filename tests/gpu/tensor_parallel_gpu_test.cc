// Tensor parallelism on GPUs. With one GPU: a group of one NCCL rank runs the runner with its
// all-reduces issued (a copy) — the decode graph holds the all-reduce nodes and its replay equals the
// eager step and the runner without collectives, bit for bit. With two GPUs: TP 2 (one rank per GPU,
// the worker's TensorParallelExecutor) against TP 1 on the golden fixtures and the Llama-3-8B-shaped
// dummy model (and its NVFP4 quantization), logits within bf16 tolerance and the same greedy tokens
// where TP 1's top two are apart.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "support/greedy_executor.h"
#include "support/models.h"
#include "tandem/backend/cuda_model_runner.h"
#include "tandem/backend/nccl_collective.h"
#include "tandem/engine/cuda_model_executor.h"
#include "tandem/engine/tensor_parallel_executor.h"
#include "tandem/model/loader.h"

namespace tandem::engine {
namespace {

int DeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

backend::CudaModelRunnerOptions SmallOptions(int device) {
  backend::CudaModelRunnerOptions o;
  o.device = device;
  o.max_num_tokens = 512;
  o.max_num_seqs = 8;
  o.max_model_len = 512;
  o.num_blocks = 128;
  return o;
}

model::LoadedModel Load(const std::string& golden_or_preset, int layers = 0, bool nvfp4 = false) {
  model::LoadOptions options;
  options.show_progress = false;
  options.quantize_nvfp4 = nvfp4;
  if (golden_or_preset.rfind("llama-3", 0) == 0) {
    options.format = model::LoadFormat::kDummy;
    options.dummy_config = golden_or_preset;
    if (layers > 0) options.num_layers = layers;
  } else {
    options.path = std::string(TANDEM_SOURCE_DIR) + "/tests/golden/models/" + golden_or_preset;
  }
  auto loaded = model::LoadModel(options);
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  return std::move(loaded).value();
}

// Two prompts (37 and 20 ids), prefilled together, then `steps` - 1 greedy decode steps.
test_support::GreedyRun Drive(ModelExecutor& ex, int vocab, int steps) {
  std::vector<std::vector<int32_t>> prompts = {{}, {}};
  for (int i = 0; i < 37; ++i) prompts[0].push_back((i * 131 + 7) % vocab);
  for (int i = 0; i < 20; ++i) prompts[1].push_back((i * 71 + 3) % vocab);
  return test_support::RunGreedy(ex, prompts, steps);
}

TEST(NcclGroupOfOne, DecodeGraphWithAllReduceEqualsEagerAndNoCollective) {
  if (DeviceCount() < 1) GTEST_SKIP() << "no CUDA device";
  model::LoadedModel loaded = Load("llama");
  auto group = backend::NcclCollectiveGroup::Create({0});
  ASSERT_TRUE(group.ok()) << group.status();
  backend::CudaModelRunnerOptions with = SmallOptions(0);
  with.collective = &(*group)->rank(0);
  auto tp1 = backend::CudaModelRunner::Create(loaded.config, loaded.weights, with);
  ASSERT_TRUE(tp1.ok()) << tp1.status();
  auto plain = backend::CudaModelRunner::Create(loaded.config, loaded.weights, SmallOptions(0));
  ASSERT_TRUE(plain.ok()) << plain.status();
  CudaModelExecutor a(std::move(tp1).value()), b(std::move(plain).value());
  const test_support::GreedyRun got = Drive(a, loaded.config.vocab_size, 6);  // decode steps replay the graph
  const test_support::GreedyRun want = Drive(b, loaded.config.vocab_size, 6);
  ASSERT_EQ(got.logits.size(), want.logits.size());
  for (size_t i = 0; i < got.logits.size(); ++i) EXPECT_EQ(got.logits[i], want.logits[i]) << "row " << i;
  // The graph's replay against the same padded step launched eagerly.
  std::vector<backend::SequenceStep> steps(1);
  steps[0].token_ids = {5};
  steps[0].start_position = 36;
  for (int blk = 0; blk < 8; ++blk) steps[0].block_table.push_back(blk);
  steps[0].needs_logits = true;
  auto plan = a.runner().Plan(steps);
  ASSERT_TRUE(plan.ok());
  auto graph = a.runner().Forward(*plan);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const std::vector<float> graph_logits(graph->logits.begin(), graph->logits.end());
  auto eager = a.runner().ForwardEager(*plan);
  ASSERT_TRUE(eager.ok()) << eager.status();
  EXPECT_EQ(graph_logits, std::vector<float>(eager->logits.begin(), eager->logits.end()));
}


void CompareTp2WithTp1(const std::string& what, int layers, double tolerance, bool nvfp4 = false,
                       bool graphs = true) {
  if (DeviceCount() < 2) GTEST_SKIP() << "TP 2 needs two GPUs, found " << DeviceCount();
  model::LoadedModel loaded = Load(what, layers, nvfp4);
  const auto* nvfp4_weights = nvfp4 ? &loaded.nvfp4 : nullptr;
  const int vocab = loaded.config.vocab_size;
  test_support::GreedyRun want;
  {
    backend::CudaModelRunnerOptions o = SmallOptions(0);
    o.cuda_graphs = graphs;
    auto runner = backend::CudaModelRunner::Create(loaded.config, loaded.weights, o, nvfp4_weights);
    ASSERT_TRUE(runner.ok()) << runner.status();
    CudaModelExecutor one(std::move(runner).value());
    want = Drive(one, vocab, 8);
  }
  auto made = backend::NcclCollectiveGroup::Create({0, 1});
  ASSERT_TRUE(made.ok()) << made.status();
  std::shared_ptr<backend::NcclCollectiveGroup> group = std::move(made).value();
  auto tp2 = TensorParallelExecutor::Create(
      2,
      [&](int r) -> absl::StatusOr<std::unique_ptr<ModelExecutor>> {
        backend::CudaModelRunnerOptions o = SmallOptions(r);
        o.cuda_graphs = graphs;
        o.collective = &group->rank(r);
        auto runner = backend::CudaModelRunner::Create(loaded.config, loaded.weights, o, nvfp4_weights);
        if (!runner.ok()) return runner.status();
        return std::unique_ptr<ModelExecutor>(std::make_unique<CudaModelExecutor>(std::move(runner).value()));
      },
      [group](const absl::Status&) { group->Abort(); });
  ASSERT_TRUE(tp2.ok()) << tp2.status();
  const test_support::GreedyRun got = Drive(**tp2, vocab, 8);
  ASSERT_EQ(got.logits.size(), want.logits.size());
  double max_err = 0;
  int compared = 0, differ = 0;
  // Each sequence step by step while both runs fed it the same tokens: the logits row within the
  // tolerance, and the same greedy token unless TP 1's top two are a near tie (closer than 5 %), which
  // bf16 may resolve either way; after the tokens part, the runs compute different sequences.
  size_t rows = 0;
  for (size_t s = 0; s < 2; ++s) {
    for (size_t t = 0; t < want.tokens[s].size(); ++t) {
      const std::vector<float>& w = want.logits[t * 2 + s];
      const double err = test_support::RelativeError(got.logits[t * 2 + s], w);
      ++rows;
      if (err > tolerance) std::printf("  step %zu, sequence %zu: relative error %.4f\n", t, s, err);
      max_err = std::max(max_err, err);
      if (got.tokens[s][t] == want.tokens[s][t]) {
        ++compared;
        continue;
      }
      std::vector<float> top = w;
      std::partial_sort(top.begin(), top.begin() + 2, top.end(), std::greater<float>());
      if (top[0] - top[1] >= 0.05f * std::max(1.0f, std::fabs(top[0]))) ++differ;
      break;
    }
  }
  std::printf("%s%s TP 2 vs TP 1: max relative logits error %.4f over %zu rows, %d greedy tokens equal, %d differ "
              "outside a near tie\n",
              what.c_str(), nvfp4 ? " nvfp4" : "", max_err, rows, compared, differ);
  EXPECT_LT(max_err, tolerance);
  EXPECT_EQ(differ, 0);
}

TEST(TwoGpus, GoldenLlamaTp2MatchesTp1) { CompareTp2WithTp1("llama", 0, 0.02); }
TEST(TwoGpus, GoldenQwen2Tp2MatchesTp1) { CompareTp2WithTp1("qwen2", 0, 0.02); }
TEST(TwoGpus, GoldenQwen3Tp2MatchesTp1) { CompareTp2WithTp1("qwen3", 0, 0.02); }
TEST(TwoGpus, Llama3_8bShapeTp2MatchesTp1) { CompareTp2WithTp1("llama-3-8b", 0, 0.03); }
// NVFP4 linears split with their scales: TP 2 against TP 1, both NVFP4 (8 layers: the quantization
// of all 32 takes a minute of host time and adds nothing here).
TEST(TwoGpus, Nvfp4Llama3_8bShapeTp2MatchesTp1) { CompareTp2WithTp1("llama-3-8b", 8, 0.03, /*nvfp4=*/true); }

}  // namespace
}  // namespace tandem::engine
