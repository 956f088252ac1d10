// Step times of a tensor-parallel worker's executor against tensor_parallel 1, built the way a worker
// builds it (CreateEngine from a deployment on the CPU backend): a 256-token prefill step and decode
// steps at batch 1 and 8 with 256 tokens of context, medians of repeated steps, for each width given.
// Every width runs the fp32 weights (a GGUF's packed Q4_1 would run at TP 1 only). On a machine with fewer cores than ranks x threads this shows the cost of the collectives and the
// split, not a speed-up: every rank shares the same cores.
//
// Usage: tensor_parallel_bench [--model PATH] [--tp 1,2,4] [--threads N] [--runs 15]
// PATH defaults to $TANDEM_SMOLLM2_GGUF or ~/.cache/tandem/models/SmolLM2-135M-Instruct.Q4_1.gguf.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "smollm2_path.h"
#include "tandem/core/config.h"
#include "tandem/engine/engine.h"
#include "tandem/engine/engine_factory.h"

namespace tandem::engine {
namespace {

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Times `runs` executions of steps over `batch` sequences: prefill of `prompt` tokens each when
// `decode` is false, else one decode token each at position `prompt`.
double StepMs(ModelExecutor& ex, int batch, int prompt, bool decode, int runs) {
  const int bs = ex.block_size();
  const int blocks = (prompt + 1 + bs - 1) / bs;
  std::vector<std::vector<int32_t>> tokens(static_cast<size_t>(batch));
  std::vector<std::vector<kvcache::BlockId>> tables(static_cast<size_t>(batch));
  for (int s = 0; s < batch; ++s) {
    for (int i = 0; i < prompt; ++i) tokens[static_cast<size_t>(s)].push_back((i * 37 + s * 101 + 11) % 30000);
    for (int b = 0; b < blocks; ++b) tables[static_cast<size_t>(s)].push_back(s * blocks + b);
  }
  auto plan_for = [&](bool decode_step) {
    StepPlan plan;
    for (int s = 0; s < batch; ++s) {
      ExecSequence e;
      const auto& t = tokens[static_cast<size_t>(s)];
      e.token_ids = decode_step ? std::span<const int32_t>(t).last(1) : std::span<const int32_t>(t);
      e.start_position = decode_step ? prompt : 0;
      e.block_table = tables[static_cast<size_t>(s)];
      e.needs_logits = true;
      plan.num_tokens += static_cast<int32_t>(e.token_ids.size());
      plan.seqs.push_back(e);
    }
    plan.num_logit_rows = batch;
    return plan;
  };
  const StepPlan prefill = plan_for(false), step = plan_for(true);
  if (decode && !ex.Execute(prefill).ok()) return -1;  // the context the decode steps read
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = Clock::now();
    if (!ex.Execute(decode ? step : prefill).ok()) return -1;
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return Median(ms);
}

int Main(int argc, char** argv) {
  std::string model = bench::DefaultSmolLm2Gguf();
  std::vector<int> widths = {1, 2, 4};
  int threads = 0, runs = 15;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--model") {
      model = value;
    } else if (flag == "--tp") {
      widths.clear();
      for (absl::string_view w : absl::StrSplit(value, ',')) {
        int n = 0;
        if (!absl::SimpleAtoi(w, &n) || n < 1) {
          std::fprintf(stderr, "--tp: expected a list of widths, found '%s'\n", value.c_str());
          return 2;
        }
        widths.push_back(n);
      }
    } else if (flag == "--threads" && absl::SimpleAtoi(value, &threads)) {
    } else if (flag == "--runs" && absl::SimpleAtoi(value, &runs) && runs > 0) {
    } else {
      std::fprintf(stderr, "usage: tensor_parallel_bench [--model PATH] [--tp 1,2,4] [--threads N] [--runs 15]\n");
      return 2;
    }
  }
  std::printf("| tensor_parallel | prefill 256 ms | decode b=1 ms | decode b=8 ms |\n|---:|---:|---:|---:|\n");
  for (int tp : widths) {
    const std::string yaml =
        absl::StrCat("model: {path: '", model, "', max_model_len: 512}\nbackend: cpu\nkv_cache: {cpu_memory_mib: 256}\n",
                     "logging: {level: warn}\npools:\n  both: {tensor_parallel: ", tp,
                     ", max_num_seqs: 16, max_num_batched_tokens: 4096}\n");
    auto config = ParseDeploymentConfig(yaml, "bench.yaml");
    if (!config.ok()) return std::fprintf(stderr, "%s\n", std::string(config.status().message()).c_str()), 1;
    auto loaded = LoadDeploymentModel(*config);
    if (!loaded.ok()) return std::fprintf(stderr, "%s\n", std::string(loaded.status().message()).c_str()), 1;
    loaded->gguf.reset();  // fp32 weights at every width (ranks do not split GGUF block formats)
    auto engine = CreateEngine(*config, config->pools.both, *loaded, EngineBuildOptions{.cpu_threads = threads});
    if (!engine.ok()) return std::fprintf(stderr, "%s\n", std::string(engine.status().message()).c_str()), 1;
    ModelExecutor& ex = (*engine)->executor();
    const double prefill = StepMs(ex, 1, 256, false, std::max(3, runs / 3));
    const double b1 = StepMs(ex, 1, 256, true, runs);
    const double b8 = StepMs(ex, 8, 256, true, runs);
    std::printf("| %d | %.1f | %.2f | %.2f |\n", tp, prefill, b1, b8);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace tandem::engine

int main(int argc, char** argv) { return tandem::engine::Main(argc, argv); }
