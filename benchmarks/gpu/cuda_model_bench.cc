// The CUDA model runner at a real shape with dummy weights (default: Llama-3-8B, bf16), each figure
// next to its floor measured in the same run:
//   copy      cudaMemcpy device-to-device of 1 GiB (read + write bytes / time): the HBM ceiling
//   gemm      cuBLASLt bf16 8192 x 8192 x 8192: the tensor-core ceiling
//   decode    one decode step at batch 1, 8, 64, 256, every sequence with 1K tokens of context
//             (CUDA graphs), against (weight bytes read: all but an untied embedding table, + KV bytes
//             read) / copy bandwidth
//   prefill   one prompt of 1K, 4K and 8K tokens, in TFLOP/s counted as gpt-fast counts
//             (2 * parameters * tokens, attention excluded), against the GEMM ceiling
// Medians of repeated runs. Usage: cuda_model_bench [preset=llama-3-8b] [layers=all|N] [bf16|nvfp4] [tp=1]
// nvfp4: the linear weights quantized at load (lm_head stays bf16); the decode floor counts the
// NVFP4 bytes (weight_bytes() is what the runner keeps on the device).
// tp > 1: tensor parallelism over GPUs 0..tp-1 (NCCL, the worker's TensorParallelExecutor); the
// floors are one rank's (rank 0's weight bytes and 1/tp of the KV) against one GPU's copy bandwidth.
// Steps go through the engine's executor (CudaModelExecutor at tp 1), as a worker runs them.
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tandem/backend/cuda_gemm.h"
#include "tandem/backend/cuda_handles.h"
#include "tandem/backend/cuda_model_runner.h"
#include "tandem/backend/nccl_collective.h"
#include "tandem/engine/cuda_model_executor.h"
#include "tandem/engine/tensor_parallel_executor.h"
#include "tandem/model/loader.h"

namespace tandem::backend {
namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

#define CHECK_OK(expr)                                                              \
  do {                                                                              \
    const auto& s_ = (expr);                                                        \
    if (!s_.ok()) {                                                                 \
      std::fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, std::string(s_.status().message()).c_str()); \
      std::exit(1);                                                                 \
    }                                                                               \
  } while (0)

absl::StatusOr<bool> Ok(absl::Status s) {
  if (!s.ok()) return s;
  return true;
}

double CopyBandwidth() {
  const size_t bytes = size_t{1} << 30;
  auto a = cuda::DeviceMemory::Allocate(bytes);
  auto b = cuda::DeviceMemory::Allocate(bytes);
  CHECK_OK(a);
  CHECK_OK(b);
  std::vector<double> times;
  for (int i = 0; i < 12; ++i) {
    cudaDeviceSynchronize();
    const auto t0 = std::chrono::steady_clock::now();
    cudaMemcpy((*b)->data(), (*a)->data(), bytes, cudaMemcpyDeviceToDevice);
    cudaDeviceSynchronize();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * static_cast<double>(bytes) / Median(times);
}

double GemmRate() {
  const int n = 8192;
  auto x = cuda::DeviceMemory::Allocate(size_t{2} * n * n);
  auto w = cuda::DeviceMemory::Allocate(size_t{2} * n * n);
  auto y = cuda::DeviceMemory::Allocate(size_t{2} * n * n);
  CHECK_OK(x);
  CHECK_OK(w);
  CHECK_OK(y);
  cudaMemset((*x)->data(), 0, size_t{2} * n * n);
  cudaMemset((*w)->data(), 0, size_t{2} * n * n);
  auto gemm = cuda::CublasLtGemm::Create();
  CHECK_OK(gemm);
  std::vector<double> times;
  for (int i = 0; i < 12; ++i) {
    cudaDeviceSynchronize();
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_OK(Ok((*gemm)->Matmul((*x)->as<__nv_bfloat16>(), (*w)->as<__nv_bfloat16>(), (*y)->data(), false, n, n, n,
                                nullptr)));
    cudaDeviceSynchronize();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * n * double{n} * n / Median(times);
}

int Main(int argc, char** argv) {
  const std::string preset = argc > 1 ? argv[1] : "llama-3-8b";
  model::LoadOptions load;
  load.format = model::LoadFormat::kDummy;
  load.dummy_config = preset;
  if (argc > 2 && std::string(argv[2]) != "all") load.num_layers = std::atoi(argv[2]);
  const std::string weights = argc > 3 ? argv[3] : "bf16";
  if (weights != "bf16" && weights != "nvfp4") {
    std::fprintf(stderr, "cuda_model_bench: weights: expected bf16 or nvfp4, found '%s'\n", weights.c_str());
    return 2;
  }
  load.quantize_nvfp4 = weights == "nvfp4";
  load.keep_16bit = true;  // as the engine loads for backend: cuda
  const int tp = argc > 4 ? std::atoi(argv[4]) : 1;
  load.dummy_on_device = !load.quantize_nvfp4 && tp == 1;  // generated on the GPU, as the engine does
  const double copy_bw = CopyBandwidth();
  const double gemm_rate = GemmRate();
  std::printf("floors: copy %.2f TB/s (1 GiB D2D, read+write), bf16 GEMM %.0f TFLOP/s (8192^3 cuBLASLt)\n",
              copy_bw / 1e12, gemm_rate / 1e12);

  auto loaded = model::LoadModel(load);
  CHECK_OK(loaded);
  const model::ModelConfig c = loaded->config;
  CudaModelRunnerOptions options;
  options.max_num_tokens = 8192;
  options.max_num_seqs = 256;
  options.max_model_len = 8192;
  // TANDEM_BENCH_BATCH_INVARIANT=1: engine.batch_invariant (its cost next to the default's figures).
  const char* invariant = std::getenv("TANDEM_BENCH_BATCH_INVARIANT");
  options.batch_invariant = invariant != nullptr && std::string(invariant) == "1";
  if (options.batch_invariant) std::printf("engine.batch_invariant: on\n");
  const double params = static_cast<double>(model::NumParameters(loaded->weights));
  std::unique_ptr<engine::ModelExecutor> executor;
  std::vector<CudaModelRunner*> runners;  // one per rank
  std::shared_ptr<NcclCollectiveGroup> group;
  if (tp == 1) {
    auto runner = CudaModelRunner::Create(c, loaded->weights, options, load.quantize_nvfp4 ? &loaded->nvfp4 : nullptr,
                                          &loaded->dummy);
    CHECK_OK(runner);
    runners.push_back(runner->get());
    executor = std::make_unique<engine::CudaModelExecutor>(std::move(runner).value());
  } else {
    std::vector<int> devices;
    for (int d = 0; d < tp; ++d) devices.push_back(d);
    auto made = NcclCollectiveGroup::Create(devices);
    CHECK_OK(made);
    group = std::move(made).value();
    runners.resize(static_cast<size_t>(tp));
    auto tp_executor = engine::TensorParallelExecutor::Create(
        tp,
        [&](int r) -> absl::StatusOr<std::unique_ptr<engine::ModelExecutor>> {
          CudaModelRunnerOptions o = options;
          o.device = r;
          o.collective = &group->rank(r);
          auto runner = CudaModelRunner::Create(c, loaded->weights, o);
          if (!runner.ok()) return runner.status();
          runners[static_cast<size_t>(r)] = runner->get();
          return std::unique_ptr<engine::ModelExecutor>(
              std::make_unique<engine::CudaModelExecutor>(std::move(runner).value()));
        },
        [g = group](const absl::Status&) { g->Abort(); });
    CHECK_OK(tp_executor);
    executor = std::move(tp_executor).value();
  }
  *loaded = model::LoadedModel{};  // host copy no longer needed
  CudaModelRunner& r = *runners.front();
  for (CudaModelRunner* rank : runners) {
    cudaSetDevice(rank->options().device);
    const KvCacheSpec& rank_spec = rank->kv_pool().spec();
    for (int l = 0; l < rank_spec.num_layers; ++l) cudaMemset(rank->kv_pool().LayerData(l), 0, rank_spec.BytesPerLayer());
    cudaDeviceSynchronize();
  }
  const KvCacheSpec& spec = r.kv_pool().spec();
  // What a decode step streams: every weight but an untied embedding table (only its batch rows are read).
  const double embedding_bytes = c.tie_word_embeddings ? 0.0 : 2.0 * c.vocab_size * c.hidden_size;
  const double weight_bytes = static_cast<double>(r.weight_bytes()) - embedding_bytes;
  std::printf("model: %s, %d layers, tp %d, %.2f GB of weights per rank, %.2f GB read per decode step (%s: %d "
              "linears in NVFP4), KV pool %d blocks of %d\n",
              c.name.c_str(), c.num_layers, tp, static_cast<double>(r.weight_bytes()) / 1e9, weight_bytes / 1e9,
              weights.c_str(), r.num_nvfp4_matrices(), spec.num_blocks, spec.block_size);
  // One step through the executor: every row sampled on the GPU, as `sampling` says (null: greedy).
  auto run_step = [&](const std::vector<SequenceStep>& steps, const RowSampling* sampling = nullptr) {
    engine::StepPlan plan;
    for (const SequenceStep& st : steps) {
      engine::ExecSequence e;
      e.token_ids = st.token_ids;
      e.start_position = st.start_position;
      e.block_table = std::span<const kvcache::BlockId>(st.block_table.data(), st.block_table.size());
      e.needs_logits = st.needs_logits;
      e.needs_full_logits = false;
      e.sampling = sampling;
      plan.num_tokens += static_cast<int32_t>(st.token_ids.size());
      plan.num_logit_rows += st.needs_logits ? 1 : 0;
      plan.seqs.push_back(e);
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto out = executor->Execute(plan);
    CHECK_OK(out);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };

  struct Row {
    std::string what;
    double ms, floor_ms;
    std::string extra;
  };
  std::vector<Row> rows;
  const int context = 1024;
  // A typical chat request's draw (a radix select per row on the GPU, sample_rows.cu).
  const RowSampling draw{.greedy = false, .temperature = 0.8f, .top_p = 0.95f, .uniform = 0.5};
  const RowSampling* const samplings[] = {nullptr, &draw};
  const int blocks_per_seq = (context + spec.block_size) / spec.block_size;
  for (int batch : {1, 8, 64, 256}) {
    if (batch * blocks_per_seq > spec.num_blocks) continue;
    std::vector<SequenceStep> steps(static_cast<size_t>(batch));
    for (int s = 0; s < batch; ++s) {
      SequenceStep& st = steps[static_cast<size_t>(s)];
      st.token_ids = {static_cast<int32_t>((s * 7919) % c.vocab_size)};
      st.start_position = context - 1;
      for (int b = 0; b < blocks_per_seq; ++b) st.block_table.push_back(s * blocks_per_seq + b);
      st.needs_logits = true;
      st.needs_full_logits = false;  // sampled on the GPU: only the token leaves it
    }
    for (const RowSampling* sampling : samplings) {
      std::vector<double> times;
      // TANDEM_BENCH_PROFILE_BATCH=N: the timed steps of batch N between cudaProfilerStart and Stop, for
      // a profiler started with the capture off, e.g. the GPU time of whole replayed graphs:
      //   ncu --profile-from-start off --graph-profiling graph --metrics gpu__time_duration.sum -c 3
      const char* profile = std::getenv("TANDEM_BENCH_PROFILE_BATCH");
      const bool profiled = profile != nullptr && std::atoi(profile) == batch && sampling == nullptr;
      for (int i = 0; i < 25; ++i) {
        if (profiled && i == 3) cudaProfilerStart();
        times.push_back(run_step(steps, sampling));
      }
      if (profiled) cudaProfilerStop();
      times.erase(times.begin(), times.begin() + 3);  // graph capture and warm-up
      const double kv_bytes =
          static_cast<double>(batch) * context * spec.num_layers * 2.0 * spec.num_kv_heads * spec.head_dim * 2.0;
      const double floor_s = (weight_bytes + kv_bytes) / copy_bw;
      const double t = Median(times);
      char extra[128];
      std::snprintf(extra, sizeof extra, "%.0f%% of floor, %.0f tok/s, KV %.2f GB", 100.0 * floor_s / t, batch / t,
                    kv_bytes / 1e9);
      const std::string how = sampling == nullptr ? " greedy" : " T 0.8 top_p 0.95";
      rows.push_back({"decode b=" + std::to_string(batch) + " ctx=1K" + how, t * 1e3, floor_s * 1e3, extra});
    }
  }
  for (int tokens : {1024, 4096, 8192}) {
    if (tokens > options.max_num_tokens) continue;
    std::vector<SequenceStep> steps(1);
    for (int i = 0; i < tokens; ++i) steps[0].token_ids.push_back((i * 31) % c.vocab_size);
    for (int b = 0; b < (tokens + spec.block_size - 1) / spec.block_size; ++b) steps[0].block_table.push_back(b);
    steps[0].needs_logits = true;
    std::vector<double> times;
    for (int i = 0; i < 6; ++i) times.push_back(run_step(steps));
    times.erase(times.begin());
    const double t = Median(times);
    const double flops = 2.0 * params * tokens / tp;  // per GPU
    char extra[128];
    std::snprintf(extra, sizeof extra, "%.0f TFLOP/s (%.0f%% of GEMM), %.0f tok/s", flops / t / 1e12,
                  100.0 * flops / t / gemm_rate, tokens / t);
    rows.push_back({"prefill " + std::to_string(tokens), t * 1e3, flops / gemm_rate * 1e3, extra});
  }
  std::printf("\n| step | median ms | floor ms | |\n|---|---:|---:|---|\n");
  for (const Row& row : rows) {
    std::printf("| %s | %.3f | %.3f | %s |\n", row.what.c_str(), row.ms, row.floor_ms, row.extra.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace tandem::backend

int main(int argc, char** argv) { return tandem::backend::Main(argc, argv); }
