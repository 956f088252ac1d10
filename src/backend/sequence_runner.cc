#include "tandem/backend/sequence_runner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "tandem/core/status.h"

namespace tandem::backend {

SequenceRunner::SequenceRunner(ModelRunner* runner, KvPool* cache) : runner_(runner), cache_(cache) {}

absl::StatusOr<int> SequenceRunner::AddSequence(std::vector<int32_t> prompt, int max_len) {
  if (prompt.empty()) return absl::InvalidArgumentError("sequence runner: the prompt is empty");
  if (static_cast<int>(prompt.size()) > max_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence runner: prompt of ", prompt.size(), " tokens exceeds max_len ", max_len));
  }
  const KvCacheSpec& spec = cache_->spec();
  const int blocks = (max_len + spec.block_size - 1) / spec.block_size;
  if (next_block_ + blocks > spec.num_blocks) {
    return absl::ResourceExhaustedError(absl::StrCat("sequence runner: need ", blocks, " more KV blocks, ",
                                                     spec.num_blocks - next_block_, " of ", spec.num_blocks,
                                                     " are free"));
  }
  Seq seq;
  seq.tokens = std::move(prompt);
  seq.max_len = max_len;
  for (int b = 0; b < blocks; ++b) seq.block_table.push_back(next_block_++);
  seqs_.push_back(std::move(seq));
  return static_cast<int>(seqs_.size()) - 1;
}

absl::Status SequenceRunner::Append(int seq, int32_t token) {
  if (seq < 0 || seq >= static_cast<int>(seqs_.size())) {
    return absl::InvalidArgumentError(absl::StrCat("sequence runner: no sequence ", seq));
  }
  Seq& s = seqs_[static_cast<size_t>(seq)];
  if (static_cast<int>(s.tokens.size()) >= s.max_len) {
    return absl::OutOfRangeError(absl::StrCat("sequence runner: sequence ", seq, " is at its max_len ", s.max_len));
  }
  s.tokens.push_back(token);
  return absl::OkStatus();
}

int SequenceRunner::pending(int seq) const {
  const Seq& s = seqs_[static_cast<size_t>(seq)];
  return static_cast<int>(s.tokens.size()) - s.cached;
}

absl::StatusOr<std::vector<std::pair<int, std::vector<float>>>> SequenceRunner::Step(
    const std::vector<std::pair<int, int>>& work) {
  std::vector<SequenceStep> steps;
  std::vector<int> counts;
  for (const auto& [seq, requested] : work) {
    if (seq < 0 || seq >= static_cast<int>(seqs_.size())) {
      return absl::InvalidArgumentError(absl::StrCat("sequence runner: no sequence ", seq));
    }
    const Seq& s = seqs_[static_cast<size_t>(seq)];
    const int available = pending(seq);
    if (available == 0) {
      return absl::FailedPreconditionError(absl::StrCat("sequence runner: sequence ", seq, " has no pending tokens"));
    }
    const int count = requested <= 0 ? available : std::min(requested, available);
    SequenceStep step;
    step.token_ids.assign(s.tokens.begin() + s.cached, s.tokens.begin() + s.cached + count);
    step.start_position = s.cached;
    step.block_table = s.block_table;
    step.needs_logits = count == available;
    steps.push_back(std::move(step));
    counts.push_back(count);
  }
  TANDEM_ASSIGN_OR_RETURN(const BatchPlan plan, runner_->Plan(steps, *cache_));
  TANDEM_ASSIGN_OR_RETURN(const std::vector<float> logits, runner_->Forward(plan, *cache_));
  const int vocab = runner_->config().vocab_size;
  std::vector<std::pair<int, std::vector<float>>> out;
  for (size_t i = 0; i < plan.logits_seq.size(); ++i) {
    const int seq = work[static_cast<size_t>(plan.logits_seq[i])].first;
    const float* row = logits.data() + static_cast<int64_t>(i) * vocab;
    out.emplace_back(seq, std::vector<float>(row, row + vocab));
  }
  for (size_t i = 0; i < work.size(); ++i) seqs_[static_cast<size_t>(work[i].first)].cached += counts[i];
  return out;
}

int32_t Argmax(const float* logits, int vocab) {
  return static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);
}

}  // namespace tandem::backend
