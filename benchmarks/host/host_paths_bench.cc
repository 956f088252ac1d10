// Microbenchmarks (Google Benchmark) of the host paths every request or step crosses, each reporting
// items/s so a regression shows as a lower rate: tokenizer encode (tokens), scheduler step at 64 and
// 512 running sequences (sequences scheduled), sampler (rows sampled), HTTP request parse (requests:
// Beast's parser, then the OpenAI body), router pick (routes among 8 workers with cached prefixes).
//
//   host_paths_bench [--benchmark_filter=REGEX] [--benchmark_min_time=0.5]
// The tokenizer case reads SmolLM2's GGUF ($TANDEM_SMOLLM2_GGUF or ~/.cache/tandem/models/...) and
// is skipped, saying so, when it is absent.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "nlohmann/json.hpp"
#include "tandem/engine/sampler.h"
#include "tandem/engine/scheduler.h"
#include "tandem/frontend/openai_request.h"
#include "tandem/kvcache/block_hash.h"
#include "tandem/kvcache/kv_block_manager.h"
#include "tandem/router/router.h"
#include "tandem/tokenizer/tokenizer.h"

namespace {

using namespace tandem;

std::string SmolLm2Path() {
  if (const char* p = std::getenv("TANDEM_SMOLLM2_GGUF")) return p;
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : "/root") +
         "/.cache/tandem/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

// ~4 KB of ordinary English with some digits and punctuation.
std::string SampleText() {
  const std::string para =
      "The river carried small boats past the old mill while children counted the clouds, and a baker "
      "sang about bread. In 1887 the mill ground 2,400 sacks of flour a week; today it is a museum "
      "(open 9:00-17:00, closed Mondays). \"Why do rivers bend?\" asked one child. ";
  std::string text;
  while (text.size() < 4096) text += para;
  return text;
}

void BM_TokenizerEncode(benchmark::State& state) {
  static auto tok = tokenizer::Tokenizer::FromModelPath(SmolLm2Path());
  if (!tok.ok()) {
    state.SkipWithError(absl::StrCat("no tokenizer: ", tok.status().message()).c_str());
    return;
  }
  const std::string text = SampleText();
  int64_t tokens = 0;
  for (auto _ : state) {
    auto ids = (*tok)->Encode(text, false);
    benchmark::DoNotOptimize(ids);
    tokens += static_cast<int64_t>(ids->size());
  }
  state.SetItemsProcessed(tokens);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(text.size()));
}
BENCHMARK(BM_TokenizerEncode);

// Schedule + Update of a steady decode batch of `running` sequences (prefix cache on), as
// benchmarks/engine/scheduler_bench.cc measures with percentiles.
void BM_SchedulerStep(benchmark::State& state) {
  const int32_t running = static_cast<int32_t>(state.range(0));
  const int32_t block_size = 16, prompt_len = 512, max_tokens = 4096;
  kvcache::KvBlockManager kv(
      kvcache::KvBlockManagerConfig{.num_blocks = running * ((prompt_len + max_tokens) / block_size + 2),
                             .block_size = block_size,
                             .enable_prefix_caching = true,
                             .hash_salt = 1});
  engine::SchedulerConfig config;
  config.max_num_seqs = running;
  config.max_num_batched_tokens = running + 2048;
  config.max_model_len = 1 << 20;
  config.eos_token_ids = {2};
  engine::Scheduler sched(config, &kv);
  std::mt19937 rng(7);
  engine::SeqId next = 1;
  auto add = [&] {
    auto s = std::make_unique<engine::Sequence>();
    s->seq_id = next++;
    s->request_id = absl::StrCat("bench-", s->seq_id);
    auto p = std::make_shared<engine::SamplingParams>();
    p->max_tokens = max_tokens;
    p->ignore_eos = true;
    s->params = p;
    for (int32_t t = 0; t < prompt_len; ++t) s->tokens.push_back(static_cast<int32_t>(rng() % 30000) + 10);
    s->num_prompt_tokens = prompt_len;
    s->arrival_order = s->seq_id;
    if (!sched.Add(std::move(s)).ok()) std::abort();
  };
  std::vector<int32_t> sampled;
  auto step = [&] {
    const engine::SchedulerOutput& out = sched.Schedule();
    sampled.resize(static_cast<size_t>(out.num_logit_rows));
    for (auto& t : sampled) t = static_cast<int32_t>(rng() % 30000) + 10;
    sched.Update(sampled);
    return out.num_logit_rows;
  };
  // Every prompt prefilled: the batch decodes in steady state.
  auto refill = [&] {
    const size_t finished = sched.newly_finished().size();
    sched.ReapFinished();
    for (size_t i = 0; i < finished; ++i) add();
    for (int i = 0; i < 64 || sched.stats().num_running < running; ++i) {
      step();
      const size_t more = sched.newly_finished().size();  // prefilled in different steps, they end apart
      sched.ReapFinished();
      for (size_t j = 0; j < more; ++j) add();
    }
  };
  for (int32_t i = 0; i < running; ++i) add();
  refill();
  int64_t rows = 0;
  for (auto _ : state) {
    rows += step();
    if (!sched.newly_finished().empty()) {  // every 4096 steps: new sequences, not timed
      state.PauseTiming();
      refill();
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(rows);
}
BENCHMARK(BM_SchedulerStep)->Arg(64)->Arg(512);

// One row of SmolLM2's vocabulary (49152): greedy, and temperature + top-p + top-k with penalties.
void BM_Sampler(benchmark::State& state) {
  const bool greedy = state.range(0) == 0;
  std::vector<float> logits(49152);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0, 3);
  for (float& v : logits) v = normal(rng);
  engine::SamplingParams params;
  if (greedy) {
    params.temperature = 0;
  } else {
    params.temperature = 0.8f;
    params.top_p = 0.95f;
    params.top_k = 50;
    params.repetition_penalty = 1.1f;
    params.presence_penalty = 0.5f;
  }
  std::vector<int32_t> prompt(512), output(128), eos = {2};
  for (auto& t : prompt) t = static_cast<int32_t>(rng() % 49152);
  for (auto& t : output) t = static_cast<int32_t>(rng() % 49152);
  engine::Sampler sampler;
  uint64_t seed = 0;
  for (auto _ : state) {
    engine::SamplerInput in{&params, prompt, output, ++seed, eos};
    benchmark::DoNotOptimize(sampler.Sample(logits, in));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetLabel(greedy ? "greedy" : "t=0.8 top_p top_k penalties");
}
BENCHMARK(BM_Sampler)->Arg(0)->Arg(1);

// A streaming chat request as a client sends it: Beast parses the bytes, then the OpenAI body.
void BM_HttpRequestParse(benchmark::State& state) {
  nlohmann::json body = {{"model", "smollm2"},
                         {"stream", true},
                         {"max_tokens", 128},
                         {"temperature", 0.7},
                         {"messages",
                          {{{"role", "system"}, {"content", "You are a helpful assistant."}},
                           {{"role", "user"}, {"content", SampleText().substr(0, 1500)}}}}};
  const std::string payload = body.dump();
  const std::string raw = absl::StrCat(
      "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: application/json\r\n"
      "Authorization: Bearer sk-test\r\nAccept: text/event-stream\r\nContent-Length: ",
      payload.size(), "\r\n\r\n", payload);
  namespace http = boost::beast::http;
  for (auto _ : state) {
    http::request_parser<http::string_body> parser;
    boost::beast::error_code ec;
    parser.eager(true);
    size_t offset = 0;
    while (!ec && !parser.is_done() && offset < raw.size()) {
      offset += parser.put(boost::asio::buffer(raw.data() + offset, raw.size() - offset), ec);
    }
    if (ec || !parser.is_done()) {
      state.SkipWithError("Beast did not parse the request");
      return;
    }
    auto request = frontend::ParseOpenAiRequest(frontend::ApiKind::kChat, parser.get().body());
    if (!std::holds_alternative<frontend::OpenAiRequest>(request)) {
      state.SkipWithError("the OpenAI request was rejected");
      return;
    }
    benchmark::DoNotOptimize(request);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(raw.size()));
}
BENCHMARK(BM_HttpRequestParse);

// kv_aware pick of a decode worker among 8, each holding 64 cached 1024-token prefixes, for a
// 2048-token prompt that shares one of them.
void BM_RouterPick(benchmark::State& state) {
  router::RouterOptions options;
  options.block_size = 16;
  options.hash_salt = 1;
  router::Router r(options);
  std::mt19937 rng(5);
  std::vector<std::vector<int32_t>> prefixes;
  for (int w = 0; w < 8; ++w) {
    const std::string id = absl::StrCat("decode-", w);
    r.AddWorker(cluster::WorkerInfo{
        .id = id, .role = cluster::WorkerRole::kDecode, .address = absl::StrCat("127.0.0.1:", 9000 + w)});
    for (int p = 0; p < 64; ++p) {
      std::vector<int32_t> tokens(1024);
      for (auto& t : tokens) t = static_cast<int32_t>(rng() % 30000) + 10;
      kvcache::KvEvent stored;
      stored.type = kvcache::KvEventType::kBlockStored;
      stored.block_hashes = kvcache::HashFullBlocks(tokens, 16, 1);
      stored.token_ids = tokens;
      stored.block_size = 16;
      r.ApplyKvEvents(id, std::span<const kvcache::KvEvent>(&stored, 1));
      prefixes.push_back(std::move(tokens));
    }
    r.UpdateLoad(id, router::WorkerLoad{.active_decode_blocks = 100 * w, .num_running = w, .num_waiting = 0});
  }
  std::vector<int32_t> prompt = prefixes[137];
  for (int i = 0; i < 1024; ++i) prompt.push_back(static_cast<int32_t>(rng() % 30000) + 10);
  for (auto _ : state) {
    auto route = r.RouteDecode(prompt);
    if (!route.ok()) {
      state.SkipWithError(std::string(route.status().message()).c_str());
      return;
    }
    r.ReleaseRequest(route->worker_id, route->prompt_blocks);
    benchmark::DoNotOptimize(route);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_RouterPick);

}  // namespace

BENCHMARK_MAIN();
