// The CUDA model runner against the CPU backend (the reference): the golden test models of every
// architecture (head_dim 16: the reference attention kernel), and dummy models at SmolLM2's and
// Llama-3-8B's shapes (head_dim 64 and 128, GQA 3 and 4: FlashInfer when built with it) cut to a few
// layers. A batch of three sequences is prefilled in one mixed step (one of them in two chunks),
// then decoded for several steps; each logits row must be within bf16 tolerance of the CPU's fp32
// row, with the same argmax unless the CPU's top two are closer than bf16 resolves. A decode step
// replayed from a CUDA graph equals the eager step bitwise. With NVFP4 weights (quantized at load) the
// CPU computes with their exact dequantization and the GPU runs the NVFP4 GEMM for the decode steps
// (at most kNvfp4GemmMaxRows rows) and dequantize + cuBLASLt for the prefill steps.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "gtest/gtest.h"
#include "tandem/backend/cpu_backend.h"
#include "tandem/backend/cuda_model_runner.h"
#include "tandem/backend/model_runner.h"
#include "tandem/model/loader.h"

namespace tandem::backend {
namespace {

struct RowCheck {
  double rel_err = 0;
  bool argmax_equal = true;
  bool near_tie = false;
};

RowCheck Compare(const float* got, const float* want, int vocab) {
  double diff = 0, norm = 0;
  int got_best = 0, want_best = 0, want_second = -1;
  for (int i = 0; i < vocab; ++i) {
    diff += (double{got[i]} - want[i]) * (double{got[i]} - want[i]);
    norm += double{want[i]} * want[i];
    if (got[i] > got[got_best]) got_best = i;
    if (want[i] > want[want_best]) {
      want_second = want_best;
      want_best = i;
    } else if (i != want_best && (want_second < 0 || want[i] > want[want_second])) {
      want_second = i;
    }
  }
  RowCheck r;
  r.rel_err = std::sqrt(diff / std::max(norm, 1e-30));
  r.argmax_equal = got_best == want_best;
  // bf16 keeps 8 bits of mantissa: logits closer than ~1% of their size are a tie at that precision.
  r.near_tie = want_second >= 0 &&
               (want[want_best] - want[want_second]) < 0.02 * std::max(1.0f, std::fabs(want[want_best]));
  return r;
}

// Three sequences; sequence s owns blocks [s * per_seq, (s + 1) * per_seq).
struct Batch {
  std::vector<std::vector<int32_t>> tokens;  // every token each sequence has so far
  int per_seq = 0;

  SequenceStep Step(int s, int start, int count, bool logits) const {
    SequenceStep step;
    const std::vector<int32_t>& t = tokens[static_cast<size_t>(s)];
    step.token_ids.assign(t.begin() + start, t.begin() + start + count);
    step.start_position = start;
    for (int b = 0; b < per_seq; ++b) step.block_table.push_back(s * per_seq + b);
    step.needs_logits = logits;
    return step;
  }
};

void RunAgainstCpu(const std::string& label, const model::LoadedModel& loaded, int block_size, double tolerance) {
  const model::ModelConfig& config = loaded.config;
  const int vocab = config.vocab_size;
  auto cpu_backend = CreateCpuBackend({});
  ASSERT_TRUE(cpu_backend.ok());
  auto cpu = ModelRunner::Create(cpu_backend->get(), config, loaded.weights);
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  const int max_len = 160;
  Batch batch;
  batch.per_seq = (max_len + block_size - 1) / block_size;
  auto cpu_cache = KvPool::Create(**cpu_backend, (*cpu)->MakeKvCacheSpec(3 * batch.per_seq, block_size));
  ASSERT_TRUE(cpu_cache.ok());

  CudaModelRunnerOptions options;
  options.max_num_tokens = 256;
  options.max_num_seqs = 8;
  options.max_model_len = max_len;
  options.block_size = block_size;
  options.num_blocks = 3 * batch.per_seq;
  auto gpu = CudaModelRunner::Create(config, loaded.weights, options, loaded.nvfp4.empty() ? nullptr : &loaded.nvfp4);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  EXPECT_EQ((*gpu)->num_nvfp4_matrices(), loaded.nvfp4.empty() ? 0 : 4 * config.num_layers) << label;

  // Prompts of 1, 17 and 97 tokens (97 in two chunks: 60 then 37 in the next step with the decodes).
  uint32_t rng = 12345;
  for (int len : {1, 17, 97}) {
    std::vector<int32_t> p;
    for (int i = 0; i < len; ++i) {
      rng = rng * 1664525u + 1013904223u;
      p.push_back(static_cast<int32_t>((rng >> 8) % static_cast<uint32_t>(vocab)));
    }
    batch.tokens.push_back(p);
  }
  std::vector<std::vector<SequenceStep>> steps = {
      {batch.Step(0, 0, 1, true), batch.Step(1, 0, 17, true), batch.Step(2, 0, 60, false)}};
  double max_err = 0;
  int rows = 0, ties = 0;
  for (int step = 0; step < 10; ++step) {
    std::vector<SequenceStep> plan_steps;
    if (step == 0) {
      plan_steps = steps[0];
    } else {
      for (int s = 0; s < 3; ++s) {
        const int have = static_cast<int>(batch.tokens[static_cast<size_t>(s)].size());
        if (s == 2 && step == 1) {
          plan_steps.push_back(batch.Step(2, 60, 37, true));  // the rest of the long prompt
        } else {
          plan_steps.push_back(batch.Step(s, have - 1, 1, true));
        }
      }
    }
    auto cpu_plan = (*cpu)->Plan(plan_steps, **cpu_cache);
    ASSERT_TRUE(cpu_plan.ok()) << cpu_plan.status();
    auto want = (*cpu)->Forward(*cpu_plan, **cpu_cache);
    ASSERT_TRUE(want.ok()) << want.status();
    auto gpu_plan = (*gpu)->Plan(plan_steps);
    ASSERT_TRUE(gpu_plan.ok()) << gpu_plan.status();
    auto got = (*gpu)->Forward(*gpu_plan);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->logits.size(), want->size());
    ASSERT_EQ(got->tokens.size(), static_cast<size_t>(gpu_plan->num_logits()));
    const std::vector<float> got_rows(got->logits.begin(), got->logits.end());
    const std::vector<int32_t> got_argmax(got->tokens.begin(), got->tokens.end());
    for (size_t r = 0; r < got_argmax.size(); ++r) {  // the device argmax is the argmax of the row it returned
      const float* row = got_rows.data() + r * static_cast<size_t>(vocab);
      EXPECT_EQ(got_argmax[r], std::max_element(row, row + vocab) - row) << label << ": step " << step << ", row " << r;
    }
    if (gpu_plan->num_tokens == gpu_plan->num_seqs) {  // a decode step: the graph equals the eager run
      auto eager = (*gpu)->ForwardEager(*gpu_plan);
      ASSERT_TRUE(eager.ok()) << eager.status();
      ASSERT_EQ(eager->logits.size(), got_rows.size());
      EXPECT_TRUE(std::equal(got_rows.begin(), got_rows.end(), eager->logits.begin()))
          << label << ": decode step " << step << " from the CUDA graph differs from the eager step";
      EXPECT_TRUE(std::equal(got_argmax.begin(), got_argmax.end(), eager->tokens.begin()));
    }
    int logit_row = 0;
    for (int s = 0; s < static_cast<int>(plan_steps.size()); ++s) {
      if (!plan_steps[static_cast<size_t>(s)].needs_logits) continue;
      const float* w = want->data() + static_cast<size_t>(logit_row) * vocab;
      const float* g = got_rows.data() + static_cast<size_t>(logit_row) * vocab;
      const RowCheck r = Compare(g, w, vocab);
      max_err = std::max(max_err, r.rel_err);
      ++rows;
      EXPECT_LE(r.rel_err, tolerance) << label << ": step " << step << ", sequence " << s;
      if (!r.argmax_equal) {
        if (r.near_tie) {
          ++ties;
        } else {
          ADD_FAILURE() << label << ": step " << step << ", sequence " << s << ": greedy token differs from the CPU's";
        }
      }
      // Continue every sequence with the CPU's greedy token, so both sides see the same inputs.
      const int32_t next = static_cast<int32_t>(std::max_element(w, w + vocab) - w);
      if (s != 2 || step >= 1) batch.tokens[static_cast<size_t>(s)].push_back(next);
      ++logit_row;
    }
  }
  std::printf("%s (block size %d): %d rows, max relative error %.3g, %d near-tie argmax differences\n",
              label.c_str(), block_size, rows, max_err, ties);
}

class GoldenModelOnGpu : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenModelOnGpu, MatchesCpuBackend) {
  TANDEM_REQUIRE_GPU();
  const std::string dir = std::string(TANDEM_SOURCE_DIR) + "/tests/golden/models/" + GetParam();
  auto loaded = model::LoadModel({.path = dir, .show_progress = false});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  for (int block_size : {1, 16}) RunAgainstCpu(GetParam(), *loaded, block_size, 2e-2);
}

// The logits of a 17-token prompt and 3 greedy decode steps on the CUDA runner (`tune`: time GEMM
// candidates before the decode graph; off, every runner runs cuBLASLt's first choice per shape).
std::vector<float> GpuLogits(const model::LoadedModel& loaded, bool tune = true) {
  CudaModelRunnerOptions options;
  options.tune_gemms = tune;
  options.max_num_tokens = 64;
  options.max_num_seqs = 2;
  options.max_model_len = 32;
  options.block_size = 16;
  options.num_blocks = 2;
  auto gpu = CudaModelRunner::Create(loaded.config, loaded.weights, options,
                                     loaded.nvfp4.empty() ? nullptr : &loaded.nvfp4, &loaded.dummy);
  EXPECT_TRUE(gpu.ok()) << gpu.status();
  if (!gpu.ok()) return {};
  std::vector<int32_t> tokens;
  for (int i = 0; i < 17; ++i) tokens.push_back((i * 37 + 5) % loaded.config.vocab_size);
  std::vector<float> all;
  for (int step = 0; step < 4; ++step) {
    SequenceStep s;
    s.start_position = step == 0 ? 0 : static_cast<int>(tokens.size()) - 1;
    s.token_ids.assign(tokens.begin() + s.start_position, tokens.end());
    s.block_table = {0, 1};
    s.needs_logits = true;
    auto plan = (*gpu)->Plan({s});
    EXPECT_TRUE(plan.ok()) << plan.status();
    if (!plan.ok()) return {};
    auto out = (*gpu)->Forward(*plan);
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return {};
    all.insert(all.end(), out->logits.begin(), out->logits.end());
    tokens.push_back(out->tokens.front());
  }
  return all;
}

// LoadOptions::keep_16bit (what backend: cuda loads with): the bf16 checkpoint's tensors, viewed in
// the mapped file and streamed to the device as they are, give the logits of the fp32 load — bitwise
// when both runners' GEMM tuners pick the same kernels (they time candidates, so they may not: then
// within bf16 rounding of the activations; a misread weight would be off by its whole size).
TEST_P(GoldenModelOnGpu, SixteenBitHostWeightsGiveTheSameLogits) {
  TANDEM_REQUIRE_GPU();
  const std::string dir = std::string(TANDEM_SOURCE_DIR) + "/tests/golden/models/" + GetParam();
  auto fp32 = model::LoadModel({.path = dir, .show_progress = false});
  auto bf16 = model::LoadModel({.path = dir, .show_progress = false, .keep_16bit = true});
  ASSERT_TRUE(fp32.ok()) << fp32.status();
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  ASSERT_EQ(bf16->weights.layers[0].q_proj.dtype(), DType::kBF16);
  const std::vector<float> want = GpuLogits(*fp32), got = GpuLogits(*bf16);
  ASSERT_FALSE(want.empty());
  ASSERT_EQ(want.size(), got.size());
  double err2 = 0, ref2 = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err2 += (double{got[i]} - want[i]) * (double{got[i]} - want[i]);
    ref2 += double{want[i]} * want[i];
  }
  const double rel = std::sqrt(err2 / ref2);
  std::printf("%s: 16-bit vs fp32 host weights: logits %s (relative L2 %.3g)\n", GetParam().c_str(),
              want == got ? "bitwise equal" : "differ", rel);
  EXPECT_LE(rel, 1e-2) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Architectures, GoldenModelOnGpu,
                         ::testing::Values("llama", "llama32", "mistral", "qwen2", "qwen3"));

class GoldenNvfp4ModelOnGpu : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenNvfp4ModelOnGpu, MatchesCpuBackend) {
  TANDEM_REQUIRE_GPU();
  const std::string dir = std::string(TANDEM_SOURCE_DIR) + "/tests/golden/models/" + GetParam();
  auto loaded = model::LoadModel({.path = dir, .show_progress = false, .quantize_nvfp4 = true});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_FALSE(loaded->nvfp4.empty());
  RunAgainstCpu(GetParam() + " nvfp4", *loaded, 16, 2e-2);
}

INSTANTIATE_TEST_SUITE_P(Architectures, GoldenNvfp4ModelOnGpu, ::testing::Values("llama", "qwen2", "qwen3"));

// Real geometries with dummy weights, a few layers (the CPU reference must stay quick).
model::LoadedModel LoadDummy(const std::string& preset, int layers, bool nvfp4 = false) {
  model::LoadOptions options;
  options.format = model::LoadFormat::kDummy;
  options.dummy_config = preset;
  options.num_layers = layers;
  options.show_progress = false;
  options.quantize_nvfp4 = nvfp4;
  auto loaded = model::LoadModel(options);
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  return loaded.ok() ? std::move(loaded).value() : model::LoadedModel{};
}

TEST(DummyModelOnGpu, SmolLm2ShapeMatchesCpuBackend) {
  TANDEM_REQUIRE_GPU();
  RunAgainstCpu("smollm2-135m x4 layers", LoadDummy("smollm2-135m", 4), 16, 3e-2);
}

TEST(DummyModelOnGpu, Llama3_8bShapeMatchesCpuBackend) {
  TANDEM_REQUIRE_GPU();
  RunAgainstCpu("llama-3-8b x2 layers", LoadDummy("llama-3-8b", 2), 16, 3e-2);
}

// LoadOptions::dummy_on_device (what backend: cuda loads dummy weights with): no host copy, the values
// generated on the device equal the host generator's bf16 values, so the logits are bitwise the same
// (GEMM tuning off, so both runners run the same kernels). SmolLM2's lm_head is tied to the
// embedding, Llama-3-8B's is not.
TEST(DummyModelOnGpu, WeightsGeneratedOnTheDeviceEqualTheHostGenerator) {
  TANDEM_REQUIRE_GPU();
  for (const char* preset : {"smollm2-135m", "llama-3-8b"}) {
    model::LoadOptions options;
    options.format = model::LoadFormat::kDummy;
    options.dummy_config = preset;
    options.num_layers = 2;
    options.seed = 5;
    options.show_progress = false;
    options.keep_16bit = true;
    auto host = model::LoadModel(options);
    options.dummy_on_device = true;
    auto device = model::LoadModel(options);
    ASSERT_TRUE(host.ok() && device.ok()) << host.status() << device.status();
    ASSERT_EQ(device->weights.layers[1].down_proj.raw_data(), nullptr);
    ASSERT_FALSE(device->dummy.empty());
    const std::vector<float> want = GpuLogits(*host, /*tune=*/false), got = GpuLogits(*device, /*tune=*/false);
    ASSERT_FALSE(want.empty()) << preset;
    ASSERT_EQ(want.size(), got.size()) << preset;
    size_t differ = 0;
    for (size_t i = 0; i < want.size(); ++i) differ += want[i] != got[i] ? 1 : 0;
    std::printf("%s x2 layers: %zu of %zu logits differ between host and device dummy weights\n", preset, differ,
                want.size());
    EXPECT_EQ(differ, 0u) << preset;
  }
}

TEST(DummyModelOnGpu, Nvfp4Llama3_8bShapeMatchesCpuBackend) {
  TANDEM_REQUIRE_GPU();
  RunAgainstCpu("llama-3-8b x2 layers nvfp4", LoadDummy("llama-3-8b", 2, /*nvfp4=*/true), 16, 3e-2);
}

// engine.batch_invariant: a sequence's logits (and device token) are bitwise the same whatever else
// is in its steps. Sequence A (a 37-token prompt, then 3 decode tokens) runs alone, then again as A'
// (its own blocks, same tokens) prefilled beside two other prompts, decoded beside them, in a mixed
// step beside a new prompt's prefill and in a decode step of two.
TEST(DummyModelOnGpu, BatchInvariantModeGivesASequenceTheSameLogitsInAnyBatch) {
  TANDEM_REQUIRE_GPU();
  const model::LoadedModel loaded = LoadDummy("llama-3-8b", 2);
  ASSERT_GT(loaded.config.vocab_size, 0);
  const int vocab = loaded.config.vocab_size, block = 16, per_seq = 8;  // 128 positions per sequence
  CudaModelRunnerOptions options;
  options.max_num_tokens = 256;
  options.max_num_seqs = 8;
  options.max_model_len = per_seq * block;
  options.block_size = block;
  options.num_blocks = 6 * per_seq;
  options.batch_invariant = true;
  auto runner = CudaModelRunner::Create(loaded.config, loaded.weights, options);
  ASSERT_TRUE(runner.ok()) << runner.status();
  CudaModelRunner& gpu = **runner;

  uint32_t rng = 777;
  auto tokens = [&](int n) {
    std::vector<int32_t> t;
    for (int i = 0; i < n; ++i) {
      rng = rng * 1664525u + 1013904223u;
      t.push_back(static_cast<int32_t>((rng >> 8) % static_cast<uint32_t>(vocab)));
    }
    return t;
  };
  const std::vector<int32_t> a = tokens(40), b = tokens(50), c = tokens(9), d = tokens(20);
  // Slot `slot`'s blocks; positions [start, start + count) of `t`, logits for the last one.
  auto step = [&](int slot, const std::vector<int32_t>& t, int start, int count) {
    SequenceStep s;
    s.token_ids.assign(t.begin() + start, t.begin() + start + count);
    s.start_position = start;
    for (int i = 0; i < per_seq; ++i) s.block_table.push_back(slot * per_seq + i);
    return s;
  };
  // Runs one step; returns row `row`'s logits followed by its device token (as a float's bits).
  auto run = [&](const std::vector<SequenceStep>& steps, int row) {
    auto plan = gpu.Plan(steps);
    EXPECT_TRUE(plan.ok()) << plan.status();
    auto out = gpu.Forward(*plan);
    EXPECT_TRUE(out.ok()) << out.status();
    std::vector<float> r(out->logits.begin() + static_cast<int64_t>(row) * vocab,
                         out->logits.begin() + static_cast<int64_t>(row + 1) * vocab);
    r.push_back(static_cast<float>(out->tokens[static_cast<size_t>(row)]));
    return r;
  };
  // Alone: slot 0.
  std::vector<std::vector<float>> alone;
  alone.push_back(run({step(0, a, 0, 37)}, 0));
  for (int p = 37; p < 40; ++p) alone.push_back(run({step(0, a, p, 1)}, 0));
  // In company: A' in slot 1.
  std::vector<std::vector<float>> batched;
  batched.push_back(run({step(2, b, 0, 50), step(1, a, 0, 37), step(3, c, 0, 9)}, 1));
  batched.push_back(run({step(2, b, 50 - 1, 1), step(3, c, 8, 1), step(1, a, 37, 1)}, 2));
  batched.push_back(run({step(4, d, 0, 20), step(1, a, 38, 1)}, 1));
  batched.push_back(run({step(1, a, 39, 1), step(3, c, 8, 1)}, 0));
  const char* what[] = {"prefill", "decode beside two", "decode beside a prefill", "decode beside one"};
  for (size_t i = 0; i < alone.size(); ++i) {
    ASSERT_EQ(alone[i].size(), batched[i].size());
    size_t differ = 0;
    for (size_t j = 0; j < alone[i].size(); ++j) differ += std::memcmp(&alone[i][j], &batched[i][j], 4) != 0;
    EXPECT_EQ(differ, 0u) << what[i] << ": " << differ << " of " << alone[i].size() << " logits differ";
  }
}

}  // namespace
}  // namespace tandem::backend
