#include "tandem/model/tensor_parallel.h"

#include <algorithm>
#include <cstring>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tandem/core/status.h"

namespace tandem::model {

namespace {

// The balanced contiguous range [begin, end) of `rank` when `count` items are dealt to `size` ranks
// (the first count % size ranks take one more).
std::pair<int, int> BalancedRange(int count, int rank, int size) {
  const int base = count / size, extra = count % size;
  const int begin = rank * base + std::min(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

// Weights are fp32, or bf16/fp16 (LoadOptions::keep_16bit): the helpers below copy bytes.

// Rows [row0, row0 + rows) of a 2-D or 1-D tensor, appended to `out` as bytes.
void AppendRows(const Tensor& t, int64_t row0, int64_t rows, std::vector<uint8_t>* out) {
  const int64_t cols = t.ndim() == 2 ? t.dim(1) : 1;
  const size_t esize = DTypeSize(t.dtype());
  const uint8_t* src = static_cast<const uint8_t*>(t.raw_data()) + static_cast<size_t>(row0 * cols) * esize;
  out->insert(out->end(), src, src + static_cast<size_t>(rows * cols) * esize);
}

Tensor FromBytes(DType dtype, const std::vector<uint8_t>& data, std::vector<int64_t> shape) {
  Tensor t = Tensor::Empty(dtype, std::move(shape));
  std::memcpy(t.raw_data(), data.data(), data.size());
  return t;
}

// The rows of head `heads[i]` (head_dim rows each) of a [heads * hd, ...] tensor, in order.
Tensor HeadRows(const Tensor& t, const std::vector<int>& heads, int hd) {
  if (!t.defined()) return t;
  std::vector<uint8_t> out;
  for (int h : heads) AppendRows(t, int64_t{h} * hd, hd, &out);
  std::vector<int64_t> shape = t.shape();
  shape[0] = static_cast<int64_t>(heads.size()) * hd;
  return FromBytes(t.dtype(), out, std::move(shape));
}

Tensor RowRange(const Tensor& t, int64_t begin, int64_t end) {
  std::vector<uint8_t> out;
  AppendRows(t, begin, end - begin, &out);
  std::vector<int64_t> shape = t.shape();
  shape[0] = end - begin;
  return FromBytes(t.dtype(), out, std::move(shape));
}

// Columns [begin, end) of a 2-D tensor.
Tensor ColumnRange(const Tensor& t, int64_t begin, int64_t end) {
  const int64_t rows = t.dim(0), cols = t.dim(1), width = end - begin;
  const size_t esize = DTypeSize(t.dtype());
  Tensor out = Tensor::Empty(t.dtype(), {rows, width});
  auto* dst = static_cast<uint8_t*>(out.raw_data());
  const auto* src = static_cast<const uint8_t*>(t.raw_data());
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(dst + static_cast<size_t>(r * width) * esize, src + static_cast<size_t>(r * cols + begin) * esize,
                static_cast<size_t>(width) * esize);
  }
  return out;
}

}  // namespace

absl::StatusOr<TensorParallelShard> PlanTensorParallelShard(const ModelConfig& config, int rank, int size) {
  const int nq = config.num_attention_heads, nkv = config.num_kv_heads;
  if (size < 1 || rank < 0 || rank >= size) {
    return absl::InvalidArgumentError(absl::StrCat("tensor parallel: rank ", rank, " of ", size, " is not a rank"));
  }
  if (nq < size) {
    return absl::InvalidArgumentError(absl::StrCat("tensor parallel: tensor_parallel ", size, " exceeds ", config.name,
                                                   "'s ", nq, " attention heads (each rank needs at least one)"));
  }
  if (config.intermediate_size < size) {
    return absl::InvalidArgumentError(absl::StrCat("tensor parallel: tensor_parallel ", size, " exceeds ", config.name,
                                                   "'s intermediate_size ", config.intermediate_size));
  }
  const int group = nq / nkv;
  TensorParallelShard s;
  s.rank = rank;
  s.size = size;
  if (nkv >= size) {
    const auto [kv_begin, kv_end] = BalancedRange(nkv, rank, size);
    for (int h = kv_begin; h < kv_end; ++h) s.kv_heads.push_back(h);
    s.q_begin = kv_begin * group;
    s.q_end = kv_end * group;
  } else {
    std::tie(s.q_begin, s.q_end) = BalancedRange(nq, rank, size);
    const int first = s.q_begin / group, last = (s.q_end - 1) / group;
    for (int h = first; h <= last; ++h) s.kv_heads.push_back(h);
    // Equal groups: local query head j reads local KV head j / (local q / local kv).
    const int local_q = s.num_q_heads(), local_kv = s.num_kv_heads();
    bool equal_groups = local_q % local_kv == 0;
    for (int j = 0; equal_groups && j < local_q; ++j) {
      equal_groups = s.kv_heads[static_cast<size_t>(j / (local_q / local_kv))] == (s.q_begin + j) / group;
    }
    if (!equal_groups) {
      s.expanded = true;
      s.kv_heads.clear();
      for (int q = s.q_begin; q < s.q_end; ++q) s.kv_heads.push_back(q / group);
    }
  }
  std::tie(s.inter_begin, s.inter_end) = BalancedRange(config.intermediate_size, rank, size);
  return s;
}

ModelConfig ShardConfig(const ModelConfig& config, const TensorParallelShard& shard) {
  ModelConfig c = config;
  c.num_attention_heads = shard.num_q_heads();
  c.num_kv_heads = shard.num_kv_heads();
  c.intermediate_size = shard.inter_end - shard.inter_begin;
  return c;
}

ModelWeights ShardWeights(const ModelConfig& config, const ModelWeights& weights, const TensorParallelShard& shard) {
  const int hd = config.head_dim;
  std::vector<int> q_heads;
  for (int h = shard.q_begin; h < shard.q_end; ++h) q_heads.push_back(h);
  ModelWeights out;
  out.embed_tokens = weights.embed_tokens;
  out.final_norm = weights.final_norm;
  out.lm_head = weights.lm_head;
  out.layers.reserve(weights.layers.size());
  for (const LayerWeights& w : weights.layers) {
    LayerWeights l;
    l.input_norm = w.input_norm;
    l.post_attention_norm = w.post_attention_norm;
    l.q_norm = w.q_norm;  // per head_dim, the same for every head
    l.k_norm = w.k_norm;
    l.q_proj = HeadRows(w.q_proj, q_heads, hd);
    l.k_proj = HeadRows(w.k_proj, shard.kv_heads, hd);
    l.v_proj = HeadRows(w.v_proj, shard.kv_heads, hd);
    l.q_bias = HeadRows(w.q_bias, q_heads, hd);
    l.k_bias = HeadRows(w.k_bias, shard.kv_heads, hd);
    l.v_bias = HeadRows(w.v_bias, shard.kv_heads, hd);
    l.o_proj = ColumnRange(w.o_proj, int64_t{shard.q_begin} * hd, int64_t{shard.q_end} * hd);
    l.gate_proj = RowRange(w.gate_proj, shard.inter_begin, shard.inter_end);
    l.up_proj = RowRange(w.up_proj, shard.inter_begin, shard.inter_end);
    l.down_proj = ColumnRange(w.down_proj, shard.inter_begin, shard.inter_end);
    out.layers.push_back(std::move(l));
  }
  return out;
}

namespace {

// Rows `rows` (in order) of an NVFP4 tensor, with their scales.
Nvfp4Tensor Nvfp4Rows(const Nvfp4Tensor& t, const std::vector<int64_t>& rows) {
  Nvfp4Tensor out;
  out.rows = static_cast<int64_t>(rows.size());
  out.cols = t.cols;
  out.scale2 = t.scale2;
  const size_t packed_row = static_cast<size_t>(t.cols / 2), scale_row = static_cast<size_t>(t.cols / 16);
  for (int64_t r : rows) {
    const size_t at = static_cast<size_t>(r);
    out.packed.insert(out.packed.end(), t.packed.begin() + at * packed_row, t.packed.begin() + (at + 1) * packed_row);
    out.scales.insert(out.scales.end(), t.scales.begin() + at * scale_row, t.scales.begin() + (at + 1) * scale_row);
  }
  return out;
}

absl::StatusOr<Nvfp4Tensor> Nvfp4Columns(const std::string& name, const Nvfp4Tensor& t, int64_t begin, int64_t end) {
  if (begin % 16 != 0 || end % 16 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor parallel: NVFP4 ", name, " would be split at columns [", begin, ", ", end,
        "), inside its 16-column scale groups; choose a tensor_parallel that splits it at multiples of 16"));
  }
  Nvfp4Tensor out;
  out.rows = t.rows;
  out.cols = end - begin;
  out.scale2 = t.scale2;
  const size_t packed_row = static_cast<size_t>(t.cols / 2), scale_row = static_cast<size_t>(t.cols / 16);
  for (int64_t r = 0; r < t.rows; ++r) {
    const size_t row = static_cast<size_t>(r);
    out.packed.insert(out.packed.end(), t.packed.begin() + row * packed_row + begin / 2,
                      t.packed.begin() + row * packed_row + end / 2);
    out.scales.insert(out.scales.end(), t.scales.begin() + row * scale_row + begin / 16,
                      t.scales.begin() + row * scale_row + end / 16);
  }
  return out;
}

std::vector<int64_t> HeadRowIds(const std::vector<int>& heads, int hd) {
  std::vector<int64_t> rows;
  for (int h : heads) {
    for (int i = 0; i < hd; ++i) rows.push_back(int64_t{h} * hd + i);
  }
  return rows;
}

std::vector<int64_t> RangeIds(int64_t begin, int64_t end) {
  std::vector<int64_t> rows;
  for (int64_t r = begin; r < end; ++r) rows.push_back(r);
  return rows;
}

}  // namespace

absl::StatusOr<std::map<std::string, Nvfp4Tensor>> ShardNvfp4(const ModelConfig& config,
                                                                const std::map<std::string, Nvfp4Tensor>& nvfp4,
                                                                const TensorParallelShard& shard) {
  const int hd = config.head_dim;
  std::vector<int> q_heads;
  for (int h = shard.q_begin; h < shard.q_end; ++h) q_heads.push_back(h);
  std::map<std::string, Nvfp4Tensor> out;
  for (const auto& [name, t] : nvfp4) {
    auto ends_with = [&name](const char* suffix) {
      const std::string s(suffix);
      return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
    };
    if (name.rfind("model.layers.", 0) != 0) {
      out.emplace(name, t);
    } else if (ends_with(".self_attn.q_proj.weight")) {
      out.emplace(name, Nvfp4Rows(t, HeadRowIds(q_heads, hd)));
    } else if (ends_with(".self_attn.k_proj.weight") || ends_with(".self_attn.v_proj.weight")) {
      out.emplace(name, Nvfp4Rows(t, HeadRowIds(shard.kv_heads, hd)));
    } else if (ends_with(".mlp.gate_proj.weight") || ends_with(".mlp.up_proj.weight")) {
      out.emplace(name, Nvfp4Rows(t, RangeIds(shard.inter_begin, shard.inter_end)));
    } else if (ends_with(".self_attn.o_proj.weight")) {
      TANDEM_ASSIGN_OR_RETURN(Nvfp4Tensor part,
                              Nvfp4Columns(name, t, int64_t{shard.q_begin} * hd, int64_t{shard.q_end} * hd));
      out.emplace(name, std::move(part));
    } else if (ends_with(".mlp.down_proj.weight")) {
      TANDEM_ASSIGN_OR_RETURN(Nvfp4Tensor part, Nvfp4Columns(name, t, shard.inter_begin, shard.inter_end));
      out.emplace(name, std::move(part));
    } else {
      return absl::InvalidArgumentError(absl::StrCat("tensor parallel: no rule to split NVFP4 tensor ", name));
    }
  }
  return out;
}

}  // namespace tandem::model
