// The engine end to end on a real model (the golden tiny Llama checkpoint, CPU backend): prefix
// cache hits, chunking and preemption don't change a single logit or token; seeded sampling is
// reproducible whatever the batch; n > 1 shares the prompt; a prefill-only engine hands its KV
// blocks to a decode engine and the decode output equals the aggregated one; the threaded loop
// streams, aborts and stops cleanly.
#include <atomic>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#ifdef TANDEM_HAS_CUDA
#include <cuda_runtime.h>
#endif
#include "nlohmann/json.hpp"
#include "support/status_matchers.h"
#include "tandem/backend/cpu_backend.h"
#include "tandem/backend/model_runner.h"
#include "tandem/engine/backend_model_executor.h"
#include "tandem/engine/engine.h"
#include "tandem/engine/engine_factory.h"
#include "tandem/engine/engine_loop.h"
#include "tandem/model/loader.h"

namespace tandem::engine {
namespace {

const std::string kModelDir = std::string(TANDEM_SOURCE_DIR) + "/tests/golden/models/llama";

// Forwards to the real executor and keeps a copy of every logits row it returns, in order.
class RecordingExecutor final : public ModelExecutor {
 public:
  explicit RecordingExecutor(std::unique_ptr<BackendModelExecutor> inner) : inner_(std::move(inner)) {}
  int32_t vocab_size() const override { return inner_->vocab_size(); }
  int32_t num_kv_blocks() const override { return inner_->num_kv_blocks(); }
  int32_t block_size() const override { return inner_->block_size(); }
  absl::StatusOr<std::span<const float>> Execute(const StepPlan& plan) override {
    for (const ExecSequence& s : plan.seqs) start_positions.push_back(s.start_position);
    auto logits = inner_->Execute(plan);
    if (logits.ok()) {
      for (int32_t r = 0; r < plan.num_logit_rows; ++r) {
        rows.emplace_back(logits->begin() + r * vocab_size(), logits->begin() + (r + 1) * vocab_size());
      }
    }
    return logits;
  }
  BackendModelExecutor& inner() { return *inner_; }

  std::vector<std::vector<float>> rows;
  std::vector<int32_t> start_positions;

 private:
  std::unique_ptr<BackendModelExecutor> inner_;
};

struct Built {
  std::unique_ptr<Engine> engine;
  RecordingExecutor* recorder = nullptr;
};

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

Built Build(int32_t num_blocks, SchedulerConfig sc, bool caching = true, int32_t block_size = 16) {
  Built b;
  auto backend = backend::CreateCpuBackend({.num_threads = 1});
  EXPECT_TRUE(backend.ok()) << backend.status();
  auto runner = backend::ModelRunner::Create(backend->get(), Model().config, Model().weights);
  EXPECT_TRUE(runner.ok()) << runner.status();
  auto exec = BackendModelExecutor::Create(std::move(backend).value(), std::move(runner).value(), num_blocks,
                                           block_size);
  EXPECT_TRUE(exec.ok()) << exec.status();
  auto rec = std::make_unique<RecordingExecutor>(std::move(exec).value());
  b.recorder = rec.get();
  EngineConfig config;
  config.scheduler = sc;
  config.scheduler.eos_token_ids = Model().config.eos_token_ids;
  config.enable_prefix_caching = caching;
  auto engine = Engine::Create(config, std::move(rec));
  EXPECT_TRUE(engine.ok()) << engine.status();
  b.engine = std::move(engine).value();
  return b;
}

SchedulerConfig Sched(int32_t budget = 512, int32_t max_seqs = 16) {
  SchedulerConfig s;
  s.max_num_batched_tokens = budget;
  s.max_num_seqs = max_seqs;
  s.max_model_len = 256;
  return s;
}

std::vector<int32_t> Prompt(int32_t len, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> p(static_cast<size_t>(len));
  for (auto& t : p) t = static_cast<int32_t>(rng() % 997) + 3;  // avoid EOS (2)
  return p;
}

EngineRequest Req(const std::string& id, std::vector<int32_t> prompt, int32_t max_tokens,
                  float temperature = 0.0f, std::optional<uint64_t> seed = std::nullopt) {
  EngineRequest r;
  r.request_id = id;
  r.prompt_token_ids = std::move(prompt);
  r.params.max_tokens = max_tokens;
  r.params.temperature = temperature;
  r.params.seed = seed;
  r.params.ignore_eos = true;
  return r;
}

// Steps until idle; returns tokens per (request id, index) and the final outputs.
struct RunResult {
  std::map<std::pair<std::string, int32_t>, std::vector<int32_t>> tokens;
  std::map<std::pair<std::string, int32_t>, RequestOutput> final;
};

void Drain(Engine& e, RunResult& r, int max_steps = 10000) {
  for (int i = 0; i < max_steps && e.has_work(); ++i) {
    auto stepped = e.Step();
    ASSERT_TRUE(stepped.ok()) << stepped.status();
    for (RequestOutput& o : e.TakeOutputs()) {
      auto key = std::make_pair(o.request_id, o.index);
      auto& t = r.tokens[key];
      t.insert(t.end(), o.new_token_ids.begin(), o.new_token_ids.end());
      if (o.finished) r.final[key] = std::move(o);
    }
  }
  ASSERT_FALSE(e.has_work());
}

std::pair<std::string, int32_t> K(const std::string& id, int32_t index) { return {id, index}; }

bool Bitwise(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(EngineModelTest, GreedyOutputMatchesTransformersReference) {
  std::ifstream in(kModelDir + "/reference.json");
  ASSERT_TRUE(in.good());
  const nlohmann::json ref = nlohmann::json::parse(in);
  Built b = Build(256, Sched(8));  // small budget: prompts are prefilled in chunks
  int i = 0;
  for (const auto& p : ref["prompts"]) {
    const auto want = p["greedy_tokens"].get<std::vector<int32_t>>();
    ASSERT_TRUE(b.engine
                    ->AddRequest(Req(absl::StrCat("ref", i++), p["prompt"].get<std::vector<int32_t>>(),
                                     static_cast<int32_t>(want.size())))
                    .ok());
  }
  RunResult r;
  Drain(*b.engine, r);
  i = 0;
  for (const auto& p : ref["prompts"]) {
    EXPECT_EQ(r.tokens[K(absl::StrCat("ref", i++), 0)], p["greedy_tokens"].get<std::vector<int32_t>>());
  }
}

TEST(EngineModelTest, PrefixCacheHitGivesBitwiseTheColdLogits) {
  Built b = Build(64, Sched());
  const auto prompt = Prompt(45, 1);  // two full blocks of 16 are cacheable
  ASSERT_TRUE(b.engine->AddRequest(Req("cold", prompt, 6)).ok());
  RunResult cold;
  Drain(*b.engine, cold);
  const auto cold_rows = b.recorder->rows;
  ASSERT_EQ(cold_rows.size(), 6u);
  b.recorder->rows.clear();
  b.recorder->start_positions.clear();

  ASSERT_TRUE(b.engine->AddRequest(Req("warm", prompt, 6)).ok());
  RunResult warm;
  Drain(*b.engine, warm);
  EXPECT_EQ(warm.final[K("warm", 0)].num_cached_tokens, 32);
  EXPECT_EQ(b.recorder->start_positions.front(), 32);  // the hit blocks were not recomputed
  ASSERT_EQ(b.recorder->rows.size(), 6u);
  for (size_t i = 0; i < cold_rows.size(); ++i) EXPECT_TRUE(Bitwise(cold_rows[i], b.recorder->rows[i])) << i;
  EXPECT_EQ(cold.tokens[K("cold", 0)], warm.tokens[K("warm", 0)]);
  EXPECT_GT(b.engine->metrics().prefix_cache_hit_rate(), 0.0);
}

TEST(EngineModelTest, ChunkedPrefillGivesBitwiseTheSameLogits) {
  const auto prompt = Prompt(70, 2);
  std::vector<std::vector<float>> rows[2];
  int k = 0;
  for (int32_t budget : {512, 7}) {
    Built b = Build(64, Sched(budget), /*caching=*/false);
    ASSERT_TRUE(b.engine->AddRequest(Req("r", prompt, 5)).ok());
    RunResult r;
    Drain(*b.engine, r);
    rows[k++] = b.recorder->rows;
  }
  ASSERT_EQ(rows[0].size(), 5u);
  ASSERT_EQ(rows[1].size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_TRUE(Bitwise(rows[0][i], rows[1][i])) << i;
}

TEST(EngineModelTest, PreemptedAndResumedRequestsProduceTheSameTokens) {
  // Undisturbed: each request alone with plenty of blocks.
  std::vector<EngineRequest> reqs;
  for (int i = 0; i < 6; ++i) {
    const bool sampled = i % 2 == 1;
    reqs.push_back(Req(absl::StrCat("q", i), Prompt(20 + 7 * i, 10 + i), 40, sampled ? 0.9f : 0.0f,
                       sampled ? std::optional<uint64_t>(100 + i) : std::nullopt));
  }
  std::map<std::string, std::vector<int32_t>> want;
  for (const auto& r : reqs) {
    Built b = Build(64, Sched());
    ASSERT_TRUE(b.engine->AddRequest(r).ok());
    RunResult out;
    Drain(*b.engine, out);
    want[r.request_id] = out.tokens[K(r.request_id, 0)];
    ASSERT_EQ(want[r.request_id].size(), 40u);
  }
  // Together in a pool too small for all of them: preemption by recompute must happen.
  Built b = Build(12, Sched(64));
  for (const auto& r : reqs) ASSERT_TRUE(b.engine->AddRequest(r).ok());
  RunResult out;
  Drain(*b.engine, out);
  EXPECT_GT(b.engine->metrics().num_preemptions, 0);
  for (const auto& r : reqs) EXPECT_EQ(out.tokens[K(r.request_id, 0)], want[r.request_id]) << r.request_id;
  EXPECT_EQ(b.engine->block_manager().num_used_blocks(), 0);
}

TEST(EngineModelTest, SeededSamplingIsReproducibleWhateverTheBatch) {
  const auto prompt = Prompt(12, 3);
  auto run = [&](uint64_t seed, int others) {
    Built b = Build(128, Sched());
    for (int i = 0; i < others; ++i) {
      EXPECT_TRUE(b.engine->AddRequest(Req(absl::StrCat("o", i), Prompt(9 + i, 50 + i), 30, 1.0f)).ok());
    }
    EXPECT_TRUE(b.engine->AddRequest(Req("x", prompt, 30, 1.0f, seed)).ok());
    RunResult r;
    Drain(*b.engine, r);
    return r.tokens[K("x", 0)];
  };
  std::vector<int32_t> alone, batched, other_seed;
  alone = run(7, 0);
  batched = run(7, 5);
  other_seed = run(8, 0);
  EXPECT_EQ(alone.size(), 30u);
  EXPECT_EQ(alone, batched);
  EXPECT_NE(alone, other_seed);
}

TEST(EngineModelTest, NSequencesShareThePromptAndSequenceZeroMatchesN1) {
  const auto prompt = Prompt(40, 4);
  Built one = Build(64, Sched());
  ASSERT_TRUE(one.engine->AddRequest(Req("a", prompt, 10, 1.0f, 99)).ok());
  RunResult r1;
  Drain(*one.engine, r1);

  Built three = Build(64, Sched(), /*caching=*/false);
  EngineRequest r = Req("a", prompt, 10, 1.0f, 99);
  r.params.n = 3;
  r.params.logprobs = 2;
  ASSERT_TRUE(three.engine->AddRequest(r).ok());
  RunResult r3;
  Drain(*three.engine, r3);
  ASSERT_EQ(r3.final.size(), 3u);
  EXPECT_EQ(r3.tokens[K("a", 0)], r1.tokens[K("a", 0)]);
  EXPECT_NE(r3.tokens[K("a", 1)], r3.tokens[K("a", 2)]);
  EXPECT_EQ(r3.final[K("a", 1)].num_cached_tokens, 32);  // two full blocks shared, no prefix cache
  EXPECT_EQ(r3.final[K("a", 2)].num_cached_tokens, 32);
  EXPECT_EQ(three.engine->block_manager().num_used_blocks(), 0);
}

TEST(EngineModelTest, PrefillOnlyHandOffThenRemoteDecodeEqualsAggregated) {
  const auto prompt = Prompt(37, 5);
  Built agg = Build(64, Sched());
  ASSERT_TRUE(agg.engine->AddRequest(Req("r", prompt, 12)).ok());
  RunResult want;
  Drain(*agg.engine, want);

  Built prefill = Build(64, Sched(16));
  Built decode = Build(64, Sched());
  EngineRequest p = Req("r", prompt, 12);
  p.kv_role = KvRole::kPrefillOnly;
  ASSERT_TRUE(prefill.engine->AddRequest(p).ok());
  EngineRequest d = Req("r", prompt, 12);
  d.kv_role = KvRole::kRemotePrefill;
  ASSERT_TRUE(decode.engine->AddRequest(d).ok());
  // The decode side allocates the prompt's blocks first.
  ASSERT_TRUE(decode.engine->Step().ok());
  auto remote = decode.engine->TakeRemoteKvRequests();
  ASSERT_EQ(remote.size(), 1u);
  EXPECT_EQ(remote[0].block_ids.size(), 3u);
  EXPECT_EQ(decode.engine->metrics().num_waiting_for_remote_kv, 1);
  // The prefill side computes the prompt, samples one token and pins its blocks.
  RunResult pre;
  Drain(*prefill.engine, pre);
  const RequestOutput& handoff = pre.final[K("r", 0)];
  EXPECT_EQ(handoff.finish_reason, FinishReason::kPrefillHandoff);
  ASSERT_EQ(handoff.kv_blocks.size(), 3u);
  EXPECT_EQ(prefill.engine->block_manager().num_used_blocks(), 3);
  // Move the bytes, layer by layer (what the transfer module does over UCX/NCCL).
  backend::KvPool& src = *prefill.recorder->inner().kv_pool();
  backend::KvPool& dst = *decode.recorder->inner().kv_pool();
  for (int layer = 0; layer < src.spec().num_layers; ++layer) {
    for (size_t i = 0; i < handoff.kv_blocks.size(); ++i) {
      std::memcpy(dst.BlockData(layer, remote[0].block_ids[i]), src.BlockData(layer, handoff.kv_blocks[i]),
                  src.BytesPerBlock());
    }
  }
  ASSERT_TRUE(prefill.engine->ReleaseTransfer("r").ok());
  EXPECT_EQ(prefill.engine->block_manager().num_used_blocks(), 0);
  ASSERT_TRUE(decode.engine->CompleteRemotePrefill("r", pre.tokens[K("r", 0)].front()).ok());
  RunResult got;
  for (RequestOutput& o : decode.engine->TakeOutputs()) {
    got.tokens[{o.request_id, o.index}] = o.new_token_ids;
  }
  Drain(*decode.engine, got);
  EXPECT_EQ(got.tokens[K("r", 0)], want.tokens[K("r", 0)]);
  EXPECT_EQ(decode.engine->block_manager().num_used_blocks(), 0);
}

TEST(EngineModelTest, ExecutorErrorsEndTheStepsRequestsWithTheStatus) {
  // The scheduler allows 512 tokens but the model has 256 positions: the backend refuses the step
  // that crosses 256, and the request ends with kError carrying that status, its blocks freed.
  SchedulerConfig sc = Sched();
  sc.max_model_len = 512;
  Built b = Build(64, sc);
  ASSERT_TRUE(b.engine->AddRequest(Req("long", Prompt(250, 6), 20)).ok());
  ASSERT_TRUE(b.engine->AddRequest(Req("short", Prompt(10, 7), 3)).ok());
  bool failed_step = false;
  RunResult out;
  for (int i = 0; i < 100 && b.engine->has_work(); ++i) {
    failed_step = failed_step || !b.engine->Step().ok();
    for (RequestOutput& o : b.engine->TakeOutputs()) {
      if (o.finished) out.final[K(o.request_id, o.index)] = std::move(o);
    }
  }
  EXPECT_TRUE(failed_step);
  const RequestOutput& f = out.final[K("long", 0)];
  EXPECT_EQ(f.finish_reason, FinishReason::kError);
  EXPECT_ERROR(f.status, absl::StatusCode::kInvalidArgument, "more than the model's 256");
  EXPECT_EQ(b.engine->block_manager().num_used_blocks(), 0);
  EXPECT_FALSE(b.engine->has_request("long"));
  // Out-of-vocabulary prompt ids are refused before they reach the model.
  EXPECT_ERROR(b.engine->AddRequest(Req("bad", {1, 5000}, 5)), absl::StatusCode::kInvalidArgument,
               "request bad: prompt token 1 is 5000, expected an id in [0, 1000)");
}

TEST(EngineLoopTest, StreamsFromManyThreadsAbortsAndStops) {
  Built b = Build(128, Sched(64));
  EngineLoop loop(std::move(b.engine));
  loop.Start();
  std::vector<std::thread> clients;
  std::atomic<int> finished_ok{0};
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      auto stream = loop.Submit(Req(absl::StrCat("t", t), Prompt(10 + t, 20 + t), 8));
      ASSERT_TRUE(stream.ok()) << stream.status();
      int tokens = 0;
      bool finished = false;
      while (auto o = (*stream)->Next()) {
        tokens += static_cast<int>(o->new_token_ids.size());
        finished = finished || o->finished;
      }
      if (finished && tokens == 8) ++finished_ok;
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(finished_ok.load(), 4);

  // A long request aborted while it runs ends with kAborted.
  auto long_stream = loop.Submit(Req("long", Prompt(10, 30), 200));
  ASSERT_TRUE(long_stream.ok());
  auto first = (*long_stream)->Next();
  ASSERT_TRUE(first.has_value());
  loop.Abort("long");
  FinishReason reason = FinishReason::kNone;
  while (auto o = (*long_stream)->Next()) {
    if (o->finished) reason = o->finish_reason;
  }
  EXPECT_EQ(reason, FinishReason::kAborted);
  // n = 2 through a stream: two finished sequences, then the stream closes.
  EngineRequest two = Req("two", Prompt(20, 32), 5, 1.0f, 3);
  two.params.n = 2;
  auto two_stream = loop.Submit(two);
  ASSERT_TRUE(two_stream.ok());
  int finished_seqs = 0;
  bool request_finished = false;
  while (auto o = (*two_stream)->Next()) {
    finished_seqs += o->finished;
    request_finished = request_finished || o->request_finished;
  }
  EXPECT_EQ(finished_seqs, 2);
  EXPECT_TRUE(request_finished);
  // A duplicate live id ends its second stream with AlreadyExists.
  auto dup1 = loop.Submit(Req("dup", Prompt(10, 33), 100));
  auto dup2 = loop.Submit(Req("dup", Prompt(10, 33), 100));
  ASSERT_TRUE(dup1.ok() && dup2.ok());
  auto dup_out = (*dup2)->Next();
  ASSERT_TRUE(dup_out.has_value());
  EXPECT_EQ(dup_out->status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_FALSE((*dup2)->Next().has_value());
  loop.Abort("dup");
  while ((*dup1)->Next()) {
  }
  // Invalid requests fail on the caller's thread.
  EXPECT_ERROR(loop.Submit(Req("bad", {}, 4)), absl::StatusCode::kInvalidArgument,
               "request bad: expected a non-empty prompt");
  // Stop ends whatever is still live.
  auto pending = loop.Submit(Req("pending", Prompt(10, 31), 200));
  ASSERT_TRUE(pending.ok());
  loop.Stop();
  FinishReason last = FinishReason::kNone;
  while (auto o = (*pending)->Next()) {
    if (o->finished) last = o->finish_reason;
  }
  EXPECT_TRUE(last == FinishReason::kAborted || last == FinishReason::kLength);
  const SchedulerStats m = loop.metrics();
  EXPECT_EQ(m.num_running, 0);
  EXPECT_EQ(m.kv_blocks_used, 0);
  EXPECT_EQ(m.kv_blocks_total, 128);
  EXPECT_GT(m.total_generated_tokens, 32);
  EXPECT_FALSE(loop.TakeKvEvents().empty());
}

TEST(EngineFactoryTest, BuildsACpuEngineFromTheDeploymentFile) {
  DeploymentConfig config;
  config.source = "test.yaml";
  config.backend = BackendKind::kCpu;
  config.model.path = kModelDir;
  config.model.max_model_len = 256;
  config.kv_cache.cpu_memory_mib = 1;  // 8 KiB per block over both layers: 128 blocks
  config.pools.decode.max_num_seqs = 8;
  auto engine = CreateEngineFromDeployment(config, config.pools.decode);
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_EQ((*engine)->block_manager().num_blocks(), 128);
  EXPECT_EQ((*engine)->scheduler().config().max_num_seqs, 8);
  EXPECT_EQ((*engine)->scheduler().config().eos_token_ids, std::vector<int32_t>{2});
  std::ifstream in(kModelDir + "/reference.json");
  const nlohmann::json ref = nlohmann::json::parse(in);
  const auto want = ref["prompts"][0]["greedy_tokens"].get<std::vector<int32_t>>();
  ASSERT_TRUE((*engine)
                  ->AddRequest(Req("r", ref["prompts"][0]["prompt"].get<std::vector<int32_t>>(),
                                   static_cast<int32_t>(want.size())))
                  .ok());
  RunResult r;
  Drain(**engine, r);
  EXPECT_EQ(r.tokens[K("r", 0)], want);

  config.model.max_model_len = 4096;  // beyond the model's 256 positions
  EXPECT_EQ(CreateEngineFromDeployment(config, config.pools.decode).status().code(),
            absl::StatusCode::kInvalidArgument);
  config.model.max_model_len = 256;
  config.backend = BackendKind::kCuda;
#ifdef TANDEM_HAS_CUDA
  // A CUDA build on a machine without a GPU says so (tests/gpu/ runs the CUDA engine where there is one).
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    const absl::Status no_gpu = CreateEngineFromDeployment(config, config.pools.decode).status();
    EXPECT_EQ(no_gpu.code(), absl::StatusCode::kFailedPrecondition) << no_gpu;
    EXPECT_THAT(std::string(no_gpu.message()), ::testing::HasSubstr("no CUDA device"));
  }
#else
  const absl::Status no_cuda = CreateEngineFromDeployment(config, config.pools.decode).status();
  EXPECT_EQ(no_cuda.code(), absl::StatusCode::kUnimplemented) << no_cuda;
  EXPECT_THAT(std::string(no_cuda.message()), ::testing::HasSubstr("no CUDA backend"));
#endif
}

}  // namespace
}  // namespace tandem::engine
