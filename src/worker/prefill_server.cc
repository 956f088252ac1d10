#include "prefill_server.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "remote_prefiller.h"
#include "tandem/core/logging.h"
#include "tandem/core/status.h"
#include "tandem/wire/convert.h"

namespace tandem::worker {
namespace {

using Clock = std::chrono::steady_clock;
// How often a request's handler looks for its caller's cancellation between engine outputs (gRPC's
// synchronous API tells of it only when asked).
constexpr auto kCancelCheck = std::chrono::milliseconds(20);

}  // namespace

PrefillServer::ImportedPool::~ImportedPool() { Disconnect(); }

void PrefillServer::ImportedPool::Disconnect() {
  if (!disconnected.exchange(true)) (void)transport.Disconnect(peer);
}

PrefillServer::PrefillServer(const WorkerOptions& options, const v1::WorkerInfo& info, LocalKvRegions local,
                             transfer::KvTransport& transport, engine::EngineLoop& loop, LayerwiseKvSender* sender,
                             SharedCounters& counters, const std::atomic<bool>& stopping)
    : options_(options),
      info_(info),
      local_(std::move(local)),
      transport_(transport),
      loop_(loop),
      sender_(sender),
      counters_(counters),
      stopping_(stopping) {}

absl::Status PrefillServer::Serve(grpc::ServerContext* context, const v1::RemotePrefillRequest& request,
                                  v1::RemotePrefillResponse& response) {
  if (stopping_) return absl::UnavailableError("prefill worker is shutting down");
  if (options_.role == WorkerRole::kDecode) {
    return absl::FailedPreconditionError("this worker has role decode; RemotePrefill needs role prefill or both");
  }
  const v1::WorkerInfo& dest = request.destination();
  TANDEM_RETURN_IF_ERROR(wire::CheckPeerCompatible(info_, dest, dest.instance_id()));
  const transfer::KvRankHeads dest_heads = wire::KvRankHeadsOf(dest.layout());
  TANDEM_RETURN_IF_ERROR(wire::CheckRemotePrefillRequest(local_.spec.block_size, local_.spec.num_layers,
                                                         local_.heads, request, dest_heads));
  TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<ImportedPool> pool, ImportPool(dest));

  engine::EngineRequest er;
  er.request_id = request.request_id();
  er.prompt_token_ids.assign(request.prompt_token_ids().begin(), request.prompt_token_ids().end());
  er.params = wire::FromProto(request.sampling());
  er.params.n = 1;
  er.kv_role = engine::KvRole::kPrefillOnly;
  if (sender_ != nullptr) {
    TANDEM_RETURN_IF_ERROR(sender_->Start(request.request_id(), Destination(*pool, dest_heads, request)));
  }
  auto outputs = std::make_shared<engine::OutputStream>();
  if (absl::Status s =
          loop_.Submit(std::move(er), [outputs](engine::RequestOutput o) { outputs->Push(std::move(o)); });
      !s.ok()) {
    if (sender_ != nullptr) (void)sender_->Finish(request.request_id(), TransferTimeoutMs());
    return s;
  }
  std::vector<int32_t> tokens;
  std::vector<engine::SampleResult> logprobs;
  engine::RequestOutput last;
  bool cancelled = false;
  for (bool done = false; !done;) {
    if (!cancelled && (context->IsCancelled() || stopping_)) {
      cancelled = true;
      loop_.Abort(request.request_id());
    }
    std::optional<engine::RequestOutput> o = outputs->NextFor(kCancelCheck);
    if (!o.has_value()) continue;
    tokens.insert(tokens.end(), o->new_token_ids.begin(), o->new_token_ids.end());
    logprobs.insert(logprobs.end(), o->logprobs.begin(), o->logprobs.end());
    done = o->request_finished;
    if (done) last = std::move(*o);
  }
  // Layer-wise: the writes posted while the prompt ran; wait for them before the blocks are freed.
  const auto start = Clock::now();
  LayerwiseKvSender::Result streamed;
  if (sender_ != nullptr) streamed = sender_->Finish(request.request_id(), TransferTimeoutMs());
  if (!streamed.status.ok()) ForgetPool(dest.instance_id(), pool, streamed.status);
  const bool pinned = last.finish_reason == engine::FinishReason::kPrefillHandoff;
  cancelled = cancelled || context->IsCancelled() || stopping_;  // no new transfers once stopping
  if (cancelled || last.finish_reason != engine::FinishReason::kPrefillHandoff || tokens.empty()) {
    if (pinned) loop_.ReleaseTransfer(request.request_id());
    if (stopping_) return absl::UnavailableError("prefill worker is shutting down");
    if (cancelled) return absl::CancelledError("the decode worker cancelled the remote prefill");
    if (!last.status.ok()) return last.status;
    return absl::InternalError(absl::StrCat("prefill ended with ", engine::FinishReasonName(last.finish_reason),
                                            " instead of a KV hand-off"));
  }
  // Streamed in full, or a failed stream, or send everything now (layer-wise off, or it fell back).
  const absl::Status written = streamed.complete || !streamed.status.ok()
                                   ? streamed.status
                                   : WriteBlocks(*pool, dest_heads, last.kv_blocks, request);
  if (!written.ok()) ForgetPool(dest.instance_id(), pool, written);  // before the release
  loop_.ReleaseTransfer(request.request_id());
  if (!written.ok()) return written;
  const backend::KvCacheSpec& spec = local_.spec;
  const int64_t first = request.num_cached_tokens() / spec.block_size;
  const int64_t sent = static_cast<int64_t>(last.kv_blocks.size()) - first;
  const uint64_t bytes = static_cast<uint64_t>(sent) * info_.layout().bytes_per_block() * spec.num_layers;
  counters_.Update([&](wire::WorkerCounters& c) {
    c.kv_blocks_sent += sent;
    c.kv_bytes_sent += bytes;
    if (sender_ != nullptr) ++(streamed.complete ? c.kv_streamed_prefills : c.kv_stream_fallbacks);
  });
  response.set_first_token(tokens.front());
  if (!logprobs.empty()) *response.mutable_first_logprobs() = wire::ToProto(logprobs.front());
  response.set_num_blocks_written(static_cast<int32_t>(sent));
  response.set_bytes_written(bytes);
  response.set_num_cached_tokens(last.num_cached_tokens);
  // The transfer's span: from its first write posted (layer-wise: while the prompt still ran) to the
  // last one landed, so bytes / span is the bandwidth achieved. The part after the prefill, which is
  // what adds to TTFT, is logged below.
  const auto now = Clock::now();
  const bool overlapped = streamed.complete && streamed.first_post != Clock::time_point{};
  response.set_transfer_seconds(std::chrono::duration<double>(now - (overlapped ? streamed.first_post : start)).count());
  [[maybe_unused]] const double tail_ms = std::chrono::duration<double, std::milli>(now - start).count();
  TLOG_DEBUG("request {}: KV of {} blocks x {} layers complete {:.1f} ms after the prefill ({})",
             request.request_id(), sent, spec.num_layers, tail_ms, streamed.complete ? "layerwise" : "after_prefill");
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<PrefillServer::ImportedPool>> PrefillServer::ImportPool(const v1::WorkerInfo& dest) {
  std::lock_guard<std::mutex> lock(pools_mu_);
  auto it = pools_.find(dest.instance_id());
  if (it != pools_.end()) {
    it->second->last_used = ++pool_clock_;
    return it->second;
  }
  if (pools_.size() >= kMaxImportedPools) {
    auto oldest = std::min_element(pools_.begin(), pools_.end(), [](const auto& a, const auto& b) {
      return a.second->last_used < b.second->last_used;
    });
    TLOG_INFO("worker {}: dropping the least recently used KV pool import (decode worker {})", info_.instance_id(),
              oldest->first);
    pools_.erase(oldest);  // closed once the requests still writing through it are done
  }
  TANDEM_ASSIGN_OR_RETURN(transfer::PeerId peer, transport_.Connect(dest.transport_address()));
  auto pool = std::make_shared<ImportedPool>(transport_, peer);
  pool->last_used = ++pool_clock_;
  for (const std::string& descriptor : dest.layer_regions()) {
    absl::StatusOr<transfer::RemoteRegionId> region = transport_.ImportRegion(peer, descriptor);
    if (!region.ok()) {
      return Annotate(region.status(), absl::StrCat("importing the KV pool of decode worker ", dest.instance_id()));
    }
    pool->layers.push_back(*region);
  }
  pools_.emplace(dest.instance_id(), pool);
  return pool;
}

void PrefillServer::ForgetPool(const std::string& instance_id, const std::shared_ptr<ImportedPool>& pool,
                               const absl::Status& failure) {
  {
    std::lock_guard<std::mutex> lock(pools_mu_);
    auto it = pools_.find(instance_id);
    if (it != pools_.end() && it->second == pool) pools_.erase(it);
  }
  const bool in_flight = failure.code() == absl::StatusCode::kDeadlineExceeded;
  if (in_flight) pool->Disconnect();
  TLOG_INFO("worker {}: dropped the KV pool of decode worker {} after a failed transfer ({}{})", info_.instance_id(),
            instance_id, std::string(failure.message()), in_flight ? "; its endpoint closed now" : "");
}

KvDestination PrefillServer::Destination(const ImportedPool& pool, const transfer::KvRankHeads& heads,
                                         const v1::RemotePrefillRequest& request) const {
  KvDestination d;
  d.peer = pool.peer;
  d.layers = pool.layers;
  d.heads = heads;
  d.dst_blocks.assign(request.dst_block_ids().begin(), request.dst_block_ids().end());
  d.num_tokens = request.prompt_token_ids_size();
  d.first_block = request.num_cached_tokens() / local_.spec.block_size;
  d.notification = KvDoneNotification(request.request_id());
  return d;
}

absl::Status PrefillServer::WriteBlocks(const ImportedPool& pool, const transfer::KvRankHeads& dest_heads,
                                        const std::vector<kvcache::BlockId>& src_blocks,
                                        const v1::RemotePrefillRequest& request) {
  const backend::KvCacheSpec& spec = local_.spec;
  if (static_cast<int64_t>(src_blocks.size()) != request.dst_block_ids_size()) {
    return absl::InternalError(absl::StrCat("prefill produced ", src_blocks.size(),
                                            " blocks, the decode worker gave ", request.dst_block_ids_size()));
  }
  const size_t first = static_cast<size_t>(request.num_cached_tokens() / spec.block_size);
  std::vector<int64_t> src(src_blocks.begin() + static_cast<std::ptrdiff_t>(first), src_blocks.end());
  std::vector<int64_t> dst(request.dst_block_ids().begin() + static_cast<int>(first), request.dst_block_ids().end());
  TANDEM_ASSIGN_OR_RETURN(std::vector<transfer::BlockRun> runs, transfer::CoalesceBlockRuns(src, dst));
  std::vector<transfer::TransferId> posted;
  absl::Status status;
  for (int layer = 0; layer < spec.num_layers; ++layer) {
    absl::StatusOr<std::vector<transfer::WriteOp>> ops =
        transfer::LayerWrites(runs, layer, spec.num_layers, local_.heads, local_.layers, dest_heads, pool.layers);
    if (!ops.ok()) {  // checked before the prefill; the writes already posted are waited for below
      status = ops.status();
      break;
    }
    std::string note = layer + 1 == spec.num_layers ? KvDoneNotification(request.request_id()) : std::string();
    absl::StatusOr<transfer::TransferId> t = transport_.PostWrite(pool.peer, *ops, std::move(note));
    if (!t.ok()) {
      status = Annotate(t.status(), absl::StrCat("writing layer ", layer, " of request ", request.request_id()));
      break;
    }
    posted.push_back(*t);
  }
  for (transfer::TransferId t : posted) {
    const absl::Status s = transfer::WaitForTransfer(transport_, t, TransferTimeoutMs());
    // A timed-out write keeps its code (DeadlineExceeded): the caller closes the endpoint for it.
    if (!s.ok() && (status.ok() || s.code() == absl::StatusCode::kDeadlineExceeded))
      status = Annotate(s, absl::StrCat("KV transfer of request ", request.request_id()));
    transport_.Release(t);
  }
  return status;
}

}  // namespace tandem::worker
