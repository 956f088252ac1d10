// The compute interface the model runner is written against. The CPU backend is the reference
// implementation; a CUDA backend implements the same calls later with device memory and kernel
// launches. Every pointer an op takes points into memory this backend allocated (Buffer), and ops
// are launch-like: shapes were validated when the batch was planned, so ops return nothing and a
// device backend may run them asynchronously until Synchronize().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tandem/backend/buffer.h"
#include "tandem/backend/kv_pool.h"

namespace tandem::backend {

// How a weight matrix is stored in backend memory.
enum class WeightFormat {
  kF32,   // fp32 [rows, cols]
  kQ4_1,  // GGUF block_q4_1 rows: per 32 columns {fp16 d, fp16 m, 16 bytes of nibbles}, x = q * d + m
  kQ8_0,  // GGUF block_q8_0 rows: per 32 columns {fp16 d, 32 int8}, x = q * d
};

// Bytes of one row of `cols` columns (cols a multiple of 32 for the block formats).
int64_t WeightRowBytes(WeightFormat format, int64_t cols);

// A weight matrix in backend memory, Hugging Face nn.Linear layout: [rows = out, cols = in]
// row-major, applied as y = x W^T. A block-quantized matrix is only used where it dequantizes to
// exactly the fp32 weights the loader produced (ModelRunner checks), and the kernels dequantize
// exactly, so every format gives the same bits.
struct Matrix {
  const float* data = nullptr;  // kF32: [rows, cols]
  int64_t rows = 0;
  int64_t cols = 0;
  WeightFormat format = WeightFormat::kF32;
  const uint8_t* blocks = nullptr;  // kQ4_1 / kQ8_0: rows * WeightRowBytes(format, cols) bytes
};

// The planned batch (see batch.h) as pointers into backend memory.
struct BatchView {
  int num_tokens = 0;
  int num_seqs = 0;
  int block_size = 0;
  int max_blocks_per_seq = 0;
  int max_context_len = 0;
  int num_logits = 0;
  const int32_t* token_ids = nullptr;           // [num_tokens]
  const int32_t* positions = nullptr;           // [num_tokens]
  const int32_t* token_seq = nullptr;           // [num_tokens]
  const int64_t* slot_mapping = nullptr;        // [num_tokens]
  const int32_t* block_tables = nullptr;        // [num_seqs, max_blocks_per_seq]
  const int32_t* context_lens = nullptr;        // [num_seqs]
  const int32_t* logits_token_index = nullptr;  // [num_logits]
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string_view name() const = 0;
  virtual MemoryKind memory_kind() const = 0;

  // Memory.
  virtual absl::StatusOr<std::unique_ptr<Buffer>> Allocate(size_t bytes) = 0;
  virtual absl::Status CopyFromHost(void* dst, const void* host_src, size_t bytes) = 0;
  virtual absl::Status CopyToHost(void* host_dst, const void* src, size_t bytes) = 0;
  // Waits for every op issued so far.
  virtual absl::Status Synchronize() = 0;
  // Whether MatMul accepts matrices stored in `format` (kF32 always).
  virtual bool SupportsWeightFormat(WeightFormat format) const = 0;

  // ---- Ops. n = number of token rows; `ld` = row stride in floats where rows are views into a
  // wider buffer (e.g. q, k and v inside one fused projection output).

  // out[t, :] = table[ids[t], :].  table [vocab, dim], out [n, dim].
  virtual void Embedding(const int32_t* ids, int n, const float* table, int dim, float* out) = 0;

  // out[t] = x[t] * rsqrt(mean(x[t]^2) + eps) * weight.  x, out [n, dim], weight [dim].
  virtual void RmsNorm(const float* x, const float* weight, int n, int dim, float eps, float* out) = 0;

  // Fused residual add: residual[t] += x[t]; out[t] = RmsNorm(residual[t]).  [n, dim] each.
  virtual void AddRmsNorm(float* residual, const float* x, const float* weight, int n, int dim, float eps,
                          float* out) = 0;

  // out [n, w.rows] = x [n, w.cols] @ w^T. Each output element's reduction order is fixed by w.cols
  // alone (batch-invariant: the same row gives the same bits whatever else is in the batch).
  virtual void MatMul(const float* x, int n, const Matrix& w, float* out) = 0;

  // x[t, 0:dim] += bias[0:dim] for rows of stride ld.
  virtual void AddBias(float* x, int n, int ld, int dim, const float* bias) = 0;

  // Per-head RMSNorm (Qwen3 q_norm / k_norm): each head_dim slice of x[t, 0:num_heads*head_dim]
  // (rows of stride ld) is normalized in place and scaled by weight [head_dim].
  virtual void HeadRmsNorm(float* x, int n, int ld, int num_heads, int head_dim, const float* weight,
                           float eps) = 0;

  // cos_sin [n, head_dim] = for each token: cos(pos * inv_freq[0:hd/2]), then sin(...), computed as
  // Hugging Face does (fp32 angle = float(pos) * inv_freq).  inv_freq [head_dim / 2].
  virtual void RotaryTable(const int32_t* positions, int n, const float* inv_freq, int head_dim,
                           float* cos_sin) = 0;

  // Rotary embedding in place, rotate_half convention: pairs (i, i + hd/2) of each head of
  // x[t, 0:num_heads*head_dim] (rows of stride ld) are rotated by the angles in cos_sin[t].
  virtual void Rotary(float* x, int n, int ld, int num_heads, int head_dim, const float* cos_sin) = 0;

  // Writes each new token's K and V (rows of stride ld, [num_kv_heads * head_dim] each) into the
  // paged cache of `layer` at the token's slot_mapping.
  virtual void WriteKv(const float* k, const float* v, int ld, const BatchView& batch, KvPool& cache,
                       int layer) = 0;

  // Causal paged attention with GQA. For each new token t of sequence s at position p, every query
  // head h attends over positions [0, p] of s read from the cache (kv head h / (num_heads /
  // num_kv_heads)). q rows [num_heads * head_dim] of stride ld_q; out [n, num_heads * head_dim].
  // The reduction over keys runs in position order, whatever the batch or chunking.
  virtual void PagedAttention(const float* q, int ld_q, const BatchView& batch, const KvPool& cache,
                              int layer, int num_heads, float scale, float* out) = 0;

  // out[t, i] = silu(gate_up[t, i]) * gate_up[t, inter + i].  gate_up [n, 2 * inter], out [n, inter].
  virtual void SiluMul(const float* gate_up, int n, int inter, float* out) = 0;

  // out[i, :] = x[rows[i], :].  x [*, dim], out [m, dim].
  virtual void GatherRows(const float* x, int dim, const int32_t* rows, int m, float* out) = 0;
};

}  // namespace tandem::backend
