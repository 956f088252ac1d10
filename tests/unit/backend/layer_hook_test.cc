// ModelRunner::Forward's per-layer completion callback (layer-wise KV streaming, issue 7): called
// once per layer, in order, each step; when layer L is reported its K/V of the step are final and
// layer L + 1's are not written yet; and a step with the callback is bitwise the step without it
// (logits and every byte of the KV cache).
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "tandem/backend/cpu_backend.h"
#include "tandem/backend/model_runner.h"
#include "tandem/model/loader.h"

namespace tandem::backend {
namespace {

constexpr int kLayers = 5;
constexpr int kBlockSize = 16;
constexpr int kNumBlocks = 16;

// The golden tiny Llama's config with five layers, dummy weights (the checkpoint has two).
model::LoadedModel FiveLayerModel() {
  const std::string dir = std::string(TANDEM_SOURCE_DIR) + "/tests/golden/models/llama";
  std::ifstream in(dir + "/config.json");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"num_hidden_layers\": 2"), std::string::npos);
  const std::string path =
      (std::filesystem::temp_directory_path() / ("tandem_layer_hook_" + std::to_string(::getpid()) + ".json"))
          .string();
  std::ofstream(path) << absl::StrReplaceAll(text,
                                             {{"\"num_hidden_layers\": 2", "\"num_hidden_layers\": 5"}});
  model::LoadOptions options;
  options.format = model::LoadFormat::kDummy;
  options.dummy_config = path;
  options.seed = 11;
  options.show_progress = false;
  auto loaded = model::LoadModel(options);
  std::filesystem::remove(path);
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  return std::move(loaded).value();
}

std::vector<int32_t> Tokens(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = static_cast<int32_t>(rng() % 1000);
  return t;
}

std::vector<char> LayerBytes(const KvPool& cache, int layer) {
  const char* base = reinterpret_cast<const char*>(cache.LayerBase(layer));
  return std::vector<char>(base, base + cache.spec().BytesPerLayer());
}

class LayerHookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model::LoadedModel m = FiveLayerModel();
    ASSERT_EQ(m.config.num_layers, kLayers);
    auto backend = CreateCpuBackend({.num_threads = 2});
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = std::move(backend).value();
    auto runner = ModelRunner::Create(backend_.get(), m.config, m.weights);
    ASSERT_TRUE(runner.ok()) << runner.status();
    runner_ = std::move(runner).value();
  }

  // A cache whose every byte starts as 0xA5 (poison: nothing of a step is there before it writes).
  std::unique_ptr<KvPool> NewCache() {
    auto cache = KvPool::Create(*backend_, runner_->MakeKvCacheSpec(kNumBlocks, kBlockSize));
    EXPECT_TRUE(cache.ok()) << cache.status();
    for (int l = 0; l < kLayers; ++l)
      std::memset((*cache)->LayerBase(l), 0xA5, (*cache)->spec().BytesPerLayer());
    return std::move(cache).value();
  }

  // Three steps over two sequences: a 41-token prompt in chunks of 20 and 21 alongside a 9-token
  // prompt, then both decode one token.
  std::vector<std::vector<SequenceStep>> Steps() const {
    const std::vector<int32_t> a = Tokens(41, 1), b = Tokens(9, 2);
    auto part = [](const std::vector<int32_t>& t, int from, int n) {
      return std::vector<int32_t>(t.begin() + from, t.begin() + from + n);
    };
    return {
        {{part(a, 0, 20), 0, {3, 4}, false}, {b, 0, {9}, true}},
        {{part(a, 20, 21), 20, {3, 4, 7}, true}, {{5}, 9, {9}, true}},
        {{{17}, 41, {3, 4, 7}, true}, {{6}, 10, {9}, true}},
    };
  }

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<ModelRunner> runner_;
};

TEST_F(LayerHookTest, CalledOncePerLayerInOrderWithThatLayersKvFinalAndTheNextNotYetWritten) {
  auto cache = NewCache();
  std::vector<int> calls;
  std::vector<std::vector<char>> at_call(kLayers);       // layer L's pool when L was reported
  std::vector<std::vector<char>> next_at_call(kLayers);  // layer L + 1's pool at that moment
  const RunnerLayerCallback hook = [&](int layer) {
    calls.push_back(layer);
    at_call[static_cast<size_t>(layer)] = LayerBytes(*cache, layer);
    if (layer + 1 < kLayers) next_at_call[static_cast<size_t>(layer)] = LayerBytes(*cache, layer + 1);
  };
  for (const std::vector<SequenceStep>& step : Steps()) {
    std::vector<std::vector<char>> before(kLayers);
    for (int l = 0; l < kLayers; ++l) before[static_cast<size_t>(l)] = LayerBytes(*cache, l);
    calls.clear();
    auto plan = runner_->Plan(step, *cache);
    ASSERT_TRUE(plan.ok()) << plan.status();
    auto logits = runner_->Forward(*plan, *cache, &hook);
    ASSERT_TRUE(logits.ok()) << logits.status();
    EXPECT_EQ(calls, (std::vector<int>{0, 1, 2, 3, 4}));
    for (int l = 0; l < kLayers; ++l) {
      const size_t i = static_cast<size_t>(l);
      EXPECT_NE(before[i], at_call[i]) << "layer " << l << ": the step's K/V were not written when reported";
      EXPECT_EQ(at_call[i], LayerBytes(*cache, l)) << "layer " << l << " changed after it was reported";
      if (l + 1 < kLayers) {
        EXPECT_EQ(next_at_call[i], before[i + 1])
            << "layer " << l + 1 << " was written before " << l << " was reported";
      }
    }
  }
}

TEST_F(LayerHookTest, OutputsWithTheHookAreBitwiseThoseWithout) {
  auto plain = NewCache();
  auto hooked = NewCache();
  int calls = 0;
  const RunnerLayerCallback hook = [&](int) { ++calls; };
  for (const std::vector<SequenceStep>& step : Steps()) {
    auto plan = runner_->Plan(step, *plain);
    ASSERT_TRUE(plan.ok()) << plan.status();
    auto want = runner_->Forward(*plan, *plain);
    auto got = runner_->Forward(*plan, *hooked, &hook);
    ASSERT_TRUE(want.ok() && got.ok());
    ASSERT_EQ(want->size(), got->size());
    EXPECT_EQ(std::memcmp(want->data(), got->data(), want->size() * sizeof(float)), 0);
    for (int l = 0; l < kLayers; ++l)
      EXPECT_EQ(LayerBytes(*plain, l), LayerBytes(*hooked, l)) << "layer " << l;
  }
  EXPECT_EQ(calls, 3 * kLayers);
}

}  // namespace
}  // namespace tandem::backend
