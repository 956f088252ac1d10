#include "tandem/engine/engine.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tandem/core/logging.h"
#include "tandem/core/status.h"

namespace tandem::engine {
namespace {

// Whether the sequence's token this step is the plain argmax of the raw logits (sampler.h, steps 1-4
// all no-ops): greedy (or top_k 1) with no logit_bias, no penalties, no logprobs, and nothing masked
// by min_tokens any more.
bool ArgmaxOnly(const Sequence& s) {
  const SamplingParams& p = *s.params;
  const bool argmax_only = (p.greedy() || p.top_k == 1) && p.logit_bias.empty() && !p.penalized() &&
                           !p.logprobs.has_value() && static_cast<int32_t>(s.output().size()) >= p.min_tokens;
  return argmax_only;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineConfig& config,
                                                       std::unique_ptr<ModelExecutor> executor) {
  if (executor == nullptr) return absl::InvalidArgumentError("Engine: expected a model executor, found null");
  const SchedulerConfig& s = config.scheduler;
  if (s.max_num_seqs < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_num_seqs: expected >= 1, found ", s.max_num_seqs));
  }
  if (s.max_num_batched_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_num_batched_tokens: expected >= 1, found ", s.max_num_batched_tokens));
  }
  if (!s.enable_chunked_prefill && s.max_num_batched_tokens < s.max_model_len) {
    return absl::InvalidArgumentError(absl::StrCat("max_num_batched_tokens: expected >= max_model_len (",
                                                   s.max_model_len, ") when chunked prefill is off, found ",
                                                   s.max_num_batched_tokens));
  }
  if (s.max_model_len < 2) {
    return absl::InvalidArgumentError(absl::StrCat("max_model_len: expected >= 2, found ", s.max_model_len));
  }
  if (executor->num_kv_blocks() < 1 || executor->block_size() < 1 || executor->vocab_size() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Engine: executor reports ", executor->num_kv_blocks(), " KV blocks of ", executor->block_size(),
        " tokens and vocab ", executor->vocab_size(), ", expected positive values"));
  }
  return std::unique_ptr<Engine>(new Engine(config, std::move(executor)));
}

Engine::Engine(const EngineConfig& config, std::unique_ptr<ModelExecutor> executor)
    : config_(config),
      executor_(std::move(executor)),
      vocab_size_(executor_->vocab_size()),
      kv_(kvcache::KvBlockManagerConfig{.num_blocks = executor_->num_kv_blocks(),
                                 .block_size = executor_->block_size(),
                                 .enable_prefix_caching = config.enable_prefix_caching,
                                 .hash_salt = config.hash_salt}),
      scheduler_(config.scheduler, &kv_),
      seed_state_(std::random_device{}() ^
                  static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count())) {}

absl::Status Engine::Validate(const EngineRequest& r) const {
  const std::string& id = r.request_id;
  if (id.empty()) return absl::InvalidArgumentError("request_id: expected a non-empty id, found \"\"");
  if (r.prompt_token_ids.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("request ", id, ": expected a non-empty prompt, found 0 tokens"));
  }
  for (size_t i = 0; i < r.prompt_token_ids.size(); ++i) {
    const int32_t t = r.prompt_token_ids[i];
    if (t < 0 || t >= vocab_size_) {
      return absl::InvalidArgumentError(absl::StrCat("request ", id, ": prompt token ", i, " is ", t,
                                                     ", expected an id in [0, ", vocab_size_, ")"));
    }
  }
  const int32_t len = static_cast<int32_t>(r.prompt_token_ids.size());
  if (len >= config_.scheduler.max_model_len) {
    return absl::InvalidArgumentError(absl::StrCat("request ", id, ": prompt has ", len,
                                                   " tokens, expected fewer than max_model_len ",
                                                   config_.scheduler.max_model_len));
  }
  TANDEM_RETURN_IF_ERROR(Annotate(r.params.Validate(vocab_size_), absl::StrCat("request ", id)));
  if (r.kv_role != KvRole::kLocal && r.params.n != 1) {
    return absl::InvalidArgumentError(absl::StrCat("request ", id, ": kv_role ", KvRoleName(r.kv_role),
                                                   " expects n = 1, found n = ", r.params.n));
  }
  const int32_t longest = std::min(config_.scheduler.max_model_len, len + r.params.max_tokens);
  if (kv_.BlocksFor(longest) > kv_.num_blocks()) {
    return absl::ResourceExhaustedError(absl::StrCat("request ", id, ": prompt plus max_tokens needs ",
                                                     kv_.BlocksFor(longest), " KV blocks, the cache has ",
                                                     kv_.num_blocks()));
  }
  return absl::OkStatus();
}

absl::Status Engine::AddRequest(EngineRequest request) {
  TANDEM_RETURN_IF_ERROR(Validate(request));
  if (requests_.contains(request.request_id)) {
    return absl::AlreadyExistsError(absl::StrCat("request ", request.request_id, " is already live"));
  }
  auto params = std::make_shared<const SamplingParams>(std::move(request.params));
  const uint64_t base_seed =
      params->seed.has_value() ? *params->seed : DeriveSeed(seed_state_, next_arrival_);
  const double now_s =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::vector<SeqId> ids;
  Sequence* primary = nullptr;
  for (int32_t i = 0; i < params->n; ++i) {
    auto seq = std::make_unique<Sequence>();
    seq->seq_id = next_seq_id_++;
    seq->request_id = request.request_id;
    seq->index = i;
    seq->params = params;
    seq->tokens = request.prompt_token_ids;
    seq->num_prompt_tokens = static_cast<int32_t>(request.prompt_token_ids.size());
    seq->priority = request.priority;
    seq->arrival_order = next_arrival_++;
    seq->arrival_time_s = now_s;
    seq->kv_role = request.kv_role;
    seq->rng_seed = i == 0 ? base_seed : DeriveSeed(base_seed, static_cast<uint64_t>(i));
    if (request.stop_hook_factory) seq->stop_hook = request.stop_hook_factory();
    if (primary != nullptr) {
      seq->prompt_source = primary->seq_id;
      primary->waiting_siblings.push_back(seq->seq_id);
    }
    Sequence* raw = seq.get();
    const absl::Status added = scheduler_.Add(std::move(seq));
    if (!added.ok()) {
      // Only the first can fail (the others are identical); nothing was queued then.
      return added;
    }
    if (primary == nullptr) primary = raw;
    ids.push_back(raw->seq_id);
  }
  TLOG_DEBUG("request {}: queued, {} prompt tokens, n={}, role {}", request.request_id,
             request.prompt_token_ids.size(), params->n, KvRoleName(request.kv_role));
  requests_.emplace(request.request_id, std::move(ids));
  return absl::OkStatus();
}

RequestOutput Engine::MakeOutput(const Sequence& seq) const {
  RequestOutput o;
  o.request_id = seq.request_id;
  o.index = seq.index;
  o.finished = seq.finished();
  o.finish_reason = seq.finish_reason;
  o.num_prompt_tokens = seq.num_prompt_tokens;
  o.num_output_tokens = seq.num_output_tokens();
  o.num_cached_tokens = seq.num_cached_tokens;
  if (seq.state == SequenceState::kPendingTransfer) o.kv_blocks = seq.blocks.blocks;
  return o;
}

void Engine::Reap() {
  for (Sequence* s : scheduler_.newly_finished()) {
    sampling_caches_.erase(s->seq_id);
    if (s->state != SequenceState::kFinished) continue;
    auto it = requests_.find(s->request_id);
    if (it == requests_.end()) continue;
    std::erase(it->second, s->seq_id);
    if (it->second.empty()) requests_.erase(it);
  }
  scheduler_.ReapFinished();
}

bool Engine::AbortRequest(const std::string& request_id, FinishReason reason, absl::Status status) {
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return false;
  const std::vector<SeqId> ids = it->second;
  for (SeqId id : ids) {
    Sequence* s = scheduler_.Find(id);
    if (s == nullptr) continue;
    const bool reported = s->finished();
    if (scheduler_.Abort(id, reason) && !reported) {
      RequestOutput o = MakeOutput(*s);
      o.status = status;
      outputs_.push_back(std::move(o));
    }
  }
  TLOG_DEBUG("request {}: aborted ({})", request_id, FinishReasonName(reason));
  Reap();
  return true;
}

void Engine::CollectRemoteAllocations(const SchedulerOutput& out) {
  for (SeqId id : out.remote_kv_allocated) {
    const Sequence* s = scheduler_.Find(id);
    if (s == nullptr) continue;
    remote_kv_requests_.push_back(RemoteKvRequest{.request_id = s->request_id,
                                                  .prompt_token_ids = {s->tokens.begin(), s->tokens.end()},
                                                  .block_ids = s->blocks.blocks,
                                                  .num_cached_tokens = s->num_computed_tokens});
  }
}

absl::StatusOr<bool> Engine::Step() {
  const SchedulerOutput& out = scheduler_.Schedule();
  CollectRemoteAllocations(out);
  if (out.empty()) {
    Reap();
    // A preemption freed blocks: the next step may admit someone, so this counts as progress.
    return out.num_preempted > 0;
  }
  plan_.seqs.resize(out.seqs.size());
  const std::span<const int32_t> eos(config_.scheduler.eos_token_ids);
  const bool device_sampling = executor_->samples_rows();
  for (size_t i = 0; i < out.seqs.size(); ++i) {
    const ScheduledSeq& e = out.seqs[i];
    ExecSequence& x = plan_.seqs[i];
    x.token_ids = std::span<const int32_t>(e.seq->tokens)
                      .subspan(static_cast<size_t>(e.start_pos), static_cast<size_t>(e.num_new_tokens));
    x.start_position = e.start_pos;
    x.block_table = e.seq->blocks.blocks;
    x.needs_logits = e.needs_logits;
    // The executor samples a row unless it cannot (the engine then samples every row from the logits)
    // or the request wants logprobs; the plain argmax needs no description.
    const bool argmax_only = ArgmaxOnly(*e.seq);
    x.needs_full_logits = !device_sampling || (!argmax_only && e.seq->params->logprobs.has_value());
    x.sampling = nullptr;
    if (e.needs_logits && !x.needs_full_logits && !argmax_only) {
      const SamplerInput in{.params = e.seq->params.get(),
                            .prompt = e.seq->prompt(),
                            .output = e.seq->output(),
                            .seed = e.seq->rng_seed,
                            .eos_token_ids = eos};
      x.sampling = &sampling_caches_[e.seq->seq_id].Update(in, vocab_size_);  // node map: stable addresses
    }
    x.request_id = e.seq->request_id;
    x.kv_role = e.seq->kv_role;
  }
  plan_.num_tokens = out.num_tokens;
  plan_.num_logit_rows = out.num_logit_rows;

  absl::StatusOr<std::span<const float>> logits = executor_->Execute(plan_);
  if (logits.ok() && logits->size() != static_cast<size_t>(out.num_logit_rows) * vocab_size_) {
    logits = absl::InternalError(absl::StrCat("executor returned ", logits->size(), " logits, expected ",
                                              out.num_logit_rows, " x ", vocab_size_));
  }
  if (logits.ok() && device_sampling && executor_->LastSampled().size() != static_cast<size_t>(out.num_logit_rows)) {
    logits = absl::InternalError(absl::StrCat("executor sampled ", executor_->LastSampled().size(),
                                              " rows, expected ", out.num_logit_rows));
  }
  if (!logits.ok()) {
    const absl::Status status = Annotate(logits.status(), absl::StrCat("engine step ", out.step));
    TLOG_ERROR("{}", std::string(status.message()));
    std::vector<SeqId> failed;
    for (const ScheduledSeq& e : out.seqs) failed.push_back(e.seq->seq_id);
    for (SeqId id : failed) {
      Sequence* s = scheduler_.Find(id);
      if (s == nullptr || !scheduler_.Abort(id, FinishReason::kError)) continue;
      RequestOutput o = MakeOutput(*s);
      o.status = status;
      outputs_.push_back(std::move(o));
    }
    Reap();
    return status;
  }

  sampled_.resize(static_cast<size_t>(out.num_logit_rows));
  results_.resize(static_cast<size_t>(out.num_logit_rows));
  const std::span<const int32_t> device_tokens = executor_->LastSampled();
  for (const ScheduledSeq& e : out.seqs) {
    if (!e.needs_logits) continue;
    const Sequence& s = *e.seq;
    if (device_sampling && !plan_.seqs[static_cast<size_t>(&e - out.seqs.data())].needs_full_logits) {
      results_[e.logit_row] = SampleResult{.token = device_tokens[static_cast<size_t>(e.logit_row)]};
      sampled_[e.logit_row] = results_[e.logit_row].token;
      continue;
    }
    const auto row =
        logits->subspan(static_cast<size_t>(e.logit_row) * vocab_size_, static_cast<size_t>(vocab_size_));
    const SamplerInput in{.params = s.params.get(),
                          .prompt = s.prompt(),
                          .output = s.output(),
                          .seed = s.rng_seed,
                          .eos_token_ids = eos};
    results_[e.logit_row] = sampler_.Sample(row, in);
    sampled_[e.logit_row] = results_[e.logit_row].token;
  }
  scheduler_.Update(sampled_);
  for (const ScheduledSeq& e : out.seqs) {
    if (!e.needs_logits) continue;
    RequestOutput o = MakeOutput(*e.seq);
    o.new_token_ids.push_back(sampled_[e.logit_row]);
    if (e.seq->params->logprobs.has_value()) o.logprobs.push_back(std::move(results_[e.logit_row]));
    outputs_.push_back(std::move(o));
  }
  Reap();
  return true;
}

absl::Status Engine::CompleteRemotePrefill(const std::string& request_id, int32_t first_token,
                                           absl::Status transfer, std::optional<SampleResult> first_logprobs) {
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return absl::NotFoundError(absl::StrCat("request ", request_id, " is not live"));
  const SeqId id = it->second.front();
  if (!transfer.ok()) {
    if (config_.recompute_failed_remote_prefill) {
      TLOG_WARN("request {}: remote prefill failed ({}); prefilling it here", request_id,
                std::string(transfer.message()));
      return scheduler_.PrefillLocally(id);
    }
    AbortRequest(request_id, FinishReason::kError, Annotate(transfer, "remote prefill"));
    return absl::OkStatus();
  }
  if (first_token < 0 || first_token >= vocab_size_) {
    return absl::InvalidArgumentError(absl::StrCat("request ", request_id, ": first token ", first_token,
                                                   ", expected an id in [0, ", vocab_size_, ")"));
  }
  TANDEM_RETURN_IF_ERROR(scheduler_.CompleteRemotePrefill(id, first_token));
  const Sequence* s = scheduler_.Find(id);
  RequestOutput o = MakeOutput(*s);
  o.new_token_ids.push_back(first_token);
  if (first_logprobs.has_value() && s->params->logprobs.has_value()) {
    first_logprobs->token = first_token;
    o.logprobs.push_back(std::move(*first_logprobs));
  }
  outputs_.push_back(std::move(o));
  Reap();
  return absl::OkStatus();
}

absl::Status Engine::ReleaseTransfer(const std::string& request_id) {
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return absl::NotFoundError(absl::StrCat("request ", request_id, " is not live"));
  TANDEM_RETURN_IF_ERROR(scheduler_.ReleaseTransfer(it->second.front()));
  Reap();
  return absl::OkStatus();
}

std::vector<RequestOutput> Engine::TakeOutputs() {
  std::vector<RequestOutput> out = std::move(outputs_);
  outputs_.clear();
  return out;
}

std::vector<RemoteKvRequest> Engine::TakeRemoteKvRequests() {
  std::vector<RemoteKvRequest> out = std::move(remote_kv_requests_);
  remote_kv_requests_.clear();
  return out;
}

}  // namespace tandem::engine
