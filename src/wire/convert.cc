#include "tandem/wire/convert.h"

#include <algorithm>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tandem/core/status.h"

namespace tandem::wire {

engine::SamplingParams FromProto(const v1::WorkerSamplingParams& p) {
  engine::SamplingParams s;
  s.n = p.n() == 0 ? 1 : p.n();
  s.temperature = p.temperature();
  s.top_k = p.top_k();
  s.top_p = p.top_p() == 0.0f ? 1.0f : p.top_p();
  s.min_p = p.min_p();
  s.repetition_penalty = p.repetition_penalty() == 0.0f ? 1.0f : p.repetition_penalty();
  s.presence_penalty = p.presence_penalty();
  s.frequency_penalty = p.frequency_penalty();
  for (const auto& [token, bias] : p.logit_bias()) s.logit_bias.emplace_back(token, bias);
  if (p.has_seed()) s.seed = p.seed();
  s.max_tokens = p.max_tokens() == 0 ? 16 : p.max_tokens();
  s.min_tokens = p.min_tokens();
  s.stop_token_ids.assign(p.stop_token_ids().begin(), p.stop_token_ids().end());
  s.ignore_eos = p.ignore_eos();
  if (p.has_logprobs()) s.logprobs = p.logprobs();
  return s;
}

v1::WorkerSamplingParams ToProto(const engine::SamplingParams& s) {
  v1::WorkerSamplingParams p;
  p.set_n(s.n);
  p.set_temperature(s.temperature);
  p.set_top_k(s.top_k);
  p.set_top_p(s.top_p);
  p.set_min_p(s.min_p);
  p.set_repetition_penalty(s.repetition_penalty);
  p.set_presence_penalty(s.presence_penalty);
  p.set_frequency_penalty(s.frequency_penalty);
  for (const auto& [token, bias] : s.logit_bias) (*p.mutable_logit_bias())[token] = bias;
  if (s.seed.has_value()) p.set_seed(*s.seed);
  p.set_max_tokens(s.max_tokens);
  p.set_min_tokens(s.min_tokens);
  for (int32_t t : s.stop_token_ids) p.add_stop_token_ids(t);
  p.set_ignore_eos(s.ignore_eos);
  if (s.logprobs.has_value()) p.set_logprobs(*s.logprobs);
  return p;
}

v1::WorkerFinishReason ToProto(engine::FinishReason reason) {
  switch (reason) {
    case engine::FinishReason::kNone:
      return v1::WORKER_FINISH_NONE;
    case engine::FinishReason::kStop:
      return v1::WORKER_FINISH_STOP;
    case engine::FinishReason::kStopString:
      return v1::WORKER_FINISH_STOP_STRING;
    case engine::FinishReason::kLength:
      return v1::WORKER_FINISH_LENGTH;
    case engine::FinishReason::kAborted:
      return v1::WORKER_FINISH_ABORTED;
    case engine::FinishReason::kError:
      return v1::WORKER_FINISH_ERROR;
    case engine::FinishReason::kPrefillHandoff:
      return v1::WORKER_FINISH_PREFILL_HANDOFF;
  }
  return v1::WORKER_FINISH_NONE;
}

engine::FinishReason FromProto(v1::WorkerFinishReason reason) {
  switch (reason) {
    case v1::WORKER_FINISH_NONE:
      return engine::FinishReason::kNone;
    case v1::WORKER_FINISH_STOP:
      return engine::FinishReason::kStop;
    case v1::WORKER_FINISH_STOP_STRING:
      return engine::FinishReason::kStopString;
    case v1::WORKER_FINISH_LENGTH:
      return engine::FinishReason::kLength;
    case v1::WORKER_FINISH_ABORTED:
      return engine::FinishReason::kAborted;
    case v1::WORKER_FINISH_ERROR:
      return engine::FinishReason::kError;
    case v1::WORKER_FINISH_PREFILL_HANDOFF:
      return engine::FinishReason::kPrefillHandoff;
    case v1::WorkerFinishReason_INT_MIN_SENTINEL_DO_NOT_USE_:
    case v1::WorkerFinishReason_INT_MAX_SENTINEL_DO_NOT_USE_:
      break;
  }
  return engine::FinishReason::kNone;
}

v1::WorkerLogprobs ToProto(const engine::SampleResult& s) {
  v1::WorkerLogprobs lp;
  lp.set_logprob(s.logprob);
  for (const engine::TokenLogprob& t : s.top_logprobs) {
    v1::WorkerTokenLogprob* top = lp.add_top();
    top->set_token(t.token);
    top->set_logprob(t.logprob);
  }
  return lp;
}

engine::SampleResult FromProto(const v1::WorkerLogprobs& lp, int32_t token) {
  engine::SampleResult s;
  s.token = token;
  s.logprob = lp.logprob();
  for (const v1::WorkerTokenLogprob& t : lp.top()) s.top_logprobs.push_back(engine::TokenLogprob{t.token(), t.logprob()});
  return s;
}

v1::WorkerGenerateResponse ToProto(const engine::RequestOutput& o) {
  v1::WorkerGenerateResponse r;
  r.set_request_id(o.request_id);
  r.set_index(o.index);
  for (int32_t t : o.new_token_ids) r.add_token_ids(t);
  for (const engine::SampleResult& s : o.logprobs) *r.add_logprobs() = ToProto(s);
  r.set_finished(o.finished);
  r.set_finish_reason(ToProto(o.finish_reason));
  if (!o.status.ok()) {
    r.set_error(std::string(o.status.message()));
    r.set_error_code(static_cast<int32_t>(o.status.code()));
  }
  r.set_num_prompt_tokens(o.num_prompt_tokens);
  r.set_num_output_tokens(o.num_output_tokens);
  r.set_num_cached_tokens(o.num_cached_tokens);
  return r;
}

v1::KvCacheEvent ToProto(const kvcache::KvEvent& e) {
  v1::KvCacheEvent p;
  switch (e.type) {
    case kvcache::KvEventType::kBlockStored:
      p.set_type(v1::KvCacheEvent::STORED);
      break;
    case kvcache::KvEventType::kBlockRemoved:
      p.set_type(v1::KvCacheEvent::REMOVED);
      break;
    case kvcache::KvEventType::kAllCleared:
      p.set_type(v1::KvCacheEvent::ALL_CLEARED);
      break;
  }
  for (kvcache::BlockHash h : e.block_hashes) p.add_block_hashes(h);
  p.set_parent_hash(e.parent_hash);
  p.set_has_parent(e.has_parent);
  for (int32_t t : e.token_ids) p.add_token_ids(t);
  p.set_block_size(e.block_size);
  return p;
}

kvcache::KvEvent FromProto(const v1::KvCacheEvent& event) {
  kvcache::KvEvent out;
  switch (event.type()) {
    case v1::KvCacheEvent::STORED:
      out.type = kvcache::KvEventType::kBlockStored;
      break;
    case v1::KvCacheEvent::REMOVED:
      out.type = kvcache::KvEventType::kBlockRemoved;
      break;
    case v1::KvCacheEvent::ALL_CLEARED:
      out.type = kvcache::KvEventType::kAllCleared;
      break;
    case v1::KvCacheEvent_Type_KvCacheEvent_Type_INT_MIN_SENTINEL_DO_NOT_USE_:
    case v1::KvCacheEvent_Type_KvCacheEvent_Type_INT_MAX_SENTINEL_DO_NOT_USE_:
      break;
  }
  out.block_hashes.assign(event.block_hashes().begin(), event.block_hashes().end());
  out.parent_hash = event.parent_hash();
  out.has_parent = event.has_parent();
  out.token_ids.assign(event.token_ids().begin(), event.token_ids().end());
  out.block_size = event.block_size();
  return out;
}

absl::Status CheckLayoutCompatible(const v1::KvLayout& mine, const v1::KvLayout& theirs,
                                   const std::string& peer_name) {
  std::vector<std::string> diffs;
  auto check = [&](const char* field, const auto& a, const auto& b) {
    if (a != b) diffs.push_back(absl::StrCat(field, " ", a, " here, ", b, " there"));
  };
  check("model", mine.model(), theirs.model());
  check("dtype", mine.dtype(), theirs.dtype());
  check("num_layers", mine.num_layers(), theirs.num_layers());
  check("num_kv_heads", mine.num_kv_heads(), theirs.num_kv_heads());
  check("head_dim", mine.head_dim(), theirs.head_dim());
  check("block_size", mine.block_size(), theirs.block_size());
  check("layout_version", mine.layout_version(), theirs.layout_version());
  check("bytes_per_block", mine.bytes_per_block(), theirs.bytes_per_block());
  if (diffs.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("incompatible KV cache layout with worker ", peer_name,
                   ", refusing to exchange blocks: ", absl::StrJoin(diffs, "; ")));
}

absl::Status CheckPeerCompatible(const v1::WorkerInfo& mine, const v1::WorkerInfo& theirs,
                                 const std::string& peer_name) {
  TANDEM_RETURN_IF_ERROR(CheckLayoutCompatible(mine.layout(), theirs.layout(), peer_name));
  if (theirs.transport() != mine.transport()) {
    return absl::FailedPreconditionError(absl::StrCat("worker ", peer_name, " uses KV transport ", theirs.transport(),
                                                      ", this worker ", mine.transport()));
  }
  return absl::OkStatus();
}

transfer::KvRankHeads KvRankHeadsOf(const v1::KvLayout& layout) {
  transfer::KvRankHeads out;
  const int heads = std::max(layout.num_kv_heads(), 1);
  out.head_bytes = static_cast<size_t>(layout.bytes_per_block() / (2 * static_cast<uint64_t>(heads)));
  if (layout.ranks_size() == 0) {
    out.heads.emplace_back();
    for (int h = 0; h < layout.num_kv_heads(); ++h) out.heads.back().push_back(h);
    return out;
  }
  for (const v1::RankKvHeads& rank : layout.ranks()) out.heads.emplace_back(rank.kv_heads().begin(), rank.kv_heads().end());
  return out;
}

absl::Status CheckRemotePrefillRequest(int block_size, int num_layers, const transfer::KvRankHeads& local_heads,
                                       const v1::RemotePrefillRequest& request,
                                       const transfer::KvRankHeads& dest_heads) {
  const v1::WorkerInfo& dest = request.destination();
  const int64_t n = request.prompt_token_ids_size();
  const int64_t num_blocks = (n + block_size - 1) / block_size;
  if (n == 0 || request.dst_block_ids_size() != num_blocks) {
    return absl::InvalidArgumentError(absl::StrCat("dst_block_ids: expected ", num_blocks, " blocks for a ", n,
                                                   "-token prompt, found ", request.dst_block_ids_size()));
  }
  for (int32_t b : request.dst_block_ids()) {
    if (b < 0 || b >= dest.num_kv_blocks()) {
      return absl::InvalidArgumentError(
          absl::StrCat("dst_block_ids: block ", b, " outside the decode pool of ", dest.num_kv_blocks(), " blocks"));
    }
  }
  if (request.num_cached_tokens() < 0 || request.num_cached_tokens() > n) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_cached_tokens: expected 0..", n, ", found ", request.num_cached_tokens()));
  }
  const int64_t dest_regions = int64_t{num_layers} * static_cast<int64_t>(dest_heads.heads.size());
  if (dest.layer_regions_size() != dest_regions) {
    return absl::InvalidArgumentError(absl::StrCat("destination: expected ", dest_regions, " layer regions (",
                                                   dest_heads.heads.size(), " ranks x ", num_layers,
                                                   " layers), found ", dest.layer_regions_size()));
  }
  // Pools of different tensor-parallel widths: checked now, before any work (a layout this worker's
  // ranks cannot fill is refused), and written head slab by head slab.
  return transfer::CheckHandOff(local_heads, dest_heads);
}

}  // namespace tandem::wire
