#include "tandem/engine/sequence.h"

namespace tandem::engine {

const char* SequenceStateName(SequenceState state) {
  switch (state) {
    case SequenceState::kWaiting:
      return "waiting";
    case SequenceState::kWaitingForRemoteKv:
      return "waiting_for_remote_kv";
    case SequenceState::kRunning:
      return "running";
    case SequenceState::kPendingTransfer:
      return "pending_transfer";
    case SequenceState::kFinished:
      return "finished";
  }
  return "unknown";
}

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return "none";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kStopString:
      return "stop_string";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kAborted:
      return "abort";
    case FinishReason::kError:
      return "error";
    case FinishReason::kPrefillHandoff:
      return "prefill_handoff";
  }
  return "unknown";
}

const char* KvRoleName(KvRole role) {
  switch (role) {
    case KvRole::kLocal:
      return "local";
    case KvRole::kRemotePrefill:
      return "remote_prefill";
    case KvRole::kPrefillOnly:
      return "prefill_only";
  }
  return "unknown";
}

}  // namespace tandem::engine
