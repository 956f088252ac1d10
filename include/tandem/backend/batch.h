// One forward step's batch, planned on the host before anything runs ("plan, then run"): a mix of
// prefill chunks and decode tokens, each sequence bringing its new token ids, the number of tokens
// it already has in the KV cache, its block table, and whether it wants logits for its last token.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "tandem/backend/row_sampling.h"

namespace tandem::backend {

// What the scheduler says about one sequence for this step.
struct SequenceStep {
  std::vector<int32_t> token_ids;    // the new tokens this step (a prefill chunk, or one decode token)
  int32_t start_position = 0;        // tokens of this sequence already in the KV cache
  std::vector<int32_t> block_table;  // physical block ids covering positions [0, start + new)
  bool needs_logits = true;          // logits for the last new token (end of prompt chunk, or decode)
  // The whole logits row must reach the host (sampling there); false: a device backend samples the
  // row where it is, as `sampling` says (null: the plain argmax), and need not copy it out.
  bool needs_full_logits = true;
  const RowSampling* sampling = nullptr;  // owned by the caller, valid during the step
};

// Everything the kernels need, flattened. num_tokens = sum of new tokens over the sequences.
struct BatchPlan {
  int num_tokens = 0;
  int num_seqs = 0;
  int block_size = 0;
  int max_blocks_per_seq = 0;  // row length of block_tables
  int max_context_len = 0;     // longest start + new over the sequences

  std::vector<int32_t> token_ids;     // [num_tokens]
  std::vector<int32_t> positions;     // [num_tokens] absolute position of each new token
  std::vector<int32_t> token_seq;     // [num_tokens] index of the token's sequence
  std::vector<int64_t> slot_mapping;  // [num_tokens] block_id * block_size + offset: where K/V go
  std::vector<int32_t> block_tables;  // [num_seqs, max_blocks_per_seq], padded with -1
  std::vector<int32_t> seq_token_start;  // [num_seqs + 1] prefix sums of new tokens per sequence
  std::vector<int32_t> context_lens;     // [num_seqs] start + new tokens
  std::vector<int32_t> logits_token_index;  // [num_logits] token rows whose logits are returned
  std::vector<int32_t> logits_seq;          // [num_logits] sequence of each logits row
  std::vector<uint8_t> logits_full;         // [num_logits] 1: the row's full logits go to the host
  std::vector<const RowSampling*> logits_sampling;  // [num_logits] SequenceStep::sampling of the row

  int num_logits() const { return static_cast<int>(logits_token_index.size()); }
};

// Validates and flattens `steps`. Errors (InvalidArgument, naming the sequence): no new tokens, a
// negative start, a token id outside [0, vocab_size), a block table too short for start + new
// tokens, a block id outside [0, num_blocks), or more than max_positions tokens in a sequence.
absl::StatusOr<BatchPlan> PlanBatch(const std::vector<SequenceStep>& steps, int block_size, int num_blocks,
                                    int vocab_size, int max_positions);

}  // namespace tandem::backend
