#include "layerwise_sender.h"

#include <algorithm>
#include <span>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tandem/core/logging.h"
#include "tandem/core/status.h"
#include "tandem/transfer/block_runs.h"

namespace tandem::worker {

struct LayerwiseKvSender::Stream {
  std::string request_id;
  KvDestination dest;
  // Engine thread only.
  int64_t next_start = -1;        // start position its next chunk must have; -1 before the first
  int64_t sent_end = 0;           // blocks [dest.first_block, sent_end) are planned for every layer
  std::vector<int64_t> src_sent;  // their source block ids, from dest.first_block on
  // Under mu_.
  std::vector<transfer::TransferId> posted;
  std::chrono::steady_clock::time_point first_post;  // of posted.front()
  absl::Status status;
  bool fallen_back = false;  // stopped streaming: the caller sends everything after the step
  bool complete = false;     // the final chunk's last layer, with the notification, is posted
  bool finished = false;     // Finish took it: post nothing more

  bool streaming() const { return status.ok() && !fallen_back && !finished; }
};

LayerwiseKvSender::LayerwiseKvSender(transfer::KvTransport* transport,
                                     std::vector<transfer::RegionId> local_layers, transfer::KvRankHeads local_heads,
                                     int32_t block_size)
    : transport_(transport),
      local_layers_(std::move(local_layers)),
      local_heads_(std::move(local_heads)),
      num_layers_(static_cast<int32_t>(local_layers_.size())),
      block_size_(block_size) {}

absl::Status LayerwiseKvSender::Start(const std::string& request_id, KvDestination destination) {
  const size_t ranks = destination.heads.heads.size();
  if (ranks == 0 || destination.layers.size() != local_layers_.size() * ranks) {
    return absl::InvalidArgumentError(absl::StrCat("layer-wise KV stream of request ", request_id, ": expected ",
                                                   local_layers_.size(), " destination layer regions per rank (",
                                                   ranks, " ranks), found ", destination.layers.size()));
  }
  // A destination this worker's heads cannot fill is refused now, not at the first layer.
  TANDEM_RETURN_IF_ERROR(transfer::CheckHandOff(local_heads_, destination.heads));
  const int64_t blocks = (destination.num_tokens + block_size_ - 1) / block_size_;
  if (destination.num_tokens < 1 || static_cast<int64_t>(destination.dst_blocks.size()) != blocks ||
      destination.first_block < 0 || destination.first_block > blocks) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layer-wise KV stream of request ", request_id, ": expected ", blocks, " destination blocks for ",
        destination.num_tokens, " tokens and a first block in [0, ", blocks, "], found ",
        destination.dst_blocks.size(), " blocks and first block ", destination.first_block));
  }
  auto stream = std::make_shared<Stream>();
  stream->request_id = request_id;
  stream->sent_end = destination.first_block;
  stream->dest = std::move(destination);
  std::lock_guard<std::mutex> lock(mu_);
  if (!streams_.emplace(request_id, std::move(stream)).second) {
    return absl::AlreadyExistsError(absl::StrCat("request ", request_id, " is already streaming its KV"));
  }
  live_.fetch_add(1);
  return absl::OkStatus();
}

bool LayerwiseKvSender::Wants(const engine::StepPlan& plan) const {
  if (live_.load() == 0) return false;
  for (const engine::ExecSequence& seq : plan.seqs) {
    if (seq.kv_role == engine::KvRole::kPrefillOnly) return true;
  }
  return false;
}

void LayerwiseKvSender::OnLayerDone(const engine::StepPlan& plan, int32_t layer) {
  if (layer == 0) PlanStep(plan);
  if (step_.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (const StepWork& work : step_) {
    Stream& s = *work.stream;
    if (!s.streaming()) continue;
    const std::span<const transfer::WriteOp> ops(
        ops_.data() + work.begin + static_cast<size_t>(layer) * work.per_layer, work.per_layer);
    const bool last = work.final && layer + 1 == num_layers_;
    if (work.per_layer == 0 && !last) continue;
    absl::StatusOr<transfer::TransferId> t =
        transport_->PostWrite(s.dest.peer, ops, last ? s.dest.notification : std::string());
    if (!t.ok()) {
      s.status = Annotate(t.status(), absl::StrCat("writing layer ", layer, " of request ", s.request_id));
      continue;
    }
    if (s.posted.empty()) s.first_post = std::chrono::steady_clock::now();
    s.posted.push_back(*t);
    if (last) s.complete = true;
  }
}

void LayerwiseKvSender::PlanStep(const engine::StepPlan& plan) {
  step_.clear();
  ops_.clear();
  if (live_.load() == 0) return;
  for (const engine::ExecSequence& seq : plan.seqs) {
    if (seq.kv_role != engine::KvRole::kPrefillOnly) continue;
    std::shared_ptr<Stream> stream;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = streams_.find(absl::string_view(seq.request_id.data(), seq.request_id.size()));
      if (it == streams_.end() || !it->second->streaming()) continue;
      stream = it->second;
    }
    PlanSequence(stream, seq);
  }
}

void LayerwiseKvSender::PlanSequence(const std::shared_ptr<Stream>& stream, const engine::ExecSequence& seq) {
  Stream& s = *stream;
  const int64_t start = seq.start_position;
  const int64_t end = start + static_cast<int64_t>(seq.token_ids.size());
  const bool final = end == s.dest.num_tokens;
  const int64_t done_blocks = final ? (end + block_size_ - 1) / block_size_ : end / block_size_;
  // The chunks must follow each other in the same blocks; a preempted sequence recomputes from its
  // cached prefix, maybe into other blocks, while earlier writes may still read the freed ones.
  bool consistent = (s.next_start < 0 || start == s.next_start) && end <= s.dest.num_tokens &&
                    static_cast<int64_t>(seq.block_table.size()) >= done_blocks;
  for (int64_t b = s.dest.first_block; consistent && b < s.sent_end; ++b) {
    consistent =
        seq.block_table[static_cast<size_t>(b)] == s.src_sent[static_cast<size_t>(b - s.dest.first_block)];
  }
  if (!consistent) {
    TLOG_DEBUG(
        "request {}: chunk [{}, {}) does not follow the streamed KV (expected start {}); sending after "
        "prefill",
        s.request_id, start, end, s.next_start);
    std::lock_guard<std::mutex> lock(mu_);
    s.fallen_back = true;
    return;
  }
  s.next_start = end;
  if (done_blocks <= s.sent_end && !final) return;
  std::vector<int64_t> src(seq.block_table.begin() + s.sent_end,
                           seq.block_table.begin() + std::max(done_blocks, s.sent_end));
  std::vector<int64_t> dst(s.dest.dst_blocks.begin() + s.sent_end,
                           s.dest.dst_blocks.begin() + std::max(done_blocks, s.sent_end));
  absl::StatusOr<std::vector<transfer::BlockRun>> runs = transfer::CoalesceBlockRuns(src, dst);
  if (!runs.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    s.status = Annotate(runs.status(), absl::StrCat("KV blocks of request ", s.request_id));
    return;
  }
  // Every layer gets the same number of writes (same runs, same heads): layer L's are
  // ops_[begin + L * per_layer, + per_layer).
  StepWork work{stream, ops_.size(), 0, final};
  for (int layer = 0; layer < num_layers_; ++layer) {
    absl::StatusOr<std::vector<transfer::WriteOp>> ops =
        transfer::LayerWrites(*runs, layer, num_layers_, local_heads_, local_layers_, s.dest.heads, s.dest.layers);
    if (!ops.ok()) {  // checked at Start; drop what this sequence planned
      ops_.resize(work.begin);
      std::lock_guard<std::mutex> lock(mu_);
      s.status = Annotate(ops.status(), absl::StrCat("KV writes of request ", s.request_id));
      return;
    }
    work.per_layer = ops->size();
    ops_.insert(ops_.end(), ops->begin(), ops->end());
  }
  s.src_sent.insert(s.src_sent.end(), src.begin(), src.end());
  s.sent_end = std::max(done_blocks, s.sent_end);
  step_.push_back(std::move(work));
}

LayerwiseKvSender::Result LayerwiseKvSender::Finish(const std::string& request_id, int timeout_ms) {
  Result result;
  std::vector<transfer::TransferId> posted;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = streams_.find(request_id);
    if (it == streams_.end()) {
      result.status =
          absl::NotFoundError(absl::StrCat("request ", request_id, " has no layer-wise KV stream"));
      return result;
    }
    Stream& s = *it->second;
    s.finished = true;
    posted = std::move(s.posted);
    result.status = s.status;
    result.complete = s.complete;
    result.first_post = s.first_post;
    streams_.erase(it);
    live_.fetch_sub(1);
  }
  // One deadline for all of them: a stuck peer holds this thread for timeout_ms, not per layer.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (transfer::TransferId t : posted) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    const absl::Status s =
        transfer::WaitForTransfer(*transport_, t, static_cast<int>(std::max<int64_t>(0, left.count())));
    // A timed-out write keeps its code (DeadlineExceeded): the caller closes the endpoint for it.
    if (!s.ok() && (result.status.ok() || s.code() == absl::StatusCode::kDeadlineExceeded))
      result.status = Annotate(s, absl::StrCat("KV transfer of request ", request_id));
    transport_->Release(t);
  }
  result.complete = result.complete && result.status.ok();
  return result;
}

}  // namespace tandem::worker
