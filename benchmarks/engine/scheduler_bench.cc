// Scheduler CPU time per step (Schedule + Update: block allocation, prefix-cache hashing of newly
// full blocks, stop checks) at a steady decode batch of N running sequences, plus a mixed load
// where prompts keep arriving and are prefilled in chunks next to the decodes. No model runs:
// the "sampled" tokens are supplied, so this is the host-side cost that sits next to each GPU
// step. Target: under 100 µs per step at 512 running sequences.
//
//   scheduler_bench [steps=2000]
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tandem/engine/scheduler.h"
#include "tandem/kvcache/kv_block_manager.h"

namespace tandem::engine {
namespace {

double ThreadCpuMicros() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

struct Result {
  double mean_us = 0;
  double p50_us = 0;
  double p99_us = 0;
  double tokens_per_step = 0;
  int64_t preemptions = 0;
};

// `running` sequences decoding; when `arrivals` is set, a finished sequence is replaced by a new
// 512-token prompt (sharing a 256-token system prompt), so chunked prefills mix with decode.
Result Run(int32_t running, int32_t steps, bool caching, bool arrivals) {
  const int32_t block_size = 16;
  const int32_t prompt_len = 512;
  const int32_t max_tokens = arrivals ? 256 : steps + 64;
  kvcache::KvBlockManager kv(
      kvcache::KvBlockManagerConfig{.num_blocks = running * ((prompt_len + max_tokens) / block_size + 2),
                             .block_size = block_size,
                             .enable_prefix_caching = caching,
                             .hash_salt = 1});
  SchedulerConfig config;
  config.max_num_seqs = running;
  config.max_num_batched_tokens = running + 2048;
  config.max_model_len = 1 << 20;
  config.eos_token_ids = {2};
  Scheduler sched(config, &kv);

  std::mt19937 rng(7);
  std::vector<int32_t> system_prompt(256);
  for (auto& t : system_prompt) t = static_cast<int32_t>(rng() % 30000) + 10;
  SeqId next = 1;
  auto add = [&]() {
    auto s = std::make_unique<Sequence>();
    s->seq_id = next++;
    s->request_id = absl::StrCat("bench-", s->seq_id);
    auto p = std::make_shared<SamplingParams>();
    p->max_tokens = max_tokens;
    p->ignore_eos = true;
    s->params = p;
    s->tokens = system_prompt;
    while (s->num_tokens() < prompt_len) s->tokens.push_back(static_cast<int32_t>(rng() % 30000) + 10);
    s->num_prompt_tokens = prompt_len;
    s->arrival_order = s->seq_id;
    if (!sched.Add(std::move(s)).ok()) std::abort();
  };
  for (int32_t i = 0; i < running; ++i) add();

  std::vector<int32_t> sampled;
  auto step = [&]() {
    const SchedulerOutput& out = sched.Schedule();
    sampled.resize(static_cast<size_t>(out.num_logit_rows));
    for (auto& t : sampled) t = static_cast<int32_t>(rng() % 30000) + 10;
    sched.Update(sampled);
    const int32_t finished = static_cast<int32_t>(sched.newly_finished().size());
    sched.ReapFinished();
    if (arrivals) {
      for (int32_t i = 0; i < finished; ++i) add();
    }
    return out.num_tokens;
  };
  // Warm up: every prompt prefilled, the batch in steady state.
  for (int i = 0; i < 64 || sched.stats().num_running < running; ++i) {
    step();
    if (i > 100000) std::abort();
  }
  std::vector<double> times;
  times.reserve(static_cast<size_t>(steps));
  int64_t tokens = 0;
  const int64_t preempt_before = sched.stats().num_preemptions;
  for (int32_t i = 0; i < steps; ++i) {
    const double t0 = ThreadCpuMicros();
    tokens += step();
    times.push_back(ThreadCpuMicros() - t0);
  }
  Result r;
  r.mean_us = std::accumulate(times.begin(), times.end(), 0.0) / static_cast<double>(times.size());
  std::sort(times.begin(), times.end());
  r.p50_us = times[times.size() / 2];
  r.p99_us = times[times.size() * 99 / 100];
  r.tokens_per_step = static_cast<double>(tokens) / steps;
  r.preemptions = sched.stats().num_preemptions - preempt_before;
  return r;
}

}  // namespace
}  // namespace tandem::engine

int main(int argc, char** argv) {
  const int32_t steps = argc > 1 ? std::atoi(argv[1]) : 2000;
  std::printf("scheduler CPU time per step (Schedule + Update), %d timed steps, block size 16\n", steps);
  std::printf("%-44s %8s %10s %10s %10s %12s\n", "load", "running", "mean_us", "p50_us", "p99_us",
              "tokens/step");
  for (bool arrivals : {false, true}) {
    for (bool caching : {true, false}) {
      for (int32_t n : {64, 512}) {
        const auto r = tandem::engine::Run(n, steps, caching, arrivals);
        std::printf("%-44s %8d %10.1f %10.1f %10.1f %12.1f\n",
                    absl::StrCat(arrivals ? "decode + chunked prefills" : "steady decode",
                                 caching ? ", prefix cache" : ", no prefix cache")
                        .c_str(),
                    n, r.mean_us, r.p50_us, r.p99_us, r.tokens_per_step);
      }
    }
  }
  return 0;
}
