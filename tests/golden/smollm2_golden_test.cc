// SmolLM2-135M-Instruct (the quickstart model, Q4_1 GGUF) against Hugging Face transformers' greedy
// output on the same file (tests/golden/smollm2_reference.json, made by
// generate_smollm2_reference.py): 5 prompts of 64 token ids, identical greedy tokens.
// The GGUF comes from $TANDEM_SMOLLM2_GGUF or ~/.cache/tandem/models/SmolLM2-135M-Instruct.Q4_1.gguf.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "support/models.h"
#include "tandem/backend/cpu_backend.h"
#include "tandem/backend/model_runner.h"
#include "tandem/backend/sequence_runner.h"
#include "tandem/model/loader.h"

namespace tandem::backend {
namespace {


TEST(SmolLM2Golden, GreedyTokensMatchTransformers) {
  const std::string path = test_support::SmolLM2GgufPath();
  if (!std::filesystem::exists(path)) {
    GTEST_SKIP() << "SmolLM2 GGUF not found at " << path
                 << " (set TANDEM_SMOLLM2_GGUF or run scripts/fetch_model.sh)";
  }
  std::ifstream ref_file(std::string(TANDEM_SOURCE_DIR) + "/tests/golden/smollm2_reference.json");
  ASSERT_TRUE(ref_file);
  const nlohmann::json ref = nlohmann::json::parse(ref_file);
  auto loaded = model::LoadModel({.path = path, .show_progress = false});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto backend = CreateCpuBackend({});
  ASSERT_TRUE(backend.ok());
  // The serving path: Q4_1 / Q8_0 matrices stay packed (bit-identical to fp32, see below).
  auto runner = ModelRunner::Create(backend->get(), loaded->config, loaded->weights, {.gguf_path = path});
  ASSERT_TRUE(runner.ok()) << runner.status();
  EXPECT_EQ((*runner)->num_matrices(WeightFormat::kF32), 0);
  const int vocab = loaded->config.vocab_size;
  ASSERT_GE(ref["prompts"].size(), 5u);

  // All prompts in one batch: prefill together, then decode together (batch invariance makes this the
  // same as running each alone).
  auto cache = KvPool::Create(**backend, (*runner)->MakeKvCacheSpec(64, 16));
  ASSERT_TRUE(cache.ok());
  SequenceRunner sr(runner->get(), cache->get());
  std::vector<int> ids;
  std::vector<std::vector<int32_t>> want;
  size_t max_new = 0;
  for (const auto& p : ref["prompts"]) {
    const auto prompt = p["prompt"].get<std::vector<int32_t>>();
    ASSERT_EQ(prompt.size(), 64u);
    want.push_back(p["greedy_tokens"].get<std::vector<int32_t>>());
    max_new = std::max(max_new, want.back().size());
    auto id = sr.AddSequence(prompt, 64 + static_cast<int>(want.back().size()) + 1);
    ASSERT_TRUE(id.ok()) << id.status();
    ids.push_back(*id);
  }
  std::vector<std::vector<int32_t>> got(ids.size());
  for (size_t step = 0; step < max_new; ++step) {
    std::vector<std::pair<int, int>> work;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (got[i].size() < want[i].size()) work.push_back({ids[i], 0});
    }
    auto out = sr.Step(work);
    ASSERT_TRUE(out.ok()) << out.status();
    for (auto& [seq, row] : *out) {
      const size_t i = static_cast<size_t>(std::find(ids.begin(), ids.end(), seq) - ids.begin());
      const int32_t next = Argmax(row.data(), vocab);
      got[i].push_back(next);
      ASSERT_TRUE(sr.Append(seq, next).ok());
    }
  }
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(got[i], want[i]) << "prompt " << i;
}

TEST(SmolLM2Golden, PackedGgufWeightsGiveTheSameBitsAsFp32) {
  const std::string path = test_support::SmolLM2GgufPath();
  if (!std::filesystem::exists(path)) {
    GTEST_SKIP() << "SmolLM2 GGUF not found at " << path
                 << " (set TANDEM_SMOLLM2_GGUF or run scripts/fetch_model.sh)";
  }
  auto loaded = model::LoadModel({.path = path, .show_progress = false});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto backend = CreateCpuBackend({});
  ASSERT_TRUE(backend.ok());
  auto packed = ModelRunner::Create(backend->get(), loaded->config, loaded->weights, {.gguf_path = path});
  auto fp32 = ModelRunner::Create(backend->get(), loaded->config, loaded->weights);
  ASSERT_TRUE(packed.ok() && fp32.ok());
  EXPECT_GT((*packed)->num_matrices(WeightFormat::kQ4_1), 0);
  EXPECT_EQ((*fp32)->num_matrices(WeightFormat::kQ4_1), 0);
  const int vocab = loaded->config.vocab_size;
  std::vector<int32_t> prompt(40);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 7919 + 13) % vocab);
  std::vector<std::vector<float>> rows[2];
  ModelRunner* runners[2] = {packed->get(), fp32->get()};
  for (int which = 0; which < 2; ++which) {
    auto cache = KvPool::Create(**backend, runners[which]->MakeKvCacheSpec(8, 16));
    ASSERT_TRUE(cache.ok());
    SequenceRunner sr(runners[which], cache->get());
    auto id = sr.AddSequence(prompt, 64);
    ASSERT_TRUE(id.ok());
    for (int step = 0; step < 4; ++step) {
      auto out = sr.Step({{*id, 0}});
      ASSERT_TRUE(out.ok()) << out.status();
      rows[which].push_back(out->at(0).second);
      ASSERT_TRUE(sr.Append(*id, Argmax(rows[which].back().data(), vocab)).ok());
    }
  }
  for (size_t i = 0; i < rows[0].size(); ++i) {
    EXPECT_EQ(0, std::memcmp(rows[0][i].data(), rows[1][i].data(), rows[0][i].size() * sizeof(float))) << "row " << i;
  }
}

}  // namespace
}  // namespace tandem::backend
