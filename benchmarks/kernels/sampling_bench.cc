// Sampling on the device (kernels/sampling/sample_rows.cu): time per call of SampleRows for the argmax
// and for draws (temperature, top_k, top_p) at 1 to 256 rows of 128256 logits, next to the time
// to read the rows once at the measured copy bandwidth. Two kinds of rows: flat (normal, sd 2: what
// random weights give) and peaked (sd 2 plus 20 tokens 12 above: what a trained model gives).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernel_bench.h"
#include "sampling/sample_rows.cuh"

namespace kernels = tandem::kernels;

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("sampling_bench: no CUDA device, nothing to measure\n");
    return 0;
  }
  const double bandwidth = tandem::bench::CopyBandwidth();

  constexpr int kVocab = 128256, kMaxRows = 256;
  std::vector<float> flat(static_cast<size_t>(kMaxRows) * kVocab), peaked;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (float& v : flat) v = normal(rng);
  peaked = flat;
  for (int r = 0; r < kMaxRows; ++r) {
    for (int i = 0; i < 20; ++i) peaked[static_cast<size_t>(r) * kVocab + rng() % kVocab] += 12.0f;
  }
  float* logits = nullptr;
  kernels::SampleRowParams* params = nullptr;
  int32_t* out = nullptr;
  CHECK(cudaMalloc(&logits, flat.size() * sizeof(float)));
  CHECK(cudaMalloc(&params, kMaxRows * sizeof(kernels::SampleRowParams)));
  CHECK(cudaMalloc(&out, kMaxRows * sizeof(int32_t)));

  struct Mode {
    std::string name;
    kernels::SampleRowParams p;
  };
  auto draw = [](float t, int top_k, float top_p) {
    kernels::SampleRowParams p;
    p.mode = kernels::SampleMode::kDraw;
    p.inv_temperature = 1.0f / t;
    p.top_k = top_k;
    p.top_p = top_p;
    p.uniform = 0.37;
    return p;
  };
  const std::vector<Mode> modes = {{"argmax", kernels::SampleRowParams{}},
                                   {"T 1", draw(1.0f, 0, 1.0f)},
                                   {"T 0.8 top_p 0.95", draw(0.8f, 0, 0.95f)},
                                   {"T 0.7 top_k 50 top_p 0.9", draw(0.7f, 50, 0.9f)}};
  std::printf(
      "copy bandwidth %.0f GB/s; vocab %d\n\n| rows | logits | mode | median us | read floor us |\n"
      "|---:|---|---|---:|---:|\n",
      bandwidth / 1e9, kVocab);
  for (const auto& [kind, host] :
       {std::pair<const char*, const std::vector<float>*>{"flat", &flat}, {"peaked", &peaked}}) {
    CHECK(cudaMemcpy(logits, host->data(), host->size() * sizeof(float), cudaMemcpyHostToDevice));
    for (int rows : {1, 16, 32, 64, 256}) {
      for (const Mode& m : modes) {
        const std::vector<kernels::SampleRowParams> p(static_cast<size_t>(rows), m.p);
        CHECK(cudaMemcpy(params, p.data(), p.size() * sizeof(p[0]), cudaMemcpyHostToDevice));
        const float ms = tandem::bench::MedianMs(
            [&] { kernels::SampleRows(logits, rows, kVocab, params, out, nullptr); }, 20);
        CHECK(cudaGetLastError());
        const double floor_us = static_cast<double>(rows) * kVocab * 4 / bandwidth * 1e6;
        std::printf("| %d | %s | %s | %.1f | %.1f |\n", rows, kind, m.name.c_str(), ms * 1e3, floor_us);
      }
    }
  }
  return 0;
}
