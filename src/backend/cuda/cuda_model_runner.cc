// The bf16 forward pass on one GPU (cuda_model_runner.h; docs/architecture.md "The forward pass on a
// GPU"). Over 600 lines because it is one plan: weight upload and fusion, the memory plan (weights,
// workspaces, KV pool), the step's host-side packing, the per-layer launch sequence and the decode
// graphs all share the runner's buffers and stream; the kernels themselves are in kernels/.
#include "tandem/backend/cuda_model_runner.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <future>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "tandem/backend/cuda_gemm.h"
#include "elementwise/elementwise.cuh"
#include "gemm/nvfp4_gemm.cuh"
#include "norm/rmsnorm.cuh"
#include "rope/rope_kv.cuh"
#include "step_attention.h"
#include "tandem/backend/cuda_handles.h"
#include "tandem/backend/device_sampler.h"
#include "tandem/backend/rope.h"
#include "tandem/core/logging.h"
#include "tandem/core/status.h"
#include "tandem/model/tensor_parallel.h"

namespace tandem::backend {

using bf16 = __nv_bfloat16;
using cuda::DeviceMemory;

namespace {

// Padded batch sizes of the decode graphs.
constexpr int kGraphBuckets[] = {1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512};

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

struct CudaModelRunner::Impl {
  // A linear layer's weight [n, k] on the device: bf16, or NVFP4 repacked for the NVFP4 GEMM.
  struct Linear {
    const bf16* dense = nullptr;
    std::optional<kernels::Nvfp4Weight> nvfp4;
  };
  struct Layer {
    const bf16* input_norm = nullptr;  // [hidden]
    Linear qkv;                        // [(nq + 2 nkv) * hd, hidden]: q rows, then k, then v
    const bf16* qkv_bias = nullptr;    // [(nq + 2 nkv) * hd] or null
    const bf16* q_norm = nullptr;      // [hd] or null
    const bf16* k_norm = nullptr;      // [hd] or null
    Linear o;                          // [hidden, nq * hd]
    const bf16* post_norm = nullptr;   // [hidden]
    Linear gate_up;                    // [2 * inter, hidden]: gate rows, then up
    Linear down;                       // [hidden, inter]
  };
  // A layer's NVFP4 linears repacked on the host (nullopt: that linear stays bf16).
  struct LayerRepack {
    std::optional<kernels::Nvfp4Repacked> qkv, o, gate_up, down;
  };

  model::ModelConfig config;  // this rank's heads and intermediate size under tensor parallelism
  CudaModelRunnerOptions options;
  bool leader = true;         // computes logits (rank 0, or no tensor parallelism)
  int max_blocks_per_seq = 0;  // block-table row length (capacity, fixed)
  size_t weight_bytes = 0;
  size_t workspace_bytes = 0;  // step workspaces and step batch on the device

  cuda::Stream stream;
  std::unique_ptr<cuda::CublasLtGemm> gemm;
  std::vector<std::unique_ptr<DeviceMemory>> storage;  // weights
  std::unordered_map<const Tensor*, model::DummyFill> dummy;  // tensors to generate (Create's `dummy`)
  std::vector<Layer> layers;
  const bf16* embed = nullptr;       // [vocab, hidden]
  const bf16* final_norm = nullptr;  // [hidden]
  const bf16* lm_head = nullptr;     // [vocab, hidden] (the embedding when tied)
  std::unique_ptr<DeviceMemory> inv_freq;  // [hd / 2] fp32
  int num_nvfp4 = 0;                               // linears kept in NVFP4
  std::unique_ptr<DeviceMemory> nvfp4_scratch;     // bf16 [n, k] of the largest NVFP4 linear (m > kNvfp4GemmMaxRows)

  // Step workspace, sized for the capacities at creation.
  std::unique_ptr<DeviceMemory> residual, normed, qkv, attn, proj, gate_up, act, logit_hidden, logit_mlp,
      logit_normed, logits;
  // The step's batch: device and pinned staging with the same fixed layout (offsets below).
  std::unique_ptr<DeviceMemory> meta;
  cuda::PinnedMemory staging;
  cuda::PinnedMemory host_logits;  // [max_num_seqs, vocab] fp32
  std::unique_ptr<cuda::DeviceSampler> sampler;  // the logits rows' tokens (leader only)
  size_t off_slots = 0, off_ids = 0, off_pos = 0, off_seq = 0, off_tables = 0, off_logit_rows = 0, meta_bytes = 0;

  std::unique_ptr<KvPool> cache;
  std::unique_ptr<cuda::StepAttention> attention;
  std::vector<cuda::Event> layer_done;  // one per layer
  std::map<int, cuda::GraphExec> graphs;  // decode graphs by padded batch size

  template <typename T>
  T* Meta(size_t offset) const {
    return reinterpret_cast<T*>(static_cast<uint8_t*>(meta->data()) + offset);
  }
  template <typename T>
  T* Staged(size_t offset) const {
    return reinterpret_cast<T*>(staging.as<uint8_t>() + offset);
  }

  absl::StatusOr<const bf16*> Upload(const std::vector<const Tensor*>& parts, DeviceMemory* staging_f32);
  absl::StatusOr<Linear> UploadLinear(std::optional<kernels::Nvfp4Repacked>& repacked,
                                      const std::vector<const Tensor*>& parts, DeviceMemory* staging_f32);
  absl::Status UploadWeights(const model::ModelWeights& weights,
                             const std::map<std::string, model::Nvfp4Tensor>* nvfp4);
  absl::Status Gemm(const Linear& w, const bf16* x, bf16* out, int m, int n, int k, cudaStream_t st);
  absl::Status AllocateWorkspace();
  absl::Status AllocateKvCache();
  void Stage(const BatchPlan& plan, int padded_tokens, int padded_seqs, int padded_logits);
  absl::Status CopyMeta(int tokens, int seqs, int logit_rows);
  absl::Status Launch(int n, int m, const RunnerLayerCallback* on_layer_done);
  absl::Status TuneGemms(int m);
  absl::Status CopyLogitsOut(const BatchPlan& plan);
  absl::Status CheckFits(const BatchPlan& plan) const;
  absl::StatusOr<CudaStepOutput> Run(const BatchPlan& plan, const RunnerLayerCallback* on_layer_done, bool allow_graph);
};

// ---- Creation ----------------------------------------------------------------------------------

absl::StatusOr<const bf16*> CudaModelRunner::Impl::Upload(const std::vector<const Tensor*>& parts,
                                                          DeviceMemory* staging_f32) {
  int64_t total = 0;
  for (const Tensor* t : parts) {
    if (t->dtype() != DType::kF32 && t->dtype() != DType::kBF16 && t->dtype() != DType::kF16) {
      return absl::InvalidArgumentError(
          absl::StrCat("cuda model runner: expected f32, bf16 or f16 host weights, found ", DTypeName(t->dtype())));
    }
    total += t->numel();
  }
  TANDEM_ASSIGN_OR_RETURN(auto buffer, DeviceMemory::Allocate(static_cast<size_t>(total) * sizeof(bf16)));
  bf16* dst = buffer->as<bf16>();
  // Tensor by tensor, a chunk at a time: bf16 as it is (a view of the mapped checkpoint streams
  // straight to the device), fp32 converted on the device, fp16 rounded to bf16 on the host.
  const int64_t chunk = static_cast<int64_t>(staging_f32->size() / sizeof(float));
  std::vector<uint16_t> rounded;
  for (const Tensor* t : parts) {
    if (t->raw_data() == nullptr) {  // load_format dummy, its values generated here
      auto fill = dummy.find(t);
      if (fill == dummy.end()) {
        return absl::InvalidArgumentError(absl::StrCat("cuda model runner: a ", t->DebugString(),
                                                       " weight has no data and no dummy generator"));
      }
      const model::DummyFill& f = fill->second;
      TANDEM_CUDA_CHECK(kernels::DummyUniformBf16(dst, t->numel(), f.name_state, f.cols, f.rows_per_chunk, f.scale,
                                                  f.offset, stream.get()));
      dst += t->numel();
      continue;
    }
    for (int64_t done = 0; done < t->numel(); done += chunk) {
      const int64_t count = std::min(chunk, t->numel() - done);
      switch (t->dtype()) {
        case DType::kBF16:
          TANDEM_CUDA_CHECK(cudaMemcpy(dst + done, t->data<uint16_t>() + done, static_cast<size_t>(count) * 2,
                                       cudaMemcpyHostToDevice));
          break;
        case DType::kF16: {
          rounded.resize(static_cast<size_t>(count));
          for (int64_t i = 0; i < count; ++i) {
            rounded[static_cast<size_t>(i)] = FloatToBf16(HalfToFloat(t->data<uint16_t>()[done + i]));
          }
          TANDEM_CUDA_CHECK(
              cudaMemcpy(dst + done, rounded.data(), static_cast<size_t>(count) * 2, cudaMemcpyHostToDevice));
          break;
        }
        default:
          TANDEM_CUDA_CHECK(cudaMemcpyAsync(staging_f32->data(), t->data<float>() + done,
                                            static_cast<size_t>(count) * sizeof(float), cudaMemcpyHostToDevice,
                                            stream.get()));
          TANDEM_CUDA_CHECK(kernels::F32ToBf16(staging_f32->as<float>(), count, dst + done, stream.get()));
          TANDEM_CUDA_CHECK(cudaStreamSynchronize(stream.get()));  // the staging buffer is reused
      }
    }
    dst += t->numel();
  }
  weight_bytes += buffer->size();
  const bf16* p = buffer->as<bf16>();
  storage.push_back(std::move(buffer));
  return p;
}

namespace {

// Repacks the NVFP4 parts named `names` for the GPU when all of them are NVFP4 (a fused projection
// keeps each part's scale2); nullopt when any part is not (that linear stays bf16).
absl::StatusOr<std::optional<kernels::Nvfp4Repacked>> RepackNvfp4(
    const std::map<std::string, model::Nvfp4Tensor>* nvfp4, const std::vector<std::string>& names) {
  if (nvfp4 == nullptr) return std::nullopt;
  std::vector<kernels::Nvfp4Part> parts;
  int64_t k = -1;
  for (const std::string& name : names) {
    auto it = nvfp4->find(name);
    if (it == nvfp4->end()) return std::nullopt;
    const model::Nvfp4Tensor& t = it->second;
    if (k >= 0 && t.cols != k) {
      return absl::InvalidArgumentError(absl::StrCat("cuda model runner: NVFP4 parts of one linear differ in inputs (",
                                                     name, " has ", t.cols, ", expected ", k, ")"));
    }
    k = t.cols;
    parts.push_back({t.packed.data(), t.scales.data(), t.scale2, static_cast<int>(t.rows)});
  }
  kernels::Nvfp4Repacked out;
  if (std::string error = kernels::Nvfp4RepackForGpu(parts.data(), static_cast<int>(parts.size()),
                                                     static_cast<int>(k), &out);
      !error.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("cuda model runner: NVFP4 ", names.front(), ": ", error));
  }
  return out;
}

}  // namespace

absl::StatusOr<CudaModelRunner::Impl::Linear> CudaModelRunner::Impl::UploadLinear(
    std::optional<kernels::Nvfp4Repacked>& repacked, const std::vector<const Tensor*>& parts,
    DeviceMemory* staging_f32) {
  Linear out;
  if (!repacked.has_value()) {
    TANDEM_ASSIGN_OR_RETURN(out.dense, Upload(parts, staging_f32));
    return out;
  }
  const kernels::Nvfp4Repacked& r = *repacked;
  TANDEM_ASSIGN_OR_RETURN(auto codes, DeviceMemory::Allocate(r.codes.size()));
  TANDEM_ASSIGN_OR_RETURN(auto scales, DeviceMemory::Allocate(r.scales.size()));
  TANDEM_CUDA_CHECK(cudaMemcpy(codes->data(), r.codes.data(), r.codes.size(), cudaMemcpyHostToDevice));
  TANDEM_CUDA_CHECK(cudaMemcpy(scales->data(), r.scales.data(), r.scales.size(), cudaMemcpyHostToDevice));
  out.nvfp4 = kernels::Nvfp4DeviceView(r, codes->data(), scales->data());
  weight_bytes += codes->size() + scales->size();
  storage.push_back(std::move(codes));
  storage.push_back(std::move(scales));
  ++num_nvfp4;
  repacked.reset();  // the host copy is no longer needed
  return out;
}

absl::Status CudaModelRunner::Impl::UploadWeights(const model::ModelWeights& weights,
                                                  const std::map<std::string, model::Nvfp4Tensor>* nvfp4) {
  TANDEM_ASSIGN_OR_RETURN(auto staging_f32, DeviceMemory::Allocate(size_t{64} << 20));
  DeviceMemory* s = staging_f32.get();
  TANDEM_ASSIGN_OR_RETURN(embed, Upload({&weights.embed_tokens}, s));
  TANDEM_ASSIGN_OR_RETURN(final_norm, Upload({&weights.final_norm}, s));
  const bool tied = !weights.lm_head.defined() || weights.lm_head.SharesStorageWith(weights.embed_tokens) ||
                    config.tie_word_embeddings;
  if (tied) {
    lm_head = embed;
  } else if (leader) {  // only rank 0 computes logits
    TANDEM_ASSIGN_OR_RETURN(lm_head, Upload({&weights.lm_head}, s));
  }
  // NVFP4 repacking is host work (~17 s single-threaded for Llama-3-8B): one task per layer, run
  // ahead of the uploads.
  std::vector<std::future<absl::StatusOr<LayerRepack>>> repacks;
  for (size_t li = 0; li < weights.layers.size() && nvfp4 != nullptr && !nvfp4->empty(); ++li) {
    repacks.push_back(std::async(std::launch::async, [nvfp4, li]() -> absl::StatusOr<LayerRepack> {
      const std::string pre = absl::StrCat("model.layers.", li, ".");
      LayerRepack r;
      TANDEM_ASSIGN_OR_RETURN(r.qkv, RepackNvfp4(nvfp4, {pre + "self_attn.q_proj.weight", pre + "self_attn.k_proj.weight",
                                                         pre + "self_attn.v_proj.weight"}));
      TANDEM_ASSIGN_OR_RETURN(r.o, RepackNvfp4(nvfp4, {pre + "self_attn.o_proj.weight"}));
      TANDEM_ASSIGN_OR_RETURN(r.gate_up, RepackNvfp4(nvfp4, {pre + "mlp.gate_proj.weight", pre + "mlp.up_proj.weight"}));
      TANDEM_ASSIGN_OR_RETURN(r.down, RepackNvfp4(nvfp4, {pre + "mlp.down_proj.weight"}));
      return r;
    }));
  }
  int64_t nvfp4_scratch_elems = 0;
  for (size_t li = 0; li < weights.layers.size(); ++li) {
    const model::LayerWeights& w = weights.layers[li];
    LayerRepack repack;
    if (li < repacks.size()) {
      TANDEM_ASSIGN_OR_RETURN(repack, repacks[li].get());
    }
    Layer layer;
    TANDEM_ASSIGN_OR_RETURN(layer.input_norm, Upload({&w.input_norm}, s));
    TANDEM_ASSIGN_OR_RETURN(layer.post_norm, Upload({&w.post_attention_norm}, s));
    TANDEM_ASSIGN_OR_RETURN(layer.qkv, UploadLinear(repack.qkv, {&w.q_proj, &w.k_proj, &w.v_proj}, s));
    if (config.attention_bias) {
      TANDEM_ASSIGN_OR_RETURN(layer.qkv_bias, Upload({&w.q_bias, &w.k_bias, &w.v_bias}, s));
    }
    if (config.qk_norm) {
      TANDEM_ASSIGN_OR_RETURN(layer.q_norm, Upload({&w.q_norm}, s));
      TANDEM_ASSIGN_OR_RETURN(layer.k_norm, Upload({&w.k_norm}, s));
    }
    TANDEM_ASSIGN_OR_RETURN(layer.o, UploadLinear(repack.o, {&w.o_proj}, s));
    TANDEM_ASSIGN_OR_RETURN(layer.gate_up, UploadLinear(repack.gate_up, {&w.gate_proj, &w.up_proj}, s));
    TANDEM_ASSIGN_OR_RETURN(layer.down, UploadLinear(repack.down, {&w.down_proj}, s));
    for (const Linear* l : {&layer.qkv, &layer.o, &layer.gate_up, &layer.down}) {
      if (l->nvfp4.has_value()) {
        nvfp4_scratch_elems = std::max(nvfp4_scratch_elems, static_cast<int64_t>(l->nvfp4->n) * l->nvfp4->k);
      }
    }
    layers.push_back(layer);
    if ((li + 1) % 8 == 0 || li + 1 == weights.layers.size()) {
      TLOG_INFO("cuda model runner: {} of {} layers on GPU {} ({:.2f} GB of weights, {} linears in NVFP4)", li + 1,
                weights.layers.size(), options.device, static_cast<double>(weight_bytes) / 1e9, num_nvfp4);
    }
  }
  if (num_nvfp4 > 0) {
    TANDEM_ASSIGN_OR_RETURN(nvfp4_scratch, DeviceMemory::Allocate(static_cast<size_t>(nvfp4_scratch_elems) * sizeof(bf16)));
    workspace_bytes += nvfp4_scratch->size();
  }
  const std::vector<float> freq = ComputeRopeInvFreq(config);
  TANDEM_ASSIGN_OR_RETURN(inv_freq, DeviceMemory::Allocate(freq.size() * sizeof(float)));
  TANDEM_CUDA_CHECK(
      cudaMemcpy(inv_freq->data(), freq.data(), freq.size() * sizeof(float), cudaMemcpyHostToDevice));
  TANDEM_CUDA_CHECK(cudaStreamSynchronize(stream.get()));  // the weights generated on the device
  return absl::OkStatus();
}

// out [m, n] = x [m, k] @ w^T: bf16 cuBLASLt, the NVFP4 GEMM (m up to kNvfp4GemmMaxRows), or the
// NVFP4 weight dequantized into the bf16 scratch and cuBLASLt.
absl::Status CudaModelRunner::Impl::Gemm(const Linear& w, const bf16* x, bf16* out, int m, int n, int k,
                                         cudaStream_t st) {
  if (!w.nvfp4.has_value()) return gemm->Matmul(x, w.dense, out, false, m, n, k, st);
  if (m <= kNvfp4GemmMaxRows && !options.batch_invariant) {
    TANDEM_CUDA_CHECK(kernels::Nvfp4Gemm(x, *w.nvfp4, out, m, st));
    return absl::OkStatus();
  }
  TANDEM_CUDA_CHECK(kernels::Nvfp4DequantizeToBf16(*w.nvfp4, nvfp4_scratch->as<bf16>(), st));
  return gemm->Matmul(x, nvfp4_scratch->as<bf16>(), out, false, m, n, k, st);
}

absl::Status CudaModelRunner::Impl::AllocateWorkspace() {
  const model::ModelConfig& c = config;
  const int64_t n = options.max_num_tokens;
  const int64_t m = options.max_num_seqs;
  const int64_t hd = c.head_dim;
  auto alloc = [this](std::unique_ptr<DeviceMemory>* out, int64_t elems, size_t elem_bytes) -> absl::Status {
    TANDEM_ASSIGN_OR_RETURN(*out, DeviceMemory::Allocate(static_cast<size_t>(elems) * elem_bytes));
    workspace_bytes += (*out)->size();
    return absl::OkStatus();
  };
  TANDEM_RETURN_IF_ERROR(alloc(&residual, n * c.hidden_size, 2));
  TANDEM_RETURN_IF_ERROR(alloc(&normed, n * c.hidden_size, 2));
  TANDEM_RETURN_IF_ERROR(alloc(&qkv, n * (c.num_attention_heads + 2 * c.num_kv_heads) * hd, 2));
  TANDEM_RETURN_IF_ERROR(alloc(&attn, n * c.num_attention_heads * hd, 2));
  TANDEM_RETURN_IF_ERROR(alloc(&proj, n * c.hidden_size, 2));
  TANDEM_RETURN_IF_ERROR(alloc(&gate_up, n * 2 * c.intermediate_size, 2));
  TANDEM_RETURN_IF_ERROR(alloc(&act, n * c.intermediate_size, 2));
  TANDEM_RETURN_IF_ERROR(alloc(&logit_hidden, m * c.hidden_size, 2));
  TANDEM_RETURN_IF_ERROR(alloc(&logit_mlp, m * c.hidden_size, 2));
  TANDEM_RETURN_IF_ERROR(alloc(&logit_normed, m * c.hidden_size, 2));
  if (leader) {  // the logits rows, on rank 0 only under tensor parallelism
    TANDEM_RETURN_IF_ERROR(alloc(&logits, m * c.vocab_size, 4));
    TANDEM_RETURN_IF_ERROR(host_logits.Allocate(static_cast<size_t>(m * c.vocab_size) * sizeof(float)));
    if (cuda::DeviceSampler::Supports(c.vocab_size)) {  // else every row's logits go to the host
      TANDEM_ASSIGN_OR_RETURN(sampler, cuda::DeviceSampler::Create(m, c.vocab_size));
    } else {
      TLOG_WARN("cuda model runner: vocabulary of {} is over the {} the GPU sampler handles; sampling on the host",
                c.vocab_size, kernels::kSampleMaxVocab);
    }
  }

  // Fixed layout of the step's batch (int64 first, every region 256-byte aligned).
  auto region = [this](size_t bytes) {
    const size_t at = meta_bytes;
    meta_bytes += (bytes + 255) / 256 * 256;
    return at;
  };
  meta_bytes = 0;
  off_slots = region(static_cast<size_t>(n) * sizeof(int64_t));
  off_ids = region(static_cast<size_t>(n) * sizeof(int32_t));
  off_pos = region(static_cast<size_t>(n) * sizeof(int32_t));
  off_seq = region(static_cast<size_t>(n) * sizeof(int32_t));
  off_tables = region(static_cast<size_t>(m) * max_blocks_per_seq * sizeof(int32_t));
  off_logit_rows = region(static_cast<size_t>(m) * sizeof(int32_t));
  TANDEM_ASSIGN_OR_RETURN(meta, DeviceMemory::Allocate(meta_bytes));
  workspace_bytes += meta_bytes;
  TANDEM_RETURN_IF_ERROR(staging.Allocate(meta_bytes));
  layer_done.resize(static_cast<size_t>(c.num_layers));
  for (cuda::Event& e : layer_done) TANDEM_RETURN_IF_ERROR(e.Create());
  return absl::OkStatus();
}

absl::Status CudaModelRunner::Impl::AllocateKvCache() {
  KvCacheSpec spec;
  spec.num_layers = config.num_layers;
  spec.num_kv_heads = config.num_kv_heads;
  spec.head_dim = config.head_dim;
  spec.block_size = options.block_size;
  spec.dtype = DType::kBF16;
  spec.num_blocks = 1;
  const int64_t bytes_per_block_all_layers = static_cast<int64_t>(spec.BytesPerBlock()) * spec.num_layers;
  int64_t blocks = options.num_blocks;
  if (blocks <= 0) {
    // The runner's own share: utilization x the device's memory, less what this runner has taken
    // already (weights, workspaces, the GEMM workspace; counted, not read off the device's free
    // memory, which other processes on a shared GPU move at the same time), so two workers sharing a
    // GPU each get their own fraction; never more than is free now (less a margin for the CUDA context
    // and the attention library's workspaces).
    size_t free_bytes = 0, total_bytes = 0;
    TANDEM_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    const int64_t mine = static_cast<int64_t>(weight_bytes + workspace_bytes) + (int64_t{32} << 20);
    const int64_t margin = int64_t{512} << 20;
    const int64_t budget =
        std::min(static_cast<int64_t>(options.gpu_memory_utilization * static_cast<double>(total_bytes)) - mine,
                 static_cast<int64_t>(free_bytes) - margin);
    blocks = budget / bytes_per_block_all_layers;
    if (blocks < max_blocks_per_seq) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "cuda model runner: GPU ", options.device, " has room for ", std::max<int64_t>(blocks, 0),
          " KV blocks after the weights (", weight_bytes, " bytes) at gpu_memory_utilization ",
          options.gpu_memory_utilization, "; expected at least ", max_blocks_per_seq, " (one max_model_len sequence)"));
    }
  }
  spec.num_blocks = static_cast<int>(std::min<int64_t>(blocks, INT32_MAX));
  TANDEM_ASSIGN_OR_RETURN(cache, KvPool::Create(spec, MemoryKind::kDevice,
                                                 [](size_t bytes) -> absl::StatusOr<std::unique_ptr<Buffer>> {
                                                   TANDEM_ASSIGN_OR_RETURN(auto b, DeviceMemory::Allocate(bytes));
                                                   return std::unique_ptr<Buffer>(std::move(b));
                                                 }));
  TLOG_INFO("cuda model runner: KV pool of {} blocks x {} tokens ({:.2f} GB bf16) on GPU {}", spec.num_blocks,
            spec.block_size, static_cast<double>(bytes_per_block_all_layers) * spec.num_blocks / 1e9, options.device);
  return absl::OkStatus();
}

CudaModelRunner::CudaModelRunner(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CudaModelRunner::~CudaModelRunner() {
  if (impl_ == nullptr) return;
  cudaSetDevice(impl_->options.device);  // the buffers and handles below are freed on their device
  if (impl_->stream.get() != nullptr) cudaStreamSynchronize(impl_->stream.get());
}

absl::StatusOr<std::unique_ptr<CudaModelRunner>> CudaModelRunner::Create(
    const model::ModelConfig& config, const model::ModelWeights& weights, const CudaModelRunnerOptions& options,
    const std::map<std::string, model::Nvfp4Tensor>* nvfp4, const std::map<std::string, model::DummyFill>* dummy) {
  TANDEM_RETURN_IF_ERROR(model::ValidateConfig(config, config.name));
  TANDEM_RETURN_IF_ERROR(model::ValidateWeights(config, weights, config.name));
  if (options.max_num_tokens <= 0 || options.max_num_seqs <= 0 || options.max_model_len <= 0 ||
      options.block_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cuda model runner: expected positive max_num_tokens, max_num_seqs, max_model_len and block_size, found ",
        options.max_num_tokens, ", ", options.max_num_seqs, ", ", options.max_model_len, ", ", options.block_size));
  }
  if (config.hidden_size % 8 != 0 || config.intermediate_size % 8 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cuda model runner: expected hidden_size and intermediate_size multiples of 8, found ",
                     config.hidden_size, " and ", config.intermediate_size));
  }
  int devices = 0;
  if (const cudaError_t err = cudaGetDeviceCount(&devices); err != cudaSuccess || devices == 0) {
    return absl::FailedPreconditionError(absl::StrCat("cuda model runner: no CUDA device is visible (cudaGetDeviceCount: ",
                                                      cudaGetErrorName(err), ", ", devices, " devices)"));
  }
  if (options.device < 0 || options.device >= devices) {
    return absl::InvalidArgumentError(absl::StrCat("cuda model runner: expected a device ordinal in [0, ", devices,
                                                   "), found ", options.device));
  }
  TANDEM_CUDA_CHECK(cudaSetDevice(options.device));
  if (options.batch_invariant && options.collective != nullptr && options.collective->size() > 1) {
    return absl::InvalidArgumentError(
        "engine.batch_invariant: not with tensor parallelism yet (the all-reduce's order depends on the batch)");
  }
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->options = options;
  if (options.batch_invariant) {  // eager steps, one GEMM algorithm per shape (CublasLtGemm), one attention kernel
    impl->options.cuda_graphs = false;
    impl->options.tune_gemms = false;
  }
  // Tensor parallelism: this rank's shard of the weights (host fp32 copies of its rows and columns).
  model::ModelWeights shard;
  const model::ModelWeights* rank_weights = &weights;
  std::map<std::string, model::Nvfp4Tensor> nvfp4_shard;
  if (dummy != nullptr && !dummy->empty()) {
    if (options.collective != nullptr && options.collective->size() > 1) {
      return absl::InvalidArgumentError(
          "cuda model runner: dummy weights generated on the device (no host data) cannot be sharded for tensor "
          "parallelism; load them on the host (LoadOptions::dummy_on_device false)");
    }
    impl->dummy = model::DummyFillsByTensor(config, weights, *dummy);
  }
  if (options.collective != nullptr && options.collective->size() > 1) {
    TANDEM_ASSIGN_OR_RETURN(const model::TensorParallelShard plan, model::PlanTensorParallelShard(
                                                                      config, options.collective->rank(),
                                                                      options.collective->size()));
    impl->config = model::ShardConfig(config, plan);
    shard = model::ShardWeights(config, weights, plan);
    rank_weights = &shard;
    if (nvfp4 != nullptr && !nvfp4->empty()) {  // the NVFP4 linears split with their scales
      TANDEM_ASSIGN_OR_RETURN(nvfp4_shard, model::ShardNvfp4(config, *nvfp4, plan));
      nvfp4 = &nvfp4_shard;
    }
    impl->leader = options.collective->rank() == 0;
  }
  const model::ModelConfig& rank_config = impl->config;
  impl->max_blocks_per_seq = static_cast<int>(CeilDiv(options.max_model_len, options.block_size));
  TANDEM_RETURN_IF_ERROR(impl->stream.Create());
  TANDEM_ASSIGN_OR_RETURN(impl->gemm, cuda::CublasLtGemm::Create());
  impl->gemm->SetBatchInvariant(options.batch_invariant);
  TANDEM_RETURN_IF_ERROR(impl->UploadWeights(*rank_weights, nvfp4));
  impl->dummy.clear();
  shard = model::ModelWeights();
  nvfp4_shard.clear();
  TANDEM_RETURN_IF_ERROR(impl->AllocateWorkspace());
  TANDEM_RETURN_IF_ERROR(impl->AllocateKvCache());
  cuda::AttentionSetup setup;
  setup.num_q_heads = rank_config.num_attention_heads;
  setup.num_kv_heads = rank_config.num_kv_heads;
  setup.head_dim = rank_config.head_dim;
  setup.block_size = options.block_size;
  setup.max_num_tokens = options.max_num_tokens;
  setup.max_num_seqs = options.max_num_seqs;
  setup.max_blocks_per_seq = impl->max_blocks_per_seq;
  setup.batch_invariant = options.batch_invariant;
  setup.batch.positions = impl->Meta<int32_t>(impl->off_pos);
  setup.batch.token_seq = impl->Meta<int32_t>(impl->off_seq);
  setup.batch.block_tables = impl->Meta<int32_t>(impl->off_tables);
  setup.batch.max_blocks_per_seq = impl->max_blocks_per_seq;
  TANDEM_ASSIGN_OR_RETURN(impl->attention, cuda::CreateStepAttention(setup));
  TLOG_INFO("cuda model runner: {} on GPU {}: attention {}, CUDA graphs {}{}", config.name, options.device,
            impl->attention->name(), impl->options.cuda_graphs ? "on" : "off",
            options.batch_invariant ? ", batch-invariant" : "");
  return std::unique_ptr<CudaModelRunner>(new CudaModelRunner(std::move(impl)));
}

const model::ModelConfig& CudaModelRunner::config() const { return impl_->config; }
const CudaModelRunnerOptions& CudaModelRunner::options() const { return impl_->options; }
KvPool& CudaModelRunner::kv_pool() { return *impl_->cache; }
size_t CudaModelRunner::weight_bytes() const { return impl_->weight_bytes; }
int CudaModelRunner::num_nvfp4_matrices() const { return impl_->num_nvfp4; }
bool CudaModelRunner::computes_logits() const { return impl_->leader; }
bool CudaModelRunner::samples_rows() const { return impl_->sampler != nullptr; }

absl::StatusOr<BatchPlan> CudaModelRunner::Plan(const std::vector<SequenceStep>& steps) const {
  const Impl& s = *impl_;
  TANDEM_ASSIGN_OR_RETURN(BatchPlan plan, PlanBatch(steps, s.cache->spec().block_size, s.cache->spec().num_blocks,
                                                    s.config.vocab_size,
                                                    std::min(s.config.max_position_embeddings, s.options.max_model_len)));
  TANDEM_RETURN_IF_ERROR(s.CheckFits(plan));
  return plan;
}

// ---- One step ----------------------------------------------------------------------------------

// Whether `plan` fits the KV pool's block size and the capacities the workspaces were sized for.
absl::Status CudaModelRunner::Impl::CheckFits(const BatchPlan& plan) const {
  const KvCacheSpec& spec = cache->spec();
  if (plan.block_size != spec.block_size || plan.num_tokens > options.max_num_tokens ||
      plan.num_seqs > options.max_num_seqs || plan.max_blocks_per_seq > max_blocks_per_seq) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cuda model runner: step of block size ", plan.block_size, ", ", plan.num_tokens, " tokens, ", plan.num_seqs,
        " sequences and ", plan.max_blocks_per_seq, " blocks per sequence; expected block size ", spec.block_size,
        " and at most ", options.max_num_tokens, ", ", options.max_num_seqs, " and ", max_blocks_per_seq));
  }
  return absl::OkStatus();
}

void CudaModelRunner::Impl::Stage(const BatchPlan& plan, int padded_tokens, int padded_seqs, int padded_logits) {
  const int n = plan.num_tokens, seqs = plan.num_seqs, m = plan.num_logits();
  int64_t* slots = Staged<int64_t>(off_slots);
  int32_t* ids = Staged<int32_t>(off_ids);
  int32_t* pos = Staged<int32_t>(off_pos);
  int32_t* seq = Staged<int32_t>(off_seq);
  std::memcpy(slots, plan.slot_mapping.data(), static_cast<size_t>(n) * sizeof(int64_t));
  std::memcpy(ids, plan.token_ids.data(), static_cast<size_t>(n) * sizeof(int32_t));
  std::memcpy(pos, plan.positions.data(), static_cast<size_t>(n) * sizeof(int32_t));
  std::memcpy(seq, plan.token_seq.data(), static_cast<size_t>(n) * sizeof(int32_t));
  for (int t = n; t < padded_tokens; ++t) {  // padding rows: token 0 at position 0 of sequence 0, no KV write
    slots[t] = -1;
    ids[t] = 0;
    pos[t] = 0;
    seq[t] = 0;
  }
  int32_t* tables = Staged<int32_t>(off_tables);
  for (int s = 0; s < padded_seqs; ++s) {
    int32_t* row = tables + static_cast<int64_t>(s) * max_blocks_per_seq;
    if (s < seqs) {
      const int32_t* src = plan.block_tables.data() + static_cast<int64_t>(s) * plan.max_blocks_per_seq;
      std::memcpy(row, src, static_cast<size_t>(plan.max_blocks_per_seq) * sizeof(int32_t));
      std::fill(row + plan.max_blocks_per_seq, row + max_blocks_per_seq, 0);
    } else {
      std::fill(row, row + max_blocks_per_seq, 0);
    }
  }
  int32_t* logit_rows = Staged<int32_t>(off_logit_rows);
  std::memcpy(logit_rows, plan.logits_token_index.data(), static_cast<size_t>(m) * sizeof(int32_t));
  for (int i = m; i < padded_logits; ++i) logit_rows[i] = i < padded_tokens ? i : 0;
}

absl::Status CudaModelRunner::Impl::CopyMeta(int tokens, int seqs, int logit_rows) {
  auto copy = [this](size_t offset, size_t bytes) -> absl::Status {
    if (bytes == 0) return absl::OkStatus();
    TANDEM_CUDA_CHECK(cudaMemcpyAsync(Meta<uint8_t>(offset), Staged<uint8_t>(offset), bytes, cudaMemcpyHostToDevice,
                                      stream.get()));
    return absl::OkStatus();
  };
  const size_t t = static_cast<size_t>(tokens);
  TANDEM_RETURN_IF_ERROR(copy(off_slots, t * sizeof(int64_t)));
  TANDEM_RETURN_IF_ERROR(copy(off_ids, t * sizeof(int32_t)));
  TANDEM_RETURN_IF_ERROR(copy(off_pos, t * sizeof(int32_t)));
  TANDEM_RETURN_IF_ERROR(copy(off_seq, t * sizeof(int32_t)));
  TANDEM_RETURN_IF_ERROR(copy(off_tables, static_cast<size_t>(seqs) * max_blocks_per_seq * sizeof(int32_t)));
  TANDEM_RETURN_IF_ERROR(copy(off_logit_rows, static_cast<size_t>(logit_rows) * sizeof(int32_t)));
  return absl::OkStatus();
}

// Enqueues the forward pass of n token rows (the batch already in `meta`), the m logits rows'
// sampling (staged in `sampler`) and the tokens' copy to the host. No host synchronisation.
absl::Status CudaModelRunner::Impl::Launch(int n, int m, const RunnerLayerCallback* on_layer_done) {
  const model::ModelConfig& c = config;
  cudaStream_t st = stream.get();
  const int hidden = c.hidden_size, hd = c.head_dim, nq = c.num_attention_heads, nkv = c.num_kv_heads;
  const int inter = c.intermediate_size;
  const int ld_qkv = (nq + 2 * nkv) * hd;
  const float eps = c.rms_norm_eps;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  bf16* x = residual->as<bf16>();   // [n, hidden] residual stream
  bf16* h = normed->as<bf16>();     // [n, hidden] normalized input of a sublayer
  bf16* q = qkv->as<bf16>();        // [n, ld_qkv]: q, k, v
  bf16* o = attn->as<bf16>();       // [n, nq * hd]
  bf16* p = proj->as<bf16>();       // [n, hidden] output of a sublayer
  bf16* gu = gate_up->as<bf16>();   // [n, 2 * inter]
  bf16* a = act->as<bf16>();        // [n, inter]
  const kernels::KvPoolLayout layout{nkv, options.block_size, hd};

  TANDEM_CUDA_CHECK(kernels::GatherRows(embed, hidden, Meta<int32_t>(off_ids), n, x, st));
  for (int l = 0; l < c.num_layers; ++l) {
    const Layer& w = layers[static_cast<size_t>(l)];
    if (l == 0) {
      TANDEM_CUDA_CHECK(kernels::RmsNorm(x, w.input_norm, h, n, hidden, eps, st));
    } else {
      TANDEM_CUDA_CHECK(kernels::FusedAddRmsNorm(p, x, w.input_norm, h, n, hidden, eps, st));  // x += MLP out
    }
    TANDEM_RETURN_IF_ERROR(Gemm(w.qkv, h, q, n, ld_qkv, hidden, st));
    if (w.qkv_bias != nullptr) TANDEM_CUDA_CHECK(kernels::AddBias(q, n, ld_qkv, ld_qkv, w.qkv_bias, st));
    if (w.q_norm != nullptr) {
      TANDEM_CUDA_CHECK(kernels::HeadRmsNorm(q, n, ld_qkv, nq, hd, w.q_norm, eps, st));
      TANDEM_CUDA_CHECK(kernels::HeadRmsNorm(q + nq * hd, n, ld_qkv, nkv, hd, w.k_norm, eps, st));
    }
    bf16* kv_layer = static_cast<bf16*>(cache->LayerData(l));
    TANDEM_CUDA_CHECK(kernels::RopeAndWriteKv(q, n, ld_qkv, nq, Meta<int32_t>(off_pos), inv_freq->as<float>(),
                                              Meta<int64_t>(off_slots), layout, kv_layer, st));
    if (on_layer_done != nullptr) TANDEM_CUDA_CHECK(cudaEventRecord(layer_done[static_cast<size_t>(l)].get(), st));
    TANDEM_RETURN_IF_ERROR(attention->Run(q, ld_qkv, n, kv_layer, o, scale, st));
    TANDEM_RETURN_IF_ERROR(Gemm(w.o, o, p, n, hidden, nq * hd, st));
    if (options.collective != nullptr) {  // partial sums over this rank's heads
      TANDEM_RETURN_IF_ERROR(options.collective->AllReduceSum(p, static_cast<size_t>(n) * hidden, DType::kBF16, st));
    }
    TANDEM_CUDA_CHECK(kernels::FusedAddRmsNorm(p, x, w.post_norm, h, n, hidden, eps, st));  // x += attention out
    TANDEM_RETURN_IF_ERROR(Gemm(w.gate_up, h, gu, n, 2 * inter, hidden, st));
    TANDEM_CUDA_CHECK(kernels::SiluMul(gu, n, inter, a, st));
    TANDEM_RETURN_IF_ERROR(Gemm(w.down, a, p, n, hidden, inter, st));
    if (options.collective != nullptr) {  // partial sums over this rank's intermediate columns
      TANDEM_RETURN_IF_ERROR(options.collective->AllReduceSum(p, static_cast<size_t>(n) * hidden, DType::kBF16, st));
    }
  }
  if (m == 0 || !leader) return absl::OkStatus();
  const int32_t* rows = Meta<int32_t>(off_logit_rows);
  TANDEM_CUDA_CHECK(kernels::GatherRows(x, hidden, rows, m, logit_hidden->as<bf16>(), st));
  TANDEM_CUDA_CHECK(kernels::GatherRows(p, hidden, rows, m, logit_mlp->as<bf16>(), st));
  TANDEM_CUDA_CHECK(kernels::FusedAddRmsNorm(logit_mlp->as<bf16>(), logit_hidden->as<bf16>(), final_norm,
                                             logit_normed->as<bf16>(), m, hidden, eps, st));
  TANDEM_RETURN_IF_ERROR(gemm->Matmul(logit_normed->as<bf16>(), lm_head, logits->data(), true, m, c.vocab_size,
                                      hidden, st));
  return sampler != nullptr ? sampler->Launch(logits->as<float>(), m, st) : absl::OkStatus();
}

// Copies the logits rows the host samples from: all of them in one copy when every row is wanted,
// else row by row (rows sampled on the device stay there).
absl::Status CudaModelRunner::Impl::CopyLogitsOut(const BatchPlan& plan) {
  const size_t row_bytes = static_cast<size_t>(config.vocab_size) * sizeof(float);
  const int m = plan.num_logits();
  const int full = static_cast<int>(std::count(plan.logits_full.begin(), plan.logits_full.end(), uint8_t{1}));
  if (full == 0 || !leader) return absl::OkStatus();
  if (full == m) {
    TANDEM_CUDA_CHECK(cudaMemcpyAsync(host_logits.as<float>(), logits->data(), row_bytes * static_cast<size_t>(m),
                                      cudaMemcpyDeviceToHost, stream.get()));
    return absl::OkStatus();
  }
  for (int r = 0; r < m; ++r) {
    if (plan.logits_full[static_cast<size_t>(r)] == 0) continue;
    const size_t at = row_bytes * static_cast<size_t>(r);
    TANDEM_CUDA_CHECK(cudaMemcpyAsync(host_logits.as<uint8_t>() + at, logits->as<uint8_t>() + at, row_bytes,
                                      cudaMemcpyDeviceToHost, stream.get()));
  }
  return absl::OkStatus();
}

// Times cuBLASLt's candidates for the step's GEMM shapes at m rows, cycling through every layer's
// weights, before a decode graph of m rows is captured, which then replays the fastest.
absl::Status CudaModelRunner::Impl::TuneGemms(int m) {
  const model::ModelConfig& c = config;
  const int hidden = c.hidden_size, hd = c.head_dim, nq = c.num_attention_heads, nkv = c.num_kv_heads;
  const int ld_qkv = (nq + 2 * nkv) * hd;
  // The weights cuBLASLt reads for a linear at m rows: every layer's bf16 matrix, or the NVFP4 scratch
  // (one matrix); none when the NVFP4 GEMM runs these steps.
  auto weights_of = [&](Linear Layer::*member) {
    std::vector<const bf16*> ws;
    for (const Layer& layer : layers) {
      const Linear& l = layer.*member;
      if (!l.nvfp4.has_value()) {
        ws.push_back(l.dense);
      } else if (m > kNvfp4GemmMaxRows && ws.empty()) {
        ws.push_back(nvfp4_scratch->as<bf16>());
      }
    }
    return ws;
  };
  const std::vector<const bf16*> qkv_w = weights_of(&Layer::qkv), o_w = weights_of(&Layer::o),
                                 gate_up_w = weights_of(&Layer::gate_up), down_w = weights_of(&Layer::down);
  const std::vector<const bf16*> lm_head_w = {lm_head};
  cudaStream_t st = stream.get();
  auto tune = [&](const bf16* x, const std::vector<const bf16*>& ws, void* out, int n, int k) -> absl::Status {
    if (ws.empty()) return absl::OkStatus();
    return gemm->Tune(x, ws, out, false, m, n, k, st);
  };
  TANDEM_RETURN_IF_ERROR(tune(normed->as<bf16>(), qkv_w, qkv->data(), ld_qkv, hidden));
  TANDEM_RETURN_IF_ERROR(tune(attn->as<bf16>(), o_w, proj->data(), hidden, nq * hd));
  TANDEM_RETURN_IF_ERROR(tune(normed->as<bf16>(), gate_up_w, gate_up->data(), 2 * c.intermediate_size, hidden));
  TANDEM_RETURN_IF_ERROR(tune(act->as<bf16>(), down_w, proj->data(), hidden, c.intermediate_size));
  if (leader) {
    TANDEM_RETURN_IF_ERROR(
        gemm->Tune(logit_normed->as<bf16>(), lm_head_w, logits->data(), true, m, c.vocab_size, hidden, st));
  }
  return absl::OkStatus();
}

absl::StatusOr<CudaStepOutput> CudaModelRunner::Impl::Run(const BatchPlan& plan, const RunnerLayerCallback* on_layer_done,
                                                          bool allow_graph) {
  // The calling thread (the engine loop) may not have made the runner's device current; launches on
  // another device's stream fail with cudaErrorInvalidResourceHandle.
  TANDEM_CUDA_CHECK(cudaSetDevice(options.device));
  TANDEM_RETURN_IF_ERROR(CheckFits(plan));
  const int n = plan.num_tokens, m = plan.num_logits();
  const bool decode_only = n == plan.num_seqs;
  // Decode steps run at a padded batch size (the graph's); ForwardEager runs the same padded step
  // without the graph, so the two are comparable bitwise (same GEMM shapes and algorithms).
  int bucket = 0;
  if (options.cuda_graphs && decode_only && on_layer_done == nullptr) {
    for (int b : kGraphBuckets) {
      if (b >= n && b <= options.max_num_seqs && b <= options.max_num_tokens) {
        bucket = b;
        break;
      }
    }
  }
  cudaStream_t st = stream.get();
  // A padded decode step has `bucket` rows, sequences and logits rows; any other step its own counts.
  const int rows = bucket > 0 ? bucket : n;
  const int seqs = bucket > 0 ? bucket : plan.num_seqs;
  const int logit_rows = bucket > 0 ? bucket : m;
  Stage(plan, rows, seqs, logit_rows);
  if (sampler != nullptr) TANDEM_RETURN_IF_ERROR(sampler->Stage(plan.logits_full, plan.logits_sampling, logit_rows, st));
  TANDEM_RETURN_IF_ERROR(attention->Plan(plan, bucket, st));
  if (bucket > 0 && allow_graph) {  // the decode graph of the bucket: the batch's copies are part of it
    auto it = graphs.find(bucket);
    if (it == graphs.end()) {
      if (options.tune_gemms) TANDEM_RETURN_IF_ERROR(TuneGemms(bucket));
      TANDEM_CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
      absl::Status launched = CopyMeta(bucket, bucket, bucket);
      if (launched.ok()) launched = Launch(bucket, bucket, nullptr);
      cudaGraph_t graph = nullptr;
      const cudaError_t end = cudaStreamEndCapture(st, &graph);
      if (!launched.ok()) {
        if (graph != nullptr) cudaGraphDestroy(graph);
        return launched;
      }
      TANDEM_CUDA_CHECK(end);
      cuda::GraphExec exec;
      TANDEM_RETURN_IF_ERROR(exec.Instantiate(graph));
      it = graphs.emplace(bucket, std::move(exec)).first;
      TLOG_INFO("cuda model runner: captured the decode graph for batch {}", bucket);
    }
    TANDEM_RETURN_IF_ERROR(it->second.Launch(st));
  } else {  // eager: prefill and mixed steps, layer-hooked steps, and ForwardEager's padded decode step
    TANDEM_RETURN_IF_ERROR(CopyMeta(rows, seqs, logit_rows));
    TANDEM_RETURN_IF_ERROR(Launch(rows, logit_rows, on_layer_done));
    if (on_layer_done != nullptr) {
      for (int l = 0; l < config.num_layers; ++l) {
        TANDEM_CUDA_CHECK(cudaEventSynchronize(layer_done[static_cast<size_t>(l)].get()));
        (*on_layer_done)(l);
      }
    }
  }
  TANDEM_RETURN_IF_ERROR(CopyLogitsOut(plan));
  TANDEM_CUDA_CHECK(cudaStreamSynchronize(st));
  CudaStepOutput out;
  if (!leader) return out;
  out.logits = std::span<const float>(host_logits.as<float>(), static_cast<size_t>(m) * config.vocab_size);
  if (sampler != nullptr) out.tokens = sampler->tokens(m);
  return out;
}

absl::StatusOr<CudaStepOutput> CudaModelRunner::Forward(const BatchPlan& plan, const RunnerLayerCallback* on_layer_done) {
  return impl_->Run(plan, on_layer_done, /*allow_graph=*/true);
}

absl::StatusOr<CudaStepOutput> CudaModelRunner::ForwardEager(const BatchPlan& plan) {
  return impl_->Run(plan, nullptr, /*allow_graph=*/false);
}

}  // namespace tandem::backend
