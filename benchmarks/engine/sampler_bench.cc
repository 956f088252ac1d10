// The engine's CPU sampler (the host path: the CPU backend's rows, and a GPU row that wants logprobs):
// time per row of 128256 logits for greedy and for draws, next to one pass of exp over the row (what
// any draw's softmax total costs). Rows: flat (normal, sd 2) and peaked (20 tokens 12 above). Then
// the engine's per-step description of a row with penalties (what a device backend is handed): built
// afresh (Sampler::Describe) and kept across steps (RowSamplingCache), 8K-token prompt.
// Usage: sampler_bench [rows=200]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "tandem/engine/sampler.h"

namespace {

double MedianUs(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  using tandem::engine::Sampler;
  using tandem::engine::SamplerInput;
  using tandem::engine::SamplingParams;
  constexpr int kVocab = 128256;
  const int rows = argc > 1 ? std::max(1, std::atoi(argv[1])) : 200;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> flat(kVocab), peaked(kVocab);
  for (float& v : flat) v = normal(rng);
  peaked = flat;
  for (int i = 0; i < 20; ++i) peaked[rng() % kVocab] += 12.0f;

  struct Case {
    std::string name;
    SamplingParams params;
  };
  std::vector<Case> cases(4);
  cases[0].name = "greedy";
  cases[0].params.temperature = 0.0f;
  cases[1].name = "T 1";
  cases[2].name = "T 0.8 top_p 0.95";
  cases[2].params.temperature = 0.8f;
  cases[2].params.top_p = 0.95f;
  cases[3].name = "T 0.7 top_k 50 top_p 0.9";
  cases[3].params.temperature = 0.7f;
  cases[3].params.top_k = 50;
  cases[3].params.top_p = 0.9f;

  std::printf("| row | params | median us per row | one exp pass us |\n|---|---|---:|---:|\n");
  for (const auto& [kind, row] : {std::pair<const char*, const std::vector<float>*>{"flat", &flat}, {"peaked", &peaked}}) {
    std::vector<double> exp_us;
    volatile double sink = 0;
    for (int r = 0; r < rows; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      double s = 0;
      for (float x : *row) s += std::exp(static_cast<double>(x) - 20.0);
      sink = sink + s;
      exp_us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
    for (const Case& c : cases) {
      Sampler sampler;
      std::vector<double> us;
      int32_t checksum = 0;
      for (int r = 0; r < rows; ++r) {
        const SamplerInput in{.params = &c.params, .seed = static_cast<uint64_t>(r)};
        const auto t0 = std::chrono::steady_clock::now();
        checksum += sampler.Sample(*row, in).token;
        us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
      }
      std::printf("| %s | %s | %.0f | %.0f |\n", kind, c.name.c_str(), MedianUs(us), MedianUs(exp_us));
      if (checksum == -1) std::printf("unreachable\n");
    }
  }
  // A step's description of one sequence with penalties: 8192 prompt tokens, 256 output tokens so far.
  SamplingParams penalized;
  penalized.temperature = 0.8f;
  penalized.repetition_penalty = 1.1f;
  penalized.frequency_penalty = 0.2f;
  std::vector<int32_t> history;
  for (int i = 0; i < 8192 + 256 + rows; ++i) history.push_back(static_cast<int32_t>(rng() % 32000));
  tandem::backend::RowSampling fresh;
  Sampler describer;
  tandem::engine::RowSamplingCache cache;
  std::vector<double> fresh_us, kept_us;
  const std::span<const int32_t> all(history);
  for (int r = 0; r < rows; ++r) {
    const SamplerInput in{.params = &penalized,
                          .prompt = all.subspan(0, 8192),
                          .output = all.subspan(8192, static_cast<size_t>(256 + r)),
                          .seed = 5};
    auto t0 = std::chrono::steady_clock::now();
    describer.Describe(in, kVocab, &fresh);
    fresh_us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    t0 = std::chrono::steady_clock::now();
    const size_t edits = cache.Update(in, kVocab).edits.size();
    kept_us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    if (edits != fresh.edits.size()) std::printf("kept and fresh descriptions differ\n");
  }
  std::printf("\n| description with penalties (8K prompt) | median us per row and step |\n|---|---:|\n"
              "| afresh (Sampler::Describe) | %.1f |\n| kept (RowSamplingCache::Update) | %.2f |\n",
              MedianUs(fresh_us), MedianUs(kept_us));
  return 0;
}
