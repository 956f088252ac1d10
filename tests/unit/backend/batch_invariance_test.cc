// A sequence's logits are bitwise identical whatever shares its batch and however its prompt is
// chunked into prefill steps (later issues prove disaggregated == aggregated with this).
#include <bit>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tandem/backend/cpu_backend.h"
#include "tandem/backend/model_runner.h"
#include "tandem/backend/sequence_runner.h"
#include "tandem/model/loader.h"

namespace tandem::backend {
namespace {

std::vector<int32_t> Prompt(int len, uint32_t seed, int vocab) {
  std::mt19937 rng(seed);
  std::vector<int32_t> p(static_cast<size_t>(len));
  for (auto& t : p) t = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
  return p;
}

bool BitwiseEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class BatchInvarianceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    model::LoadOptions options;
    const std::string which = GetParam();
    if (which == "dummy") {
      options.format = model::LoadFormat::kDummy;
      options.dummy_config = "tiny-llama";
      options.seed = 5;
    } else {
      options.path = std::string(TANDEM_SOURCE_DIR) + "/tests/golden/models/" + which;
    }
    options.show_progress = false;
    auto loaded = model::LoadModel(options);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    config_ = loaded->config;
    auto backend = CreateCpuBackend({});
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = std::move(backend).value();
    auto runner = ModelRunner::Create(backend_.get(), loaded->config, loaded->weights);
    ASSERT_TRUE(runner.ok()) << runner.status();
    runner_ = std::move(runner).value();
  }

  std::unique_ptr<KvPool> NewCache(int block_size) {
    auto cache = KvPool::Create(*backend_, runner_->MakeKvCacheSpec(256 / block_size * 8, block_size));
    EXPECT_TRUE(cache.ok()) << cache.status();
    return std::move(cache).value();
  }

  model::ModelConfig config_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<ModelRunner> runner_;
};

constexpr int kDecodeSteps = 6;

// Runs `prompt` alone: whole prompt in one step, then greedy decode. Returns the logits rows.
std::vector<std::vector<float>> RunAlone(SequenceRunner& sr, const std::vector<int32_t>& prompt, int vocab) {
  std::vector<std::vector<float>> rows;
  auto id = sr.AddSequence(prompt, 128);
  EXPECT_TRUE(id.ok());
  for (int step = 0; step <= kDecodeSteps; ++step) {
    auto out = sr.Step({{*id, 0}});
    EXPECT_TRUE(out.ok()) << out.status();
    rows.push_back(out->at(0).second);
    EXPECT_TRUE(sr.Append(*id, Argmax(rows.back().data(), vocab)).ok());
  }
  return rows;
}

TEST_P(BatchInvarianceTest, SameLogitsAloneAndInMixedBatchesWithAnyChunking) {
  const int vocab = config_.vocab_size;
  const std::vector<int32_t> target = Prompt(37, 1, vocab);
  auto cache_alone = NewCache(16);
  SequenceRunner alone(runner_.get(), cache_alone.get());
  const std::vector<std::vector<float>> want = RunAlone(alone, target, vocab);

  for (int block_size : {1, 16}) {
    for (int chunk : {1, 7, 16}) {
      auto cache = NewCache(block_size);
      SequenceRunner sr(runner_.get(), cache.get());
      // Two companions: one already decoding, one prefilling alongside in different chunk sizes.
      auto early = sr.AddSequence(Prompt(20, 2, vocab), 128);
      ASSERT_TRUE(early.ok());
      ASSERT_TRUE(sr.Step({{*early, 0}}).ok());
      ASSERT_TRUE(sr.Append(*early, 3).ok());
      auto target_id = sr.AddSequence(target, 128);
      auto other = sr.AddSequence(Prompt(50, 3, vocab), 128);
      ASSERT_TRUE(target_id.ok() && other.ok());
      std::vector<std::vector<float>> got;
      int guard = 0;
      while (static_cast<int>(got.size()) <= kDecodeSteps && ++guard < 200) {
        std::vector<std::pair<int, int>> work = {{*early, 0}, {*target_id, chunk}};
        if (sr.pending(*other) > 0) work.insert(work.begin() + (guard % 2), {*other, 11});
        auto out = sr.Step(work);
        ASSERT_TRUE(out.ok()) << out.status();
        for (auto& [seq, row] : *out) {
          const int32_t next = Argmax(row.data(), vocab);
          if (seq == *target_id) got.push_back(row);
          ASSERT_TRUE(sr.Append(seq, next).ok());
        }
      }
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_TRUE(BitwiseEqual(got[i], want[i]))
            << "block size " << block_size << ", chunk " << chunk << ", row " << i << " differs";
      }
    }
  }
}

TEST_P(BatchInvarianceTest, SameLogitsWithOneOrManyThreads) {
  const int vocab = config_.vocab_size;
  const std::vector<int32_t> prompt = Prompt(29, 9, vocab);
  auto cache = NewCache(16);
  SequenceRunner sr(runner_.get(), cache.get());
  const auto want = RunAlone(sr, prompt, vocab);

  auto one_thread = CreateCpuBackend({.num_threads = 1});
  ASSERT_TRUE(one_thread.ok());
  // Same weights through a single-threaded backend: reload via the same config path as SetUp.
  model::LoadOptions options;
  if (GetParam() == "dummy") {
    options.format = model::LoadFormat::kDummy;
    options.dummy_config = "tiny-llama";
    options.seed = 5;
  } else {
    options.path = std::string(TANDEM_SOURCE_DIR) + "/tests/golden/models/" + GetParam();
  }
  options.show_progress = false;
  auto loaded = model::LoadModel(options);
  ASSERT_TRUE(loaded.ok());
  auto runner1 = ModelRunner::Create(one_thread->get(), loaded->config, loaded->weights);
  ASSERT_TRUE(runner1.ok());
  auto cache1 = KvPool::Create(**one_thread, (*runner1)->MakeKvCacheSpec(64, 16));
  ASSERT_TRUE(cache1.ok());
  SequenceRunner sr1(runner1->get(), cache1->get());
  const auto got = RunAlone(sr1, prompt, vocab);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(BitwiseEqual(got[i], want[i])) << "row " << i;
}

INSTANTIATE_TEST_SUITE_P(Models, BatchInvarianceTest, ::testing::Values("dummy", "qwen2", "qwen3", "llama32"));

}  // namespace
}  // namespace tandem::backend
