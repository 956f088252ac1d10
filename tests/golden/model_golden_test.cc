// Tiny random checkpoints of every architecture (tests/golden/models/<name>, made by
// generate_fixtures.py) against Hugging Face transformers' fp32 logits: each row within 1e-4
// relative error (L2 norm of the difference over L2 norm of the reference row) and the same greedy
// tokens over 16 decode steps.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
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


class ModelGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelGoldenTest, MatchesTransformers) {
  const std::string dir = std::string(TANDEM_SOURCE_DIR) + "/tests/golden/models/" + GetParam();
  std::ifstream ref_file(dir + "/reference.json");
  ASSERT_TRUE(ref_file) << "missing " << dir << "/reference.json (run tests/golden/generate_fixtures.py)";
  const nlohmann::json ref = nlohmann::json::parse(ref_file);
  std::ifstream logits_file(dir + "/" + ref["logits_file"].get<std::string>(), std::ios::binary);
  ASSERT_TRUE(logits_file);
  const std::vector<char> raw((std::istreambuf_iterator<char>(logits_file)), std::istreambuf_iterator<char>());
  std::vector<float> ref_logits(raw.size() / sizeof(float));
  std::memcpy(ref_logits.data(), raw.data(), ref_logits.size() * sizeof(float));

  auto loaded = model::LoadModel({.path = dir, .show_progress = false});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const int vocab = loaded->config.vocab_size;
  ASSERT_EQ(vocab, ref["vocab_size"].get<int>());
  const int steps = ref["decode_steps"].get<int>();
  auto backend = CreateCpuBackend({});
  ASSERT_TRUE(backend.ok());
  auto runner = ModelRunner::Create(backend->get(), loaded->config, loaded->weights);
  ASSERT_TRUE(runner.ok()) << runner.status();
  ASSERT_EQ(ref_logits.size(), ref["prompts"].size() * static_cast<size_t>(steps + 1) * vocab);

  size_t row_index = 0;
  double max_err = 0;
  for (const auto& prompt_ref : ref["prompts"]) {
    const std::vector<int32_t> prompt = prompt_ref["prompt"].get<std::vector<int32_t>>();
    const std::vector<int32_t> want_tokens = prompt_ref["greedy_tokens"].get<std::vector<int32_t>>();
    for (int block_size : {1, 16}) {
      auto cache = KvPool::Create(**backend, (*runner)->MakeKvCacheSpec(64 / block_size * 4, block_size));
      ASSERT_TRUE(cache.ok());
      SequenceRunner sr(runner->get(), cache->get());
      auto id = sr.AddSequence(prompt, 64);
      ASSERT_TRUE(id.ok());
      std::vector<int32_t> got_tokens;
      for (int step = 0; step <= steps; ++step) {
        auto out = sr.Step({{*id, 0}});
        ASSERT_TRUE(out.ok()) << out.status();
        const std::vector<float>& row = out->at(0).second;
        const float* want = ref_logits.data() + (row_index + static_cast<size_t>(step)) * vocab;
        const double err = test_support::RelativeError(row, std::span<const float>(want, static_cast<size_t>(vocab)));
        max_err = std::max(max_err, err);
        EXPECT_LE(err, 1e-4) << GetParam() << " prompt of " << prompt.size() << " tokens, step " << step
                             << ", block size " << block_size;
        if (step == steps) break;
        const int32_t next = Argmax(row.data(), vocab);
        got_tokens.push_back(next);
        ASSERT_TRUE(sr.Append(*id, next).ok());
      }
      EXPECT_EQ(got_tokens, want_tokens) << GetParam() << ", block size " << block_size;
    }
    row_index += static_cast<size_t>(steps) + 1;
  }
  std::printf("%s: max per-row relative error %.3g over %zu rows\n", GetParam().c_str(), max_err, row_index);
}

INSTANTIATE_TEST_SUITE_P(Architectures, ModelGoldenTest,
                         ::testing::Values("llama", "llama32", "mistral", "qwen2", "qwen3"));

}  // namespace
}  // namespace tandem::backend
