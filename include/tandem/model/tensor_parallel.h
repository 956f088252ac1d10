// Tensor parallelism's split of a dense Llama-family model across `size` ranks, Megatron style:
// q/k/v and gate/up split by output rows (whole attention heads, intermediate columns), o_proj and
// down_proj split by input columns (each rank's output is a partial sum that an all-reduce
// completes). The embedding, the norms and the lm_head are not split (docs/architecture.md "Tensor
// parallelism" says why): every rank embeds its tokens, and only rank 0 computes logits.
//
// Which heads a rank holds:
// - num_kv_heads >= size: the KV heads are dealt out in contiguous, balanced ranges and each rank
//   takes the query heads of its KV heads (whole GQA groups; SmolLM2's 3 KV heads over 2 ranks give
//   2 + 1 KV heads and 6 + 3 query heads).
// - num_kv_heads < size: the query heads are dealt out in balanced ranges and each rank holds the KV
//   heads its query heads read (a KV head is replicated on the ranks that share it, as vLLM does).
//   Where a rank's query heads do not map onto its KV heads in equal groups (a range that starts in
//   the middle of a group of a different length), the rank keeps one KV head per query head
//   ("expanded"): correct for any split, at the cost of KV memory; even splits never need it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tandem/model/model_config.h"
#include "tandem/model/nvfp4.h"
#include "tandem/model/weights.h"

namespace tandem::model {

struct TensorParallelShard {
  int rank = 0;
  int size = 1;
  int q_begin = 0, q_end = 0;          // this rank's query heads [q_begin, q_end)
  std::vector<int> kv_heads;           // the model KV head of each of this rank's KV heads, in order
  bool expanded = false;               // one KV head per query head (see above)
  int inter_begin = 0, inter_end = 0;  // this rank's intermediate columns [inter_begin, inter_end)

  int num_q_heads() const { return q_end - q_begin; }
  int num_kv_heads() const { return static_cast<int>(kv_heads.size()); }
};

// The split of `config` for `rank` of `size`. InvalidArgument when the model has fewer attention
// heads or intermediate columns than ranks (a rank would hold none).
absl::StatusOr<TensorParallelShard> PlanTensorParallelShard(const ModelConfig& config, int rank, int size);

// The config one rank runs: its own num_attention_heads, num_kv_heads and intermediate_size; every
// other field (hidden size, vocabulary, head_dim) as the model's.
ModelConfig ShardConfig(const ModelConfig& config, const TensorParallelShard& shard);

// The rank's weights (host fp32 copies of its rows and columns); the embedding, the norms and the
// lm_head share storage with `weights`. `weights` must be valid for `config` (ValidateWeights).
ModelWeights ShardWeights(const ModelConfig& config, const ModelWeights& weights, const TensorParallelShard& shard);

// The rank's part of a model's NVFP4 linears (LoadedModel::nvfp4, keyed by Hugging Face tensor name),
// split exactly as ShardWeights splits their fp32 dequantization: rows with their per-16 scales for
// q/k/v and gate/up, 16-column groups for o_proj and down_proj (InvalidArgument when a split falls
// inside a group); scale2 unchanged; tensors outside the layers kept whole.
absl::StatusOr<std::map<std::string, Nvfp4Tensor>> ShardNvfp4(const ModelConfig& config,
                                                                const std::map<std::string, Nvfp4Tensor>& nvfp4,
                                                                const TensorParallelShard& shard);

}  // namespace tandem::model
