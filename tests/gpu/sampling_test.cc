// Sampling on the GPU (backend::cuda::DeviceSampler over kernels/sampling/sample_rows.cu) against the
// engine's CPU sampler, the reference: the same rows, parameters, histories and seeds must give the
// same tokens. The CPU computes probabilities in double and the GPU in float with fixed-point sums,
// so a draw that lands within rounding of a boundary between two tokens may differ; such differences
// are counted and printed, and must stay rare (at most 1 in 100 draws). Rows of 128256 logits
// (Llama 3's vocabulary) and of 1000 bf16-rounded logits (many exact ties, broken by the lower id).
#include <cuda_bf16.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "tandem/backend/device_sampler.h"
#include "tandem/engine/sampler.h"

namespace tandem {
namespace {

using testing::DeviceBuffer;

// One parameter set of the sweep.
struct Case {
  std::string name;
  engine::SamplingParams params;
};

std::vector<Case> Cases() {
  std::vector<Case> cases;
  auto add = [&](std::string name, auto set) {
    engine::SamplingParams p;
    p.temperature = 1.0f;
    set(p);
    cases.push_back({std::move(name), p});
  };
  add("temperature 1", [](engine::SamplingParams&) {});
  add("temperature 0.7, top_p 0.9", [](engine::SamplingParams& p) { p.temperature = 0.7f, p.top_p = 0.9f; });
  add("temperature 1.3, top_k 50", [](engine::SamplingParams& p) { p.temperature = 1.3f, p.top_k = 50; });
  add("top_k 40, top_p 0.95, min_p 0.05", [](engine::SamplingParams& p) {
    p.temperature = 0.8f, p.top_k = 40, p.top_p = 0.95f, p.min_p = 0.05f;
  });
  add("min_p 0.1", [](engine::SamplingParams& p) { p.min_p = 0.1f; });
  add("top_p 0.5", [](engine::SamplingParams& p) { p.top_p = 0.5f; });
  add("top_k 1 (greedy)", [](engine::SamplingParams& p) { p.top_k = 1; });
  add("greedy with penalties and bias", [](engine::SamplingParams& p) {
    p.temperature = 0.0f, p.repetition_penalty = 1.3f, p.frequency_penalty = 0.4f, p.logit_bias = {{5, 30.0f}};
  });
  add("penalties, bias, min_tokens, top_p 0.8", [](engine::SamplingParams& p) {
    p.top_p = 0.8f, p.repetition_penalty = 1.2f, p.presence_penalty = 0.5f, p.frequency_penalty = 0.3f;
    p.logit_bias = {{7, 2.5f}, {11, -100.0f}}, p.min_tokens = 100, p.stop_token_ids = {3, 9};
  });
  return cases;
}

// Runs rows [rows, vocab] through the device sampler with `inputs`' descriptions; returns the tokens.
std::vector<int32_t> SampleOnGpu(const std::vector<float>& logits, int vocab,
                                 const std::vector<engine::SamplerInput>& inputs) {
  const int rows = static_cast<int>(inputs.size());
  engine::Sampler describer;
  std::vector<backend::RowSampling> described(inputs.size());
  std::vector<const backend::RowSampling*> sampling;
  for (size_t r = 0; r < inputs.size(); ++r) {
    describer.Describe(inputs[r], vocab, &described[r]);
    sampling.push_back(&described[r]);
  }
  const std::vector<uint8_t> full(inputs.size(), 0);
  auto sampler = backend::cuda::DeviceSampler::Create(rows, vocab);
  EXPECT_TRUE(sampler.ok()) << sampler.status();
  if (!sampler.ok()) return {};
  DeviceBuffer d_logits(logits.size() * sizeof(float));
  EXPECT_EQ(cudaMemcpy(d_logits.as<float>(), logits.data(), logits.size() * sizeof(float), cudaMemcpyHostToDevice),
            cudaSuccess);
  EXPECT_TRUE((*sampler)->Stage(full, sampling, rows, nullptr).ok());
  const absl::Status launched = (*sampler)->Launch(d_logits.as<float>(), rows, nullptr);
  EXPECT_TRUE(launched.ok()) << launched;
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const auto tokens = (*sampler)->tokens(rows);
  return {tokens.begin(), tokens.end()};
}

// Random rows: `spread` the logits' standard deviation; bf16: rounded to bf16 (ties).
std::vector<float> RandomRows(int rows, int vocab, float spread, bool bf16, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, spread);
  std::vector<float> x(static_cast<size_t>(rows) * vocab);
  for (float& v : x) v = bf16 ? __bfloat162float(__float2bfloat16(normal(rng))) : normal(rng);
  return x;
}

class SamplingTest : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(SamplingTest, TokensEqualTheCpuSamplersUpToBoundaryRounding) {
  TANDEM_REQUIRE_GPU();
  const auto [vocab, bf16] = GetParam();
  constexpr int kRows = 24, kSeedsPerRow = 4;
  std::mt19937 rng(static_cast<uint32_t>(vocab) + (bf16 ? 1 : 0));
  const std::vector<int32_t> eos = {2};
  int draws = 0, differences = 0;
  for (const Case& c : Cases()) {
    for (const float spread : {1.0f, 4.0f}) {
      std::vector<float> rows = RandomRows(kRows, vocab, spread, bf16, rng);
      // Each row its own history: a prompt and some output (penalties), and a seed.
      std::vector<std::vector<int32_t>> prompts(kRows), outputs(kRows);
      std::uniform_int_distribution<int32_t> token(0, std::min(vocab, 64) - 1);
      for (int r = 0; r < kRows; ++r) {
        for (int i = 0; i < 12; ++i) prompts[static_cast<size_t>(r)].push_back(token(rng));
        for (int i = 0; i < r % 7; ++i) outputs[static_cast<size_t>(r)].push_back(token(rng));
      }
      for (int s = 0; s < kSeedsPerRow; ++s) {
        std::vector<engine::SamplerInput> inputs;
        for (int r = 0; r < kRows; ++r) {
          inputs.push_back(engine::SamplerInput{.params = &c.params,
                                                .prompt = prompts[static_cast<size_t>(r)],
                                                .output = outputs[static_cast<size_t>(r)],
                                                .seed = rng(),
                                                .eos_token_ids = eos});
        }
        const std::vector<int32_t> got = SampleOnGpu(rows, vocab, inputs);
        ASSERT_EQ(got.size(), static_cast<size_t>(kRows));
        engine::Sampler cpu;
        for (int r = 0; r < kRows; ++r) {
          const std::span<const float> row(rows.data() + static_cast<size_t>(r) * vocab, static_cast<size_t>(vocab));
          const int32_t want = cpu.Sample(row, inputs[static_cast<size_t>(r)]).token;
          ++draws;
          if (got[static_cast<size_t>(r)] != want) {
            ++differences;
            std::printf("  differs: %s, spread %.0f, row %d: gpu %d, cpu %d (logits %.6g vs %.6g)\n", c.name.c_str(),
                        spread, r, got[static_cast<size_t>(r)], want,
                        got[static_cast<size_t>(r)] >= 0 ? row[static_cast<size_t>(got[static_cast<size_t>(r)])] : 0.0f,
                        row[static_cast<size_t>(want)]);
          }
        }
      }
    }
  }
  std::printf("vocab %d%s: %d draws, %d differ from the CPU sampler\n", vocab, bf16 ? " (bf16 ties)" : "", draws,
              differences);
  EXPECT_LE(differences * 100, draws);
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, SamplingTest,
                         ::testing::Values(std::make_tuple(128256, false), std::make_tuple(1000, true)));

// A row's token depends on its own logits and seed only: alone or among 16 other rows, the same.
TEST(DeviceSamplerTest, ARowsTokenDoesNotDependOnTheBatch) {
  TANDEM_REQUIRE_GPU();
  constexpr int kVocab = 128256, kRows = 17;
  std::mt19937 rng(5);
  const std::vector<float> rows = RandomRows(kRows, kVocab, 3.0f, false, rng);
  engine::SamplingParams params;
  params.temperature = 0.9f;
  params.top_p = 0.95f;
  std::vector<engine::SamplerInput> inputs;
  for (int r = 0; r < kRows; ++r) inputs.push_back({.params = &params, .seed = 1000 + static_cast<uint64_t>(r)});
  const std::vector<int32_t> batch = SampleOnGpu(rows, kVocab, inputs);
  ASSERT_EQ(batch.size(), static_cast<size_t>(kRows));
  for (int r : {0, 8, 16}) {
    const std::vector<float> one(rows.begin() + static_cast<int64_t>(r) * kVocab,
                                 rows.begin() + static_cast<int64_t>(r + 1) * kVocab);
    const std::vector<int32_t> alone = SampleOnGpu(one, kVocab, {inputs[static_cast<size_t>(r)]});
    ASSERT_EQ(alone.size(), 1u);
    EXPECT_EQ(alone[0], batch[static_cast<size_t>(r)]) << "row " << r;
  }
}

// Rows the host samples keep their logits and get the plain argmax; padding rows too.
TEST(DeviceSamplerTest, HostRowsAreLeftAsTheyAre) {
  TANDEM_REQUIRE_GPU();
  constexpr int kVocab = 4099;
  std::mt19937 rng(9);
  const std::vector<float> rows = RandomRows(3, kVocab, 2.0f, false, rng);
  engine::SamplingParams params;
  params.logit_bias = {{0, 1000.0f}};
  engine::Sampler describer;
  backend::RowSampling biased;
  const engine::SamplerInput input{.params = &params, .seed = 1};
  describer.Describe(input, kVocab, &biased);
  auto sampler = backend::cuda::DeviceSampler::Create(4, kVocab);
  ASSERT_TRUE(sampler.ok()) << sampler.status();
  DeviceBuffer d_logits(static_cast<size_t>(4) * kVocab * sizeof(float));
  TANDEM_CUDA_ASSERT(cudaMemcpy(d_logits.as<float>(), rows.data(), rows.size() * 4, cudaMemcpyHostToDevice));
  const std::vector<uint8_t> full = {1, 0, 0};
  const std::vector<const backend::RowSampling*> sampling = {&biased, &biased, nullptr};
  ASSERT_TRUE((*sampler)->Stage(full, sampling, 4, nullptr).ok());
  ASSERT_TRUE((*sampler)->Launch(d_logits.as<float>(), 4, nullptr).ok());
  TANDEM_CUDA_ASSERT(cudaDeviceSynchronize());
  const auto tokens = (*sampler)->tokens(4);
  auto argmax = [&](int r) {
    const float* row = rows.data() + static_cast<size_t>(r) * kVocab;
    return static_cast<int32_t>(std::max_element(row, row + kVocab) - row);
  };
  EXPECT_EQ(tokens[0], argmax(0));  // host row: no bias applied
  EXPECT_EQ(tokens[1], 0);          // the bias wins the draw
  EXPECT_EQ(tokens[2], argmax(2));
  std::vector<float> back(static_cast<size_t>(kVocab));
  TANDEM_CUDA_ASSERT(cudaMemcpy(back.data(), d_logits.as<float>(), back.size() * 4, cudaMemcpyDeviceToHost));
  EXPECT_TRUE(std::equal(back.begin(), back.end(), rows.begin())) << "the host row's logits changed";
}

}  // namespace
}  // namespace tandem
