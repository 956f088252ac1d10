// Continuous-batching scheduler. Each step it decides "sequence S computes N tokens starting at
// position P" for a set of sequences, so prefill chunks and decode tokens are one operation under
// one token budget (max_num_batched_tokens) and one sequence limit (max_num_seqs).
//
// Order of a step (vLLM v1's shape): running sequences first, in admission order, each taking
// what it still has to compute (1 for decode, the rest of a prompt for a chunked prefill) up to
// the budget; when the KV pool can't supply a block, the lowest-priority running sequence (FCFS:
// the most recently admitted) is preempted by recompute: its blocks are freed and it goes back
// to waiting with its output kept, to be recomputed later (the prefix cache often makes that
// cheap). Then, if nothing was preempted, waiting sequences are admitted in order (FCFS, or
// (priority, arrival) under the priority policy), reusing prefix-cache hits, until the budget,
// max_num_seqs or the pool runs out.
//
// Single-threaded: only the engine's step loop calls it.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tandem/engine/sequence.h"
#include "tandem/kvcache/kv_block_manager.h"

namespace tandem::engine {

enum class SchedulingPolicy { kFcfs, kPriority };

struct SchedulerConfig {
  int32_t max_num_seqs = 256;
  int32_t max_num_batched_tokens = 2048;
  bool enable_chunked_prefill = true;
  // A prefill takes at most this many tokens per step (0: no cap beyond the budget), so one long
  // prompt can't starve the others' prefills.
  int32_t long_prefill_token_threshold = 0;
  SchedulingPolicy policy = SchedulingPolicy::kFcfs;
  int32_t max_model_len = 8192;
  std::vector<int32_t> eos_token_ids;  // from the model's generation config
};

// One sequence's work in a step: compute tokens [start_pos, start_pos + num_new_tokens).
struct ScheduledSeq {
  Sequence* seq = nullptr;
  int32_t start_pos = 0;
  int32_t num_new_tokens = 0;
  bool needs_logits = false;  // the chunk ends at the sequence's last token: sample one
  int32_t logit_row = -1;     // its row in the step's logits when needs_logits
};

struct SchedulerOutput {
  uint64_t step = 0;
  std::vector<ScheduledSeq> seqs;
  int32_t num_tokens = 0;
  int32_t num_logit_rows = 0;
  int32_t num_preempted = 0;
  // kRemotePrefill sequences that got their blocks this step and now wait for a prefill worker
  // to fill them (the KV hand-off reads their block tables).
  std::vector<SeqId> remote_kv_allocated;

  bool empty() const { return seqs.empty(); }
};

struct SchedulerStats {
  int32_t num_running = 0;
  int32_t num_waiting = 0;
  int32_t num_waiting_for_remote_kv = 0;
  int32_t num_pending_transfer = 0;
  int32_t kv_blocks_used = 0;
  int32_t kv_blocks_total = 0;
  int64_t prefix_query_tokens = 0;  // prompt tokens looked up in the prefix cache
  int64_t prefix_hit_tokens = 0;    // of which served from it
  int64_t num_preemptions = 0;
  int32_t last_step_tokens = 0;
  int32_t last_step_seqs = 0;
  int64_t num_steps = 0;
  int64_t total_scheduled_tokens = 0;
  int64_t total_generated_tokens = 0;

  double prefix_cache_hit_rate() const {
    return prefix_query_tokens == 0 ? 0.0 : static_cast<double>(prefix_hit_tokens) / prefix_query_tokens;
  }
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& config, kvcache::KvBlockManager* kv);
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  const SchedulerConfig& config() const { return config_; }

  // Queues a new sequence (state kWaiting). Rejects an empty prompt, one at or over
  // max_model_len, one that could never fit the KV pool, and a duplicate seq_id.
  absl::Status Add(std::unique_ptr<Sequence> seq);

  // Plans the next step. The output stays valid until the next Schedule().
  const SchedulerOutput& Schedule();

  // Applies the executed step: advances computed tokens, registers full blocks in the prefix
  // cache, appends sampled_tokens[row] to each sequence whose chunk needed logits, checks its
  // stop conditions, and ends those that stopped.
  void Update(std::span<const int32_t> sampled_tokens);

  // Ends a sequence in any state (waiting, running, waiting for remote KV, pending transfer) and
  // frees its blocks. Returns false when the id is unknown or already finished.
  bool Abort(SeqId id, FinishReason reason = FinishReason::kAborted);

  // Decode side: the prefill worker filled a kWaitingForRemoteKv sequence's blocks and sampled
  // `first_token`; the sequence joins the running batch.
  absl::Status CompleteRemotePrefill(SeqId id, int32_t first_token);
  // A sequence waiting for remote KV whose remote prefill failed goes back to the waiting queue as a
  // local sequence (its blocks freed, as a preemption by recompute does: what the failed transfer
  // may have half-written is never cached), to be prefilled here.
  absl::Status PrefillLocally(SeqId id);
  // Prefill side: the hand-off of a kPendingTransfer sequence's blocks is done; free them.
  absl::Status ReleaseTransfer(SeqId id);

  // Sequences that finished (any reason) since the last ReapFinished(), in order. Pointers stay
  // valid until then; kPendingTransfer ones live on until ReleaseTransfer or Abort.
  const std::vector<Sequence*>& newly_finished() const { return newly_finished_; }
  void ReapFinished();

  Sequence* Find(SeqId id);
  // The live sequence `id` in `state`: NotFound, or FailedPrecondition naming the state it is in.
  absl::StatusOr<Sequence*> FindInState(SeqId id, SequenceState state);
  bool has_work() const { return !running_.empty() || !waiting_.empty(); }
  int32_t num_live() const { return static_cast<int32_t>(seqs_.size()); }
  SchedulerStats stats() const;

  // For tests: every live sequence, and a full consistency check of block ownership (each
  // block's reference count equals the number of live tables holding it).
  std::vector<const Sequence*> LiveSequences() const;
  absl::Status CheckConsistency() const;

 private:
  struct WaitingOrder {
    bool by_priority;
    bool operator()(const Sequence* a, const Sequence* b) const;
  };

  bool ScheduleRunning(SchedulerOutput& out, int32_t& budget);
  void ScheduleWaiting(SchedulerOutput& out, int32_t& budget);
  Sequence* PickVictim() const;
  void Preempt(Sequence* victim, SchedulerOutput& out, int32_t& budget);
  void RemoveFromRunning(Sequence* seq);
  void AppendToken(Sequence* seq, int32_t token);
  FinishReason CheckStop(Sequence* seq, int32_t token) const;
  void Finish(Sequence* seq, FinishReason reason);
  void ForkWaitingSiblings(Sequence* primary);
  void ReleaseWaitingSiblings(Sequence* primary);
  void Push(SchedulerOutput& out, Sequence* seq, int32_t num_new, int32_t& budget);

  const SchedulerConfig config_;
  kvcache::KvBlockManager* const kv_;
  absl::flat_hash_map<SeqId, std::unique_ptr<Sequence>> seqs_;
  std::set<Sequence*, WaitingOrder> waiting_;
  std::vector<Sequence*> running_;  // admission order
  int32_t num_waiting_remote_ = 0;
  int32_t num_pending_transfer_ = 0;
  std::vector<Sequence*> newly_finished_;
  SchedulerOutput out_;
  uint64_t step_ = 0;
  int64_t prefix_query_tokens_ = 0;
  int64_t prefix_hit_tokens_ = 0;
  int64_t num_preemptions_ = 0;
  int64_t total_scheduled_tokens_ = 0;
  int64_t total_generated_tokens_ = 0;
};

}  // namespace tandem::engine
