#include "tandem/backend/batch.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace tandem::backend {

absl::StatusOr<BatchPlan> PlanBatch(const std::vector<SequenceStep>& steps, int block_size, int num_blocks,
                                    int vocab_size, int max_positions) {
  if (steps.empty()) return absl::InvalidArgumentError("plan batch: expected at least one sequence, got none");
  if (block_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("plan batch: block_size must be positive, got ", block_size));
  }
  BatchPlan plan;
  plan.num_seqs = static_cast<int>(steps.size());
  plan.block_size = block_size;
  plan.seq_token_start.push_back(0);
  for (size_t s = 0; s < steps.size(); ++s) {
    const SequenceStep& step = steps[s];
    const int n = static_cast<int>(step.token_ids.size());
    if (n == 0) return absl::InvalidArgumentError(absl::StrCat("plan batch: sequence ", s, " has no new tokens"));
    if (step.start_position < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("plan batch: sequence ", s, " has negative start position ", step.start_position));
    }
    const int64_t context = int64_t{step.start_position} + n;
    if (max_positions > 0 && context > max_positions) {
      return absl::InvalidArgumentError(absl::StrCat("plan batch: sequence ", s, " reaches ", context,
                                                     " tokens, more than the model's ", max_positions));
    }
    const int64_t blocks_needed = (context + block_size - 1) / block_size;
    if (static_cast<int64_t>(step.block_table.size()) < blocks_needed) {
      return absl::InvalidArgumentError(absl::StrCat("plan batch: sequence ", s, " needs ", blocks_needed,
                                                     " blocks for ", context, " tokens, its block table has ",
                                                     step.block_table.size()));
    }
    for (int64_t b = 0; b < blocks_needed; ++b) {
      const int32_t id = step.block_table[static_cast<size_t>(b)];
      if (id < 0 || id >= num_blocks) {
        return absl::InvalidArgumentError(absl::StrCat("plan batch: sequence ", s, " block table entry ", b,
                                                       " is ", id, ", expected [0, ", num_blocks, ")"));
      }
    }
    for (int i = 0; i < n; ++i) {
      const int32_t id = step.token_ids[static_cast<size_t>(i)];
      if (id < 0 || id >= vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("plan batch: sequence ", s, " token ", i, " is id ", id,
                                                       ", expected [0, ", vocab_size, ")"));
      }
      const int32_t pos = step.start_position + i;
      plan.token_ids.push_back(id);
      plan.positions.push_back(pos);
      plan.token_seq.push_back(static_cast<int32_t>(s));
      plan.slot_mapping.push_back(int64_t{step.block_table[static_cast<size_t>(pos / block_size)]} * block_size +
                                  pos % block_size);
    }
    plan.num_tokens += n;
    plan.seq_token_start.push_back(plan.num_tokens);
    plan.context_lens.push_back(static_cast<int32_t>(context));
    plan.max_context_len = std::max(plan.max_context_len, static_cast<int>(context));
    plan.max_blocks_per_seq = std::max(plan.max_blocks_per_seq, static_cast<int>(blocks_needed));
    if (step.needs_logits) {
      plan.logits_token_index.push_back(plan.num_tokens - 1);
      plan.logits_seq.push_back(static_cast<int32_t>(s));
      plan.logits_full.push_back(step.needs_full_logits ? 1 : 0);
      plan.logits_sampling.push_back(step.needs_full_logits ? nullptr : step.sampling);
    }
  }
  plan.block_tables.assign(static_cast<size_t>(plan.num_seqs) * plan.max_blocks_per_seq, -1);
  for (size_t s = 0; s < steps.size(); ++s) {
    const int blocks = (plan.context_lens[s] + block_size - 1) / block_size;
    std::copy_n(steps[s].block_table.begin(), blocks,
                plan.block_tables.begin() + static_cast<int64_t>(s) * plan.max_blocks_per_seq);
  }
  return plan;
}

}  // namespace tandem::backend
