// SmolLM2 (or any model) throughput on the CPU backend: prefill tok/s for a prompt, and decode tok/s
// at batch 1 and batch 8, each the median of several runs. Compare with llama.cpp on the same file
// through benchmarks/llama_cpp_bench.py.
//
// Usage: cpu_model_bench [--model PATH] [--threads N] [--prompt-tokens 128] [--decode-tokens 32]
//                        [--runs 5] [--batches 1,8] [--fp32]
// A GGUF model keeps its Q4_1 / Q8_0 matrices packed (bit-identical results); --fp32 uses the
// dequantized fp32 weights instead.
// PATH defaults to $TANDEM_SMOLLM2_GGUF or ~/.cache/tandem/models/SmolLM2-135M-Instruct.Q4_1.gguf.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "tandem/backend/cpu_backend.h"
#include "smollm2_path.h"
#include "tandem/backend/model_runner.h"
#include "tandem/backend/sequence_runner.h"
#include "tandem/model/loader.h"

namespace {

using Clock = std::chrono::steady_clock;
using tandem::backend::SequenceRunner;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "cpu_model_bench: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = tandem::bench::DefaultSmolLm2Gguf();
  int threads = 0, prompt_tokens = 128, decode_tokens = 32, runs = 5;
  bool fp32 = false;
  std::vector<int> batches = {1, 8};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "cpu_model_bench: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    auto int_value = [&]() {
      const std::string v = value();
      int out = 0;
      if (!absl::SimpleAtoi(v, &out) || out < 0) {
        std::fprintf(stderr, "cpu_model_bench: %s expects a non-negative integer, got '%s'\n", arg.c_str(), v.c_str());
        std::exit(2);
      }
      return out;
    };
    if (arg == "--model") model = value();
    else if (arg == "--fp32") fp32 = true;
    else if (arg == "--threads") threads = int_value();
    else if (arg == "--prompt-tokens") prompt_tokens = int_value();
    else if (arg == "--decode-tokens") decode_tokens = int_value();
    else if (arg == "--runs") runs = std::max(1, int_value());
    else if (arg == "--batches") {
      batches.clear();
      for (absl::string_view part : absl::StrSplit(value(), ',')) {
        int b = 0;
        if (!absl::SimpleAtoi(part, &b) || b <= 0) return Fail("--batches expects positive integers");
        batches.push_back(b);
      }
    } else {
      return Fail("unknown argument " + arg);
    }
  }
  auto loaded = tandem::model::LoadModel({.path = model, .show_progress = false});
  if (!loaded.ok()) return Fail(std::string(loaded.status().message()));
  auto backend = tandem::backend::CreateCpuBackend({.num_threads = threads});
  if (!backend.ok()) return Fail(std::string(backend.status().message()));
  tandem::backend::ModelRunnerOptions runner_options;
  if (loaded->format == tandem::model::LoadFormat::kGguf && !fp32) runner_options.gguf_path = model;
  auto runner =
      tandem::backend::ModelRunner::Create(backend->get(), loaded->config, loaded->weights, runner_options);
  if (!runner.ok()) return Fail(std::string(runner.status().message()));
  const int vocab = loaded->config.vocab_size;
  const int max_batch = *std::max_element(batches.begin(), batches.end());
  const int max_len = prompt_tokens + decode_tokens + 1;
  const int block_size = 16;
  const int blocks_per_seq = (max_len + block_size - 1) / block_size;
  auto cache = tandem::backend::KvPool::Create(**backend,
                                                (*runner)->MakeKvCacheSpec(blocks_per_seq * max_batch, block_size));
  if (!cache.ok()) return Fail(std::string(cache.status().message()));

  std::vector<int32_t> prompt(static_cast<size_t>(prompt_tokens));
  for (int i = 0; i < prompt_tokens; ++i) prompt[static_cast<size_t>(i)] = (i * 7919 + 13) % vocab;

  std::printf("model: %s (%s, %d layers, hidden %d, vocab %d)\n", model.c_str(), loaded->config.name.c_str(),
              loaded->config.num_layers, loaded->config.hidden_size, vocab);
  std::printf("backend: cpu, %s kernels, %d threads (hardware: %u)\n", tandem::backend::CpuKernelIsa(),
              threads == 0 ? static_cast<int>(std::thread::hardware_concurrency()) : threads,
              std::thread::hardware_concurrency());
  std::printf("weights: %d matrices Q4_1, %d Q8_0, %d fp32 (block formats dequantized exactly in the kernels)\n",
              (*runner)->num_matrices(tandem::backend::WeightFormat::kQ4_1),
              (*runner)->num_matrices(tandem::backend::WeightFormat::kQ8_0),
              (*runner)->num_matrices(tandem::backend::WeightFormat::kF32));
  std::printf("prompt %d tokens, decode %d tokens, median of %d runs\n", prompt_tokens, decode_tokens, runs);

  for (int batch : batches) {
    std::vector<double> prefill_tps, decode_tps;
    for (int run = 0; run < runs; ++run) {
      SequenceRunner sr(runner->get(), cache->get());
      std::vector<int> ids;
      for (int b = 0; b < batch; ++b) {
        std::vector<int32_t> p = prompt;
        p[0] = (p[0] + b) % vocab;  // distinct sequences
        auto id = sr.AddSequence(p, max_len);
        if (!id.ok()) return Fail(std::string(id.status().message()));
        ids.push_back(*id);
      }
      std::vector<std::pair<int, int>> work;
      for (int id : ids) work.push_back({id, 0});
      const auto t0 = Clock::now();
      auto out = sr.Step(work);  // prefill: every prompt in one step
      if (!out.ok()) return Fail(std::string(out.status().message()));
      const auto t1 = Clock::now();
      for (auto& [seq, row] : *out) {
        if (auto st = sr.Append(seq, tandem::backend::Argmax(row.data(), vocab)); !st.ok()) return Fail(std::string(st.message()));
      }
      const auto t2 = Clock::now();
      for (int step = 0; step < decode_tokens; ++step) {
        out = sr.Step(work);
        if (!out.ok()) return Fail(std::string(out.status().message()));
        for (auto& [seq, row] : *out) {
          if (auto st = sr.Append(seq, tandem::backend::Argmax(row.data(), vocab)); !st.ok()) {
            return Fail(std::string(st.message()));
          }
        }
      }
      const auto t3 = Clock::now();
      prefill_tps.push_back(batch * prompt_tokens / std::chrono::duration<double>(t1 - t0).count());
      decode_tps.push_back(batch * decode_tokens / std::chrono::duration<double>(t3 - t2).count());
    }
    std::printf("batch %d: prefill %.1f tok/s, decode %.1f tok/s (%.2f ms per decode step)\n", batch,
                Median(prefill_tps), Median(decode_tps), 1000.0 * batch / Median(decode_tps));
    std::fflush(stdout);
  }
  return 0;
}
