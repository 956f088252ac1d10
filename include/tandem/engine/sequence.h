// One sequence's lifecycle in the engine. A request with n > 1 becomes n sequences that share
// the prompt's KV blocks; everything the scheduler tracks is per sequence.
//
//   kWaiting ──schedule──▶ kRunning (prefill chunks, then decode) ──▶ finished
//      ▲  │                   │
//      │  │ (kv_role kRemotePrefill)  preemption by recompute: blocks freed, num_computed = 0
//      │  ▼                   ▼
//      │ kWaitingForRemoteKv  kWaiting (again, keeping its output tokens)
//      │  (blocks allocated and held while a prefill worker fills them; the first token arrives
//      │   with the completion notice, then kRunning)
//      │
//   kPendingTransfer: a kPrefillOnly sequence after its first sampled token; finished for the
//   client, its blocks stay pinned until the KV hand-off reports the transfer done.
//
// Aborts end a sequence from any state and free its blocks.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tandem/engine/sampling_params.h"
#include "tandem/engine/stop_hook.h"
#include "tandem/kvcache/kv_block_manager.h"

namespace tandem::engine {

using SeqId = uint64_t;

enum class SequenceState {
  kWaiting,
  kWaitingForRemoteKv,
  kRunning,
  kPendingTransfer,
  kFinished,
};

enum class FinishReason {
  kNone,
  kStop,            // EOS or a stop token id
  kStopString,      // the StopStringHook matched
  kLength,          // max_tokens or max_model_len
  kAborted,         // client cancel or shutdown
  kError,           // execution or transfer failure (the output carries the status)
  kPrefillHandoff,  // kPrefillOnly: first token sampled, KV handed to a decode worker
};

// Where a sequence's prompt KV comes from and where it goes (disaggregation, issue 7).
enum class KvRole {
  kLocal,          // prefill and decode here
  kRemotePrefill,  // decode worker: allocate the prompt's blocks, a prefill worker fills them
  kPrefillOnly,    // prefill worker: compute the prompt, sample one token, pin blocks for transfer
};

const char* SequenceStateName(SequenceState state);
const char* FinishReasonName(FinishReason reason);
const char* KvRoleName(KvRole role);

struct Sequence {
  SeqId seq_id = 0;
  std::string request_id;  // the client-visible id, in every log line
  int32_t index = 0;       // 0..n-1 within its request
  std::shared_ptr<const SamplingParams> params;

  std::vector<int32_t> tokens;  // prompt, then output
  int32_t num_prompt_tokens = 0;
  int32_t num_computed_tokens = 0;  // tokens whose KV is in `blocks`
  int32_t num_cached_tokens = 0;    // prompt tokens served by the prefix cache or a sibling

  int32_t priority = 0;        // lower runs first under the priority policy
  uint64_t arrival_order = 0;  // FCFS order (unique, increasing)
  double arrival_time_s = 0;   // wall clock, for metrics

  SequenceState state = SequenceState::kWaiting;
  FinishReason finish_reason = FinishReason::kNone;
  KvRole kv_role = KvRole::kLocal;
  kvcache::BlockTable blocks;

  uint64_t rng_seed = 0;  // counter-based: token k uses (rng_seed, k), so batching can't matter
  int32_t num_preemptions = 0;
  bool prefix_counted = false;  // its prompt was counted in the prefix-cache hit rate
  uint64_t last_scheduled_step = 0;

  // n > 1: sequences 1..n-1 wait for sequence 0's prefill and then share its full prompt blocks.
  SeqId prompt_source = 0;              // nonzero while waiting for that sibling
  std::vector<SeqId> waiting_siblings;  // on sequence 0

  std::unique_ptr<StopStringHook> stop_hook;

  int32_t num_tokens() const { return static_cast<int32_t>(tokens.size()); }
  int32_t num_output_tokens() const { return num_tokens() - num_prompt_tokens; }
  std::span<const int32_t> prompt() const { return {tokens.data(), static_cast<size_t>(num_prompt_tokens)}; }
  std::span<const int32_t> output() const {
    return {tokens.data() + num_prompt_tokens, static_cast<size_t>(num_output_tokens())};
  }
  bool finished() const {
    return state == SequenceState::kFinished || state == SequenceState::kPendingTransfer;
  }
};

}  // namespace tandem::engine
