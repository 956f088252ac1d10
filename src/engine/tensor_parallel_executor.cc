#include "tandem/engine/tensor_parallel_executor.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tandem/backend/kv_cache.h"
#include "tandem/core/logging.h"
#include "tandem/core/status.h"

namespace tandem::engine {

std::vector<int> ModelExecutor::rank_kv_heads(int rank) {
  std::vector<int> heads;
  backend::KvCache* pool = rank_kv_pool(rank);
  for (int h = 0; pool != nullptr && h < pool->spec().num_kv_heads; ++h) heads.push_back(h);
  return heads;
}

absl::StatusOr<std::unique_ptr<TensorParallelExecutor>> TensorParallelExecutor::Create(
    int size, const RankFactory& make_rank, std::function<void(const absl::Status&)> abort,
    std::vector<std::vector<int>> rank_kv_heads) {
  if (size < 1) return absl::InvalidArgumentError(absl::StrCat("tensor parallel: expected >= 1 rank, found ", size));
  std::unique_ptr<TensorParallelExecutor> tp(new TensorParallelExecutor());
  tp->abort_ = std::move(abort);
  tp->rank_kv_heads_ = std::move(rank_kv_heads);
  tp->ranks_.resize(static_cast<size_t>(size));
  tp->results_.resize(static_cast<size_t>(size));
  for (int r = 0; r < size; ++r) tp->threads_.emplace_back([p = tp.get(), r] { p->ThreadMain(r); });
  // Each rank builds its executor on its own thread (a CUDA rank's device is current there).
  TANDEM_RETURN_IF_ERROR(tp->RunOnRanks([&](int r) -> absl::Status {
    TANDEM_ASSIGN_OR_RETURN(tp->ranks_[static_cast<size_t>(r)], make_rank(r));
    return absl::OkStatus();
  }));
  const ModelExecutor& first = *tp->ranks_.front();
  for (const auto& rank : tp->ranks_) {
    if (rank->num_kv_blocks() != first.num_kv_blocks() || rank->block_size() != first.block_size() ||
        rank->vocab_size() != first.vocab_size()) {
      return absl::InternalError("tensor parallel: the ranks' KV pools or vocabularies differ");
    }
  }
  return tp;
}

TensorParallelExecutor::~TensorParallelExecutor() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  // ranks_ are destroyed here, on this thread (each frees its device memory on its own device).
}

void TensorParallelExecutor::ThreadMain(int rank) {
  uint64_t seen = 0;
  while (true) {
    const std::function<absl::Status(int)>* task = nullptr;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      task = task_;
    }
    absl::Status status = (*task)(rank);
    if (!status.ok() && abort_) {  // the other ranks may be waiting for this one in a collective
      abort_(absl::AbortedError(absl::StrCat("tensor-parallel rank ", rank, " failed: ", status.message())));
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      results_[static_cast<size_t>(rank)] = std::move(status);
      --pending_;
    }
    cv_.notify_all();
  }
}

absl::Status TensorParallelExecutor::RunOnRanks(const std::function<absl::Status(int rank)>& task) {
  std::unique_lock<std::mutex> lock(mu_);
  task_ = &task;
  pending_ = static_cast<int>(threads_.size());
  ++generation_;
  cv_.notify_all();
  cv_.wait(lock, [&] { return pending_ == 0; });
  task_ = nullptr;
  // The first failing rank's own error, not the "aborted" its failure caused in the others.
  absl::Status first;
  for (size_t r = 0; r < results_.size(); ++r) {
    if (results_[r].ok()) continue;
    absl::Status s(results_[r].code(), absl::StrCat("tensor-parallel rank ", r, ": ", results_[r].message()));
    if (first.ok() || (absl::IsAborted(first) && !absl::IsAborted(results_[r]))) first = s;
  }
  return first;
}

absl::StatusOr<std::span<const float>> TensorParallelExecutor::Execute(const StepPlan& plan) {
  if (!broken_.ok()) return broken_;
  absl::Status status = RunOnRanks([&](int r) -> absl::Status {
    absl::StatusOr<std::span<const float>> out = ranks_[static_cast<size_t>(r)]->Execute(plan);
    if (!out.ok()) return out.status();
    if (r == 0) logits_ = *out;
    return absl::OkStatus();
  });
  if (!status.ok()) {
    broken_ = absl::FailedPreconditionError(
        absl::StrCat(status.message(), " (the worker's tensor-parallel ranks are out of step; it must restart)"));
    broken_flag_.store(true, std::memory_order_release);
    TLOG_ERROR("{}", std::string(broken_.message()));
    return broken_;
  }
  return logits_;
}

}  // namespace tandem::engine
