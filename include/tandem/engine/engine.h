// The engine core: scheduler + KV block manager + model executor + sampler, driven one step at a
// time (schedule → execute → update). Not thread-safe: EngineLoop runs it on one thread and is
// what servers talk to; tests and benchmarks may call it directly.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tandem/engine/model_executor.h"
#include "tandem/engine/sampler.h"
#include "tandem/engine/sampling_params.h"
#include "tandem/engine/scheduler.h"
#include "tandem/engine/sequence.h"
#include "tandem/engine/stop_hook.h"
#include "tandem/kvcache/kv_block_manager.h"
#include "tandem/kvcache/kv_events.h"

namespace tandem::engine {

struct EngineConfig {
  SchedulerConfig scheduler;
  bool enable_prefix_caching = true;
  uint64_t hash_salt = 0;  // kvcache::HashSalt(model, adapter)
  // A failed remote prefill (CompleteRemotePrefill with an error): true prefills the sequence here
  // instead (disaggregation.on_prefill_failure: recompute); false ends the request with the error.
  bool recompute_failed_remote_prefill = false;
  // Block count and size come from the executor's KV pool.
};

struct EngineRequest {
  std::string request_id;
  std::vector<int32_t> prompt_token_ids;
  SamplingParams params;
  int32_t priority = 0;  // lower first, under SchedulingPolicy::kPriority
  KvRole kv_role = KvRole::kLocal;
  StopStringHookFactory stop_hook_factory;  // optional: stop strings through the detokenizer
};

// A chunk of one sequence's results. Every sequence ends with exactly one output with
// finished = true.
struct RequestOutput {
  std::string request_id;
  int32_t index = 0;  // sequence within the request (n > 1)
  std::vector<int32_t> new_token_ids;
  // Parallel to new_token_ids when params.logprobs is set.
  std::vector<SampleResult> logprobs;
  bool finished = false;  // this sequence is done
  // Set by EngineLoop on the last output of the whole request (every sequence finished, or the
  // request was refused).
  bool request_finished = false;
  FinishReason finish_reason = FinishReason::kNone;
  absl::Status status;  // kError: why
  int32_t num_prompt_tokens = 0;
  int32_t num_output_tokens = 0;
  int32_t num_cached_tokens = 0;
  // kPrefillOnly hand-off: the blocks holding the prompt's KV, pinned until ReleaseTransfer.
  std::vector<kvcache::BlockId> kv_blocks;
};

// A kRemotePrefill sequence whose blocks are allocated and waiting to be filled by a prefill
// worker: the KV hand-off sends tokens [num_cached_tokens, prompt) into these blocks.
struct RemoteKvRequest {
  std::string request_id;
  std::vector<int32_t> prompt_token_ids;
  std::vector<kvcache::BlockId> block_ids;  // cover the whole prompt
  int32_t num_cached_tokens = 0;            // prefix already present locally
};

class Engine {
 public:
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const EngineConfig& config,
                                                        std::unique_ptr<ModelExecutor> executor);

  // Checks a request against the engine's fixed limits (vocabulary, max_model_len, KV capacity,
  // sampling parameter ranges). Const and thread-safe.
  absl::Status Validate(const EngineRequest& request) const;

  // Queues a request (Validate first; a live request_id is AlreadyExists).
  absl::Status AddRequest(EngineRequest request);
  // Ends every sequence of the request wherever it is; each gets a final kAborted output (a
  // kPendingTransfer one only releases its blocks). Returns false for an unknown id.
  bool AbortRequest(const std::string& request_id, FinishReason reason = FinishReason::kAborted,
                    absl::Status status = absl::OkStatus());

  // One schedule → execute → update step. Returns false when nothing was scheduled or preempted
  // (only a new command, e.g. an abort or a remote-KV completion, can change that). An executor
  // failure ends that step's sequences with kError (and is returned).
  absl::StatusOr<bool> Step();

  // Decode side of disaggregation: the prefill worker filled the request's blocks and sampled
  // `first_token`; a non-OK `transfer` ends the request with kError.
  // `first_logprobs`: the prefill worker's logprobs of `first_token` (when the request asks for them).
  absl::Status CompleteRemotePrefill(const std::string& request_id, int32_t first_token,
                                     absl::Status transfer = absl::OkStatus(),
                                     std::optional<SampleResult> first_logprobs = std::nullopt);
  // Prefill side: the request's pinned blocks were transferred; free them.
  absl::Status ReleaseTransfer(const std::string& request_id);

  // Results since the last call, in order.
  std::vector<RequestOutput> TakeOutputs();
  std::vector<RemoteKvRequest> TakeRemoteKvRequests();
  std::vector<kvcache::KvEvent> TakeKvEvents() { return kv_.TakeEvents(); }
  void ResetPrefixCache() { kv_.ResetPrefixCache(); }

  bool has_work() const { return scheduler_.has_work(); }
  bool has_request(const std::string& request_id) const { return requests_.contains(request_id); }
  SchedulerStats metrics() const { return scheduler_.stats(); }
  int32_t vocab_size() const { return vocab_size_; }
  const Scheduler& scheduler() const { return scheduler_; }
  Scheduler& scheduler() { return scheduler_; }
  const kvcache::KvBlockManager& block_manager() const { return kv_; }
  ModelExecutor& executor() { return *executor_; }

 private:
  Engine(const EngineConfig& config, std::unique_ptr<ModelExecutor> executor);
  RequestOutput MakeOutput(const Sequence& seq) const;
  void Reap();
  void CollectRemoteAllocations(const SchedulerOutput& out);

  const EngineConfig config_;
  std::unique_ptr<ModelExecutor> executor_;
  const int32_t vocab_size_;
  kvcache::KvBlockManager kv_;
  Scheduler scheduler_;
  Sampler sampler_;
  // request_id -> its live sequences
  absl::flat_hash_map<std::string, std::vector<SeqId>> requests_;
  SeqId next_seq_id_ = 1;
  uint64_t next_arrival_ = 1;
  uint64_t seed_state_;
  StepPlan plan_;
  std::vector<int32_t> sampled_;
  std::vector<SampleResult> results_;
  // The description of each sequence the executor samples, kept across steps (erased when it finishes).
  absl::node_hash_map<SeqId, RowSamplingCache> sampling_caches_;
  std::vector<RequestOutput> outputs_;
  std::vector<RemoteKvRequest> remote_kv_requests_;
};

}  // namespace tandem::engine
