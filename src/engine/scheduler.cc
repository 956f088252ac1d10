#include "tandem/engine/scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tandem/core/logging.h"
#include "tandem/core/status.h"

namespace tandem::engine {

bool Scheduler::WaitingOrder::operator()(const Sequence* a, const Sequence* b) const {
  if (by_priority && a->priority != b->priority) return a->priority < b->priority;
  return a->arrival_order < b->arrival_order;
}

Scheduler::Scheduler(const SchedulerConfig& config, kvcache::KvBlockManager* kv)
    : config_(config), kv_(kv), waiting_(WaitingOrder{config.policy == SchedulingPolicy::kPriority}) {
  running_.reserve(static_cast<size_t>(config_.max_num_seqs));
  out_.seqs.reserve(static_cast<size_t>(config_.max_num_seqs));
}

absl::Status Scheduler::Add(std::unique_ptr<Sequence> seq) {
  if (seq->num_prompt_tokens <= 0 || seq->num_prompt_tokens != seq->num_tokens()) {
    return absl::InvalidArgumentError(
        absl::StrCat("request ", seq->request_id, ": expected a non-empty prompt, found ", seq->num_tokens(),
                     " tokens with num_prompt_tokens ", seq->num_prompt_tokens));
  }
  if (seq->num_prompt_tokens >= config_.max_model_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("request ", seq->request_id, ": prompt has ", seq->num_prompt_tokens,
                     " tokens, expected fewer than max_model_len ", config_.max_model_len));
  }
  const int32_t max_tokens = seq->params ? seq->params->max_tokens : 1;
  const int32_t longest = std::min(config_.max_model_len, seq->num_prompt_tokens + max_tokens);
  if (kv_->BlocksFor(longest) > kv_->num_blocks()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("request ", seq->request_id, ": prompt plus max_tokens needs ", kv_->BlocksFor(longest),
                     " KV blocks, the cache has ", kv_->num_blocks()));
  }
  if (seqs_.contains(seq->seq_id)) {
    return absl::AlreadyExistsError(absl::StrCat("sequence id ", seq->seq_id, " is already live"));
  }
  seq->state = SequenceState::kWaiting;
  Sequence* raw = seq.get();
  seqs_.emplace(raw->seq_id, std::move(seq));
  waiting_.insert(raw);
  return absl::OkStatus();
}

void Scheduler::Push(SchedulerOutput& out, Sequence* seq, int32_t num_new, int32_t& budget) {
  ScheduledSeq entry;
  entry.seq = seq;
  entry.start_pos = seq->num_computed_tokens;
  entry.num_new_tokens = num_new;
  entry.needs_logits = seq->num_computed_tokens + num_new == seq->num_tokens();
  out.seqs.push_back(entry);
  out.num_tokens += num_new;
  budget -= num_new;
  seq->last_scheduled_step = out.step;
}

Sequence* Scheduler::PickVictim() const {
  if (config_.policy == SchedulingPolicy::kFcfs) return running_.back();
  Sequence* victim = running_.front();
  for (Sequence* s : running_) {
    if (s->priority > victim->priority ||
        (s->priority == victim->priority && s->arrival_order > victim->arrival_order)) {
      victim = s;
    }
  }
  return victim;
}

void Scheduler::RemoveFromRunning(Sequence* seq) {
  auto it = std::find(running_.begin(), running_.end(), seq);
  if (it != running_.end()) running_.erase(it);
}

void Scheduler::Preempt(Sequence* victim, SchedulerOutput& out, int32_t& budget) {
  if (victim->last_scheduled_step == out.step) {
    auto it = std::find_if(out.seqs.begin(), out.seqs.end(),
                           [&](const ScheduledSeq& e) { return e.seq == victim; });
    if (it != out.seqs.end()) {
      budget += it->num_new_tokens;
      out.num_tokens -= it->num_new_tokens;
      out.seqs.erase(it);
    }
    victim->last_scheduled_step = 0;
  }
  RemoveFromRunning(victim);
  kv_->Free(victim->blocks);
  victim->num_computed_tokens = 0;
  victim->state = SequenceState::kWaiting;
  ++victim->num_preemptions;
  ++num_preemptions_;
  ++out.num_preempted;
  waiting_.insert(victim);
  TLOG_DEBUG("request {} seq {}: preempted (recompute), {} tokens", victim->request_id, victim->index,
             victim->num_tokens());
}

bool Scheduler::ScheduleRunning(SchedulerOutput& out, int32_t& budget) {
  bool preempted = false;
  size_t i = 0;
  while (i < running_.size() && budget > 0) {
    Sequence* s = running_[i];
    int32_t num_new = s->num_tokens() - s->num_computed_tokens;
    if (config_.long_prefill_token_threshold > 0)
      num_new = std::min(num_new, config_.long_prefill_token_threshold);
    num_new = std::min(num_new, budget);
    if (num_new <= 0) {
      ++i;
      continue;
    }
    bool scheduled = false;
    while (true) {
      if (kv_->Allocate(s->blocks, s->num_computed_tokens + num_new)) {
        scheduled = true;
        break;
      }
      Sequence* victim = PickVictim();
      const size_t victim_index =
          static_cast<size_t>(std::find(running_.begin(), running_.end(), victim) - running_.begin());
      Preempt(victim, out, budget);
      preempted = true;
      if (victim == s) break;
      if (victim_index < i) --i;
    }
    if (scheduled) {
      Push(out, s, num_new, budget);
      ++i;
    }
  }
  return preempted;
}

void Scheduler::ScheduleWaiting(SchedulerOutput& out, int32_t& budget) {
  auto it = waiting_.begin();
  while (it != waiting_.end() && budget > 0) {
    if (static_cast<int32_t>(running_.size()) + num_waiting_remote_ >= config_.max_num_seqs) break;
    Sequence* s = *it;
    if (s->prompt_source != 0) {  // waits for its sibling's prompt blocks
      ++it;
      continue;
    }
    const bool fresh = s->blocks.blocks.empty();
    kvcache::PrefixMatch match;
    if (fresh) match = kv_->FindCachedPrefix(s->tokens, s->num_tokens() - 1);
    const int32_t computed = fresh ? match.num_tokens : s->num_computed_tokens;
    const bool remote = s->kv_role == KvRole::kRemotePrefill;
    int32_t num_new = 0;
    if (remote) {
      if (!kv_->Allocate(s->blocks, s->num_prompt_tokens, fresh ? &match : nullptr)) break;
    } else {
      num_new = s->num_tokens() - computed;
      if (config_.long_prefill_token_threshold > 0)
        num_new = std::min(num_new, config_.long_prefill_token_threshold);
      if (!config_.enable_chunked_prefill && num_new > budget) break;
      num_new = std::min(num_new, budget);
      if (!kv_->Allocate(s->blocks, computed + num_new, fresh ? &match : nullptr)) break;
    }
    s->num_computed_tokens = computed;
    if (!s->prefix_counted) {
      s->prefix_counted = true;
      s->num_cached_tokens = std::min(computed, s->num_prompt_tokens);
      prefix_query_tokens_ += s->num_prompt_tokens;
      prefix_hit_tokens_ += s->num_cached_tokens;
    }
    it = waiting_.erase(it);
    if (remote) {
      s->state = SequenceState::kWaitingForRemoteKv;
      ++num_waiting_remote_;
      out.remote_kv_allocated.push_back(s->seq_id);
      continue;
    }
    s->state = SequenceState::kRunning;
    running_.push_back(s);
    Push(out, s, num_new, budget);
  }
}

const SchedulerOutput& Scheduler::Schedule() {
  SchedulerOutput& out = out_;
  out.step = ++step_;
  out.seqs.clear();
  out.num_tokens = 0;
  out.num_logit_rows = 0;
  out.num_preempted = 0;
  out.remote_kv_allocated.clear();
  int32_t budget = config_.max_num_batched_tokens;
  const bool preempted = ScheduleRunning(out, budget);
  if (!preempted) ScheduleWaiting(out, budget);
  for (ScheduledSeq& e : out.seqs) e.logit_row = e.needs_logits ? out.num_logit_rows++ : -1;
  total_scheduled_tokens_ += out.num_tokens;
  return out;
}

void Scheduler::AppendToken(Sequence* seq, int32_t token) {
  seq->tokens.push_back(token);
  ++total_generated_tokens_;
}

FinishReason Scheduler::CheckStop(Sequence* seq, int32_t token) const {
  const int32_t n_out = seq->num_output_tokens();
  const SamplingParams* p = seq->params.get();
  const bool may_stop = p == nullptr || n_out >= p->min_tokens;
  if (may_stop) {
    if (p == nullptr || !p->ignore_eos) {
      for (int32_t eos : config_.eos_token_ids) {
        if (token == eos) return FinishReason::kStop;
      }
    }
    if (p != nullptr) {
      for (int32_t stop : p->stop_token_ids) {
        if (token == stop) return FinishReason::kStop;
      }
    }
  }
  // The hook sees every token (a detokenizer needs them all), but can stop only after min_tokens.
  if (seq->stop_hook != nullptr && seq->stop_hook->OnToken(token) && may_stop)
    return FinishReason::kStopString;
  if (p != nullptr && n_out >= p->max_tokens) return FinishReason::kLength;
  if (seq->num_tokens() >= config_.max_model_len) return FinishReason::kLength;
  return FinishReason::kNone;
}

void Scheduler::Finish(Sequence* seq, FinishReason reason) {
  kv_->Free(seq->blocks);
  seq->state = SequenceState::kFinished;
  seq->finish_reason = reason;
  newly_finished_.push_back(seq);
  if (!seq->waiting_siblings.empty()) ReleaseWaitingSiblings(seq);
}

void Scheduler::ForkWaitingSiblings(Sequence* primary) {
  const int32_t share =
      std::min((primary->num_prompt_tokens - 1) / kv_->block_size(), primary->blocks.num_blocks());
  for (SeqId id : primary->waiting_siblings) {
    Sequence* sib = Find(id);
    if (sib == nullptr || sib->state != SequenceState::kWaiting || sib->prompt_source != primary->seq_id)
      continue;
    sib->prompt_source = 0;
    if (share > 0 && sib->blocks.blocks.empty()) {
      kv_->Fork(primary->blocks, share, sib->blocks);
      sib->num_computed_tokens = share * kv_->block_size();
    }
  }
  primary->waiting_siblings.clear();
}

void Scheduler::ReleaseWaitingSiblings(Sequence* primary) {
  for (SeqId id : primary->waiting_siblings) {
    Sequence* sib = Find(id);
    if (sib != nullptr && sib->prompt_source == primary->seq_id) sib->prompt_source = 0;
  }
  primary->waiting_siblings.clear();
}

void Scheduler::Update(std::span<const int32_t> sampled_tokens) {
  bool any_left = false;
  for (const ScheduledSeq& e : out_.seqs) {
    Sequence* s = e.seq;
    s->num_computed_tokens += e.num_new_tokens;
    kv_->CacheFullBlocks(s->blocks, s->tokens, s->num_computed_tokens);
    if (!s->waiting_siblings.empty() && s->num_computed_tokens >= s->num_prompt_tokens)
      ForkWaitingSiblings(s);
    if (!e.needs_logits) continue;
    const int32_t token = sampled_tokens[static_cast<size_t>(e.logit_row)];
    AppendToken(s, token);
    if (s->kv_role == KvRole::kPrefillOnly) {
      // Finished for the client; the blocks stay pinned until ReleaseTransfer (or Abort).
      s->state = SequenceState::kPendingTransfer;
      s->finish_reason = FinishReason::kPrefillHandoff;
      ++num_pending_transfer_;
      any_left = true;
      continue;
    }
    const FinishReason reason = CheckStop(s, token);
    if (reason != FinishReason::kNone) {
      Finish(s, reason);
      any_left = true;
    }
  }
  if (any_left) {
    running_.erase(std::remove_if(running_.begin(), running_.end(),
                                  [](const Sequence* s) { return s->state != SequenceState::kRunning; }),
                   running_.end());
  }
}

bool Scheduler::Abort(SeqId id, FinishReason reason) {
  Sequence* s = Find(id);
  if (s == nullptr) return false;
  switch (s->state) {
    case SequenceState::kWaiting:
      waiting_.erase(s);
      break;
    case SequenceState::kWaitingForRemoteKv:
      --num_waiting_remote_;
      break;
    case SequenceState::kRunning:
      RemoveFromRunning(s);
      break;
    case SequenceState::kPendingTransfer:
      --num_pending_transfer_;
      kv_->Free(s->blocks);
      s->state = SequenceState::kFinished;  // already reported finished; keep its reason
      newly_finished_.push_back(s);
      return true;
    case SequenceState::kFinished:
      return false;
  }
  Finish(s, reason);
  return true;
}

absl::StatusOr<Sequence*> Scheduler::FindInState(SeqId id, SequenceState state) {
  Sequence* s = Find(id);
  if (s == nullptr) return absl::NotFoundError(absl::StrCat("sequence ", id, " is not live"));
  if (s->state != state) {
    return absl::FailedPreconditionError(absl::StrCat("request ", s->request_id, ": expected state ",
                                                      SequenceStateName(state), ", found ",
                                                      SequenceStateName(s->state)));
  }
  return s;
}

absl::Status Scheduler::CompleteRemotePrefill(SeqId id, int32_t first_token) {
  TANDEM_ASSIGN_OR_RETURN(Sequence* s, FindInState(id, SequenceState::kWaitingForRemoteKv));
  --num_waiting_remote_;
  s->num_computed_tokens = s->num_prompt_tokens;
  kv_->CacheFullBlocks(s->blocks, s->tokens, s->num_computed_tokens);
  s->kv_role = KvRole::kLocal;  // from here on it is an ordinary sequence (preemption recomputes)
  AppendToken(s, first_token);
  const FinishReason reason = CheckStop(s, first_token);
  if (reason != FinishReason::kNone) {
    Finish(s, reason);
  } else {
    s->state = SequenceState::kRunning;
    running_.push_back(s);
  }
  return absl::OkStatus();
}

absl::Status Scheduler::PrefillLocally(SeqId id) {
  TANDEM_ASSIGN_OR_RETURN(Sequence* s, FindInState(id, SequenceState::kWaitingForRemoteKv));
  --num_waiting_remote_;
  kv_->Free(s->blocks);
  s->num_computed_tokens = 0;
  s->kv_role = KvRole::kLocal;
  s->state = SequenceState::kWaiting;
  waiting_.insert(s);
  return absl::OkStatus();
}

absl::Status Scheduler::ReleaseTransfer(SeqId id) {
  TANDEM_ASSIGN_OR_RETURN(Sequence* s, FindInState(id, SequenceState::kPendingTransfer));
  --num_pending_transfer_;
  kv_->Free(s->blocks);
  s->state = SequenceState::kFinished;
  newly_finished_.push_back(s);
  return absl::OkStatus();
}

void Scheduler::ReapFinished() {
  for (Sequence* s : newly_finished_) {
    if (s->state == SequenceState::kFinished) seqs_.erase(s->seq_id);
  }
  newly_finished_.clear();
}

Sequence* Scheduler::Find(SeqId id) {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? nullptr : it->second.get();
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats s;
  s.num_running = static_cast<int32_t>(running_.size());
  s.num_waiting = static_cast<int32_t>(waiting_.size());
  s.num_waiting_for_remote_kv = num_waiting_remote_;
  s.num_pending_transfer = num_pending_transfer_;
  s.kv_blocks_used = kv_->num_used_blocks();
  s.kv_blocks_total = kv_->num_blocks();
  s.prefix_query_tokens = prefix_query_tokens_;
  s.prefix_hit_tokens = prefix_hit_tokens_;
  s.num_preemptions = num_preemptions_;
  s.last_step_tokens = out_.num_tokens;
  s.last_step_seqs = static_cast<int32_t>(out_.seqs.size());
  s.num_steps = static_cast<int64_t>(step_);
  s.total_scheduled_tokens = total_scheduled_tokens_;
  s.total_generated_tokens = total_generated_tokens_;
  return s;
}

std::vector<const Sequence*> Scheduler::LiveSequences() const {
  std::vector<const Sequence*> out;
  out.reserve(seqs_.size());
  for (const auto& [id, s] : seqs_) out.push_back(s.get());
  return out;
}

absl::Status Scheduler::CheckConsistency() const {
  if (!kv_->CheckInvariants())
    return absl::InternalError("block pool free list or cache index is inconsistent");
  std::vector<int32_t> refs(static_cast<size_t>(kv_->num_blocks()), 0);
  int32_t running = 0, waiting = 0, remote = 0, pending = 0;
  for (const auto& [id, s] : seqs_) {
    for (kvcache::BlockId b : s->blocks.blocks) {
      if (b < 0 || b >= kv_->num_blocks())
        return absl::InternalError(absl::StrCat("seq ", id, " holds block ", b));
      ++refs[static_cast<size_t>(b)];
    }
    if (s->blocks.hashes.size() > s->blocks.blocks.size()) {
      return absl::InternalError(absl::StrCat("seq ", id, " has more hashes than blocks"));
    }
    switch (s->state) {
      case SequenceState::kWaiting:
        ++waiting;
        if (!waiting_.contains(s.get()))
          return absl::InternalError(absl::StrCat("seq ", id, " waiting but not queued"));
        break;
      case SequenceState::kWaitingForRemoteKv:
        ++remote;
        if (s->blocks.num_blocks() < kv_->BlocksFor(s->num_prompt_tokens)) {
          return absl::InternalError(
              absl::StrCat("seq ", id, " waits for remote KV without the prompt's blocks"));
        }
        break;
      case SequenceState::kRunning:
        ++running;
        if (s->blocks.num_blocks() < kv_->BlocksFor(s->num_computed_tokens)) {
          return absl::InternalError(absl::StrCat("seq ", id, " has computed tokens outside its blocks"));
        }
        break;
      case SequenceState::kPendingTransfer:
        ++pending;
        break;
      case SequenceState::kFinished:
        if (!s->blocks.blocks.empty())
          return absl::InternalError(absl::StrCat("finished seq ", id, " holds blocks"));
        break;
    }
  }
  if (running != static_cast<int32_t>(running_.size()) || waiting != static_cast<int32_t>(waiting_.size()) ||
      remote != num_waiting_remote_ || pending != num_pending_transfer_) {
    return absl::InternalError(absl::StrCat("state counts differ from queues: running ", running, "/",
                                            running_.size(), " waiting ", waiting, "/", waiting_.size(),
                                            " remote ", remote, "/", num_waiting_remote_, " pending ",
                                            pending, "/", num_pending_transfer_));
  }
  int32_t used = 0;
  for (int32_t b = 0; b < kv_->num_blocks(); ++b) {
    if (refs[static_cast<size_t>(b)] != kv_->ref_count(b)) {
      return absl::InternalError(absl::StrCat("block ", b, ": ", refs[static_cast<size_t>(b)],
                                              " table references, pool reference count ", kv_->ref_count(b)));
    }
    used += refs[static_cast<size_t>(b)] > 0;
  }
  if (used != kv_->num_used_blocks()) {
    return absl::InternalError(
        absl::StrCat(used, " blocks referenced, pool says ", kv_->num_used_blocks(), " used"));
  }
  return absl::OkStatus();
}

}  // namespace tandem::engine
