// The executor's per-layer callback through the engine (layer-wise KV streaming, issue 7): each step
// reports every layer once, in order, with the step's plan (request ids, KV roles, chunk positions);
// the engine's tokens and logprobs are bitwise the same with and without a subscriber.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tandem/backend/cpu_backend.h"
#include "tandem/backend/model_runner.h"
#include "tandem/engine/backend_model_executor.h"
#include "tandem/engine/engine.h"
#include "tandem/model/loader.h"

namespace tandem::engine {
namespace {

const std::string kModelDir = std::string(TANDEM_SOURCE_DIR) + "/tests/golden/models/llama";

model::LoadedModel& Model() {
  static model::LoadedModel* loaded = [] {
    model::LoadOptions options;
    options.path = kModelDir;
    options.show_progress = false;
    auto m = model::LoadModel(options);
    EXPECT_TRUE(m.ok()) << m.status();
    return new model::LoadedModel(std::move(m).value());
  }();
  return *loaded;
}

std::unique_ptr<BackendModelExecutor> Executor() {
  auto backend = backend::CreateCpuBackend({.num_threads = 1});
  EXPECT_TRUE(backend.ok()) << backend.status();
  auto runner = backend::ModelRunner::Create(backend->get(), Model().config, Model().weights);
  EXPECT_TRUE(runner.ok()) << runner.status();
  auto exec = BackendModelExecutor::Create(std::move(backend).value(), std::move(runner).value(), 64, 16);
  EXPECT_TRUE(exec.ok()) << exec.status();
  return std::move(exec).value();
}

std::unique_ptr<Engine> MakeEngine(std::unique_ptr<ModelExecutor> executor) {
  EngineConfig config;
  config.scheduler.max_num_batched_tokens = 32;  // a 70-token prompt takes three chunks
  config.scheduler.max_num_seqs = 8;
  config.scheduler.max_model_len = 256;
  config.scheduler.eos_token_ids = Model().config.eos_token_ids;
  auto engine = Engine::Create(config, std::move(executor));
  EXPECT_TRUE(engine.ok()) << engine.status();
  return std::move(engine).value();
}

EngineRequest Req(const std::string& id, int32_t len, uint32_t seed, KvRole role) {
  std::mt19937 rng(seed);
  EngineRequest r;
  r.request_id = id;
  for (int32_t i = 0; i < len; ++i) r.prompt_token_ids.push_back(static_cast<int32_t>(rng() % 997) + 3);
  r.params.max_tokens = 5;
  r.params.temperature = 0.0f;
  r.params.ignore_eos = true;
  r.params.logprobs = 3;
  r.kv_role = role;
  return r;
}

struct Seen {
  std::string request_id;
  KvRole role;
  int32_t start;
  int32_t count;
  bool operator==(const Seen&) const = default;
};

// Runs a local request and a prefill-only one side by side; returns every output, and the steps run.
std::pair<std::vector<RequestOutput>, int> RunBoth(Engine& engine) {
  EXPECT_TRUE(engine.AddRequest(Req("local", 70, 1, KvRole::kLocal)).ok());
  EXPECT_TRUE(engine.AddRequest(Req("prefill-only", 45, 2, KvRole::kPrefillOnly)).ok());
  std::vector<RequestOutput> outputs;
  int steps = 0;
  for (int guard = 0; engine.has_work() && guard < 100; ++guard) {
    auto stepped = engine.Step();
    EXPECT_TRUE(stepped.ok()) << stepped.status();
    if (stepped.ok() && *stepped) ++steps;
    for (RequestOutput& o : engine.TakeOutputs()) {
      if (o.finish_reason == FinishReason::kPrefillHandoff) {
        EXPECT_TRUE(engine.ReleaseTransfer(o.request_id).ok());
      }
      outputs.push_back(std::move(o));
    }
  }
  return {std::move(outputs), steps};
}

TEST(LayerCallbackTest, EachStepReportsEveryLayerInOrderWithItsPlan) {
  auto executor = Executor();
  std::vector<int32_t> layers;
  std::vector<std::vector<Seen>> plans;  // the plan at each layer-0 call
  const StepPlan* current = nullptr;
  ASSERT_TRUE(executor
                  ->SetLayerDoneCallback([&](const StepPlan& plan, int32_t layer) {
                    layers.push_back(layer);
                    if (layer == 0) {
                      current = &plan;
                      std::vector<Seen> seen;
                      for (const ExecSequence& s : plan.seqs) {
                        seen.push_back({std::string(s.request_id), s.kv_role, s.start_position,
                                        static_cast<int32_t>(s.token_ids.size())});
                      }
                      plans.push_back(std::move(seen));
                    } else {
                      EXPECT_EQ(&plan, current) << "every layer of a step reports the same plan";
                    }
                  })
                  .ok());
  auto engine = MakeEngine(std::move(executor));
  const auto [outputs, steps] = RunBoth(*engine);
  const int num_layers = Model().config.num_layers;
  ASSERT_EQ(num_layers, 2);
  ASSERT_EQ(layers.size(), static_cast<size_t>(steps * num_layers));
  for (size_t i = 0; i < layers.size(); ++i) EXPECT_EQ(layers[i], static_cast<int32_t>(i % num_layers)) << i;
  // Budget 32 per step: the prefill-only prompt (45 tokens) runs as consecutive chunks beside the
  // local one's, each reported with its position.
  std::vector<Seen> prefill_only;
  for (const std::vector<Seen>& plan : plans) {
    for (const Seen& s : plan) {
      if (s.request_id == "prefill-only") prefill_only.push_back(s);
      if (s.request_id == "local") {
        EXPECT_EQ(s.role, KvRole::kLocal);
      }
    }
  }
  int32_t covered = 0;
  for (const Seen& s : prefill_only) {
    EXPECT_EQ(s.role, KvRole::kPrefillOnly);
    EXPECT_EQ(s.start, covered);
    covered += s.count;
  }
  EXPECT_EQ(covered, 45);
  EXPECT_GE(prefill_only.size(), 2u);
}

TEST(LayerCallbackTest, TokensAndLogprobsAreBitwiseTheSameWithAndWithoutASubscriber) {
  auto plain = MakeEngine(Executor());
  auto hooked_executor = Executor();
  int calls = 0;
  ASSERT_TRUE(hooked_executor->SetLayerDoneCallback([&](const StepPlan&, int32_t) { ++calls; }).ok());
  auto hooked = MakeEngine(std::move(hooked_executor));
  const auto [want, want_steps] = RunBoth(*plain);
  const auto [got, got_steps] = RunBoth(*hooked);
  EXPECT_EQ(want_steps, got_steps);
  EXPECT_EQ(calls, got_steps * Model().config.num_layers);
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(want[i].request_id, got[i].request_id);
    EXPECT_EQ(want[i].new_token_ids, got[i].new_token_ids) << i;
    ASSERT_EQ(want[i].logprobs.size(), got[i].logprobs.size());
    for (size_t j = 0; j < want[i].logprobs.size(); ++j) {
      EXPECT_EQ(std::bit_cast<uint32_t>(want[i].logprobs[j].logprob),
                std::bit_cast<uint32_t>(got[i].logprobs[j].logprob));
    }
  }
  // An empty callback unsubscribes.
  ASSERT_TRUE(dynamic_cast<BackendModelExecutor&>(hooked->executor()).SetLayerDoneCallback({}).ok());
  const int before = calls;
  (void)RunBoth(*hooked);
  EXPECT_EQ(calls, before);
}

bool HasPrefillOnly(const StepPlan& plan) {
  return std::any_of(plan.seqs.begin(), plan.seqs.end(),
                     [](const ExecSequence& s) { return s.kv_role == KvRole::kPrefillOnly; });
}

// As a prefill worker's layer-wise sender subscribes: only steps that run a prefill-only sequence.
TEST(LayerCallbackTest, AStepFilterLimitsTheCallbacksToTheStepsItWants) {
  auto executor = Executor();
  int calls = 0, wanted = 0, steps = 0;
  ASSERT_TRUE(executor
                  ->SetLayerDoneCallback(
                      [&](const StepPlan& plan, int32_t) {
                        ++calls;
                        EXPECT_TRUE(HasPrefillOnly(plan));
                      },
                      [&](const StepPlan& plan) {
                        ++steps;
                        wanted += HasPrefillOnly(plan);
                        return HasPrefillOnly(plan);
                      })
                  .ok());
  auto engine = MakeEngine(std::move(executor));
  const auto [outputs, run_steps] = RunBoth(*engine);
  EXPECT_EQ(steps, run_steps);  // asked once per step
  EXPECT_GT(wanted, 0);
  EXPECT_LT(wanted, steps);
  EXPECT_EQ(calls, wanted * Model().config.num_layers);
}

}  // namespace
}  // namespace tandem::engine
