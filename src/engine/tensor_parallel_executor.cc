#include "tandem/engine/tensor_parallel_executor.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tandem/backend/kv_pool.h"
#include "tandem/core/logging.h"
#include "tandem/core/status.h"

namespace tandem::engine {

std::vector<int> ModelExecutor::rank_kv_heads(int rank) {
  std::vector<int> heads;
  backend::KvPool* pool = rank_kv_pool(rank);
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
  tp->num_kv_blocks_ = first.num_kv_blocks();
  for (const auto& rank : tp->ranks_) {
    if (rank->block_size() != first.block_size() || rank->vocab_size() != first.vocab_size()) {
      return absl::InternalError("tensor parallel: the ranks' KV block sizes or vocabularies differ");
    }
    // Ranks sizing their pools from their own GPU's free memory may get a few blocks more or less:
    // the scheduler uses the ids every rank has.
    tp->num_kv_blocks_ = std::min(tp->num_kv_blocks_, rank->num_kv_blocks());
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

namespace {

// Fault injection for tests of a rank's failure (docs/architecture.md "Tensor parallelism"):
// TANDEM_FAULT_TP_RANK=R:S[:FILE] makes rank R fail its S-th step (counted from 1) as a device error
// would; with FILE, only while FILE does not exist, and it creates FILE when it fires (once across the
// worker's restarts).
struct InjectedRankFault {
  int rank = -1;
  int64_t step = 0;
  std::string once_file;
};

InjectedRankFault ReadInjectedRankFault() {
  InjectedRankFault f;
  const char* env = std::getenv("TANDEM_FAULT_TP_RANK");
  if (env == nullptr || *env == '\0') return f;
  std::vector<std::string> parts = absl::StrSplit(env, absl::MaxSplits(':', 2));
  int rank = -1;
  int64_t step = 0;
  if (parts.size() < 2 || !absl::SimpleAtoi(parts[0], &rank) || !absl::SimpleAtoi(parts[1], &step) || step < 1) {
    TLOG_WARN("TANDEM_FAULT_TP_RANK={}: expected RANK:STEP[:FILE]; ignored", env);
    return f;
  }
  f.rank = rank;
  f.step = step;
  if (parts.size() == 3) f.once_file = parts[2];
  TLOG_WARN("fault injection: tensor-parallel rank {} fails its step {}{}", rank, step,
            f.once_file.empty() ? "" : " (once: " + f.once_file + ")");
  return f;
}

// Whether the injected fault fires for `rank` at `step` (and, with a file, marks it fired).
bool FaultFires(const InjectedRankFault& f, int rank, int64_t step) {
  if (f.rank != rank || f.step != step) return false;
  if (f.once_file.empty()) return true;
  if (std::FILE* exists = std::fopen(f.once_file.c_str(), "r"); exists != nullptr) {
    std::fclose(exists);
    return false;
  }
  if (std::FILE* mark = std::fopen(f.once_file.c_str(), "w"); mark != nullptr) std::fclose(mark);
  return true;
}

}  // namespace

absl::StatusOr<std::span<const float>> TensorParallelExecutor::Execute(const StepPlan& plan) {
  if (!broken_.ok()) return broken_;
  static const InjectedRankFault fault = ReadInjectedRankFault();
  const int64_t step = ++steps_;
  absl::Status status = RunOnRanks([&](int r) -> absl::Status {
    if (FaultFires(fault, r, step)) return absl::InternalError("injected fault (TANDEM_FAULT_TP_RANK)");
    absl::StatusOr<std::span<const float>> out = ranks_[static_cast<size_t>(r)]->Execute(plan);
    if (!out.ok()) return out.status();
    if (r == 0) logits_ = *out;
    return absl::OkStatus();
  });
  if (!status.ok()) {
    // This step fails with the rank's own error; later ones as unavailable (the worker restarts).
    const std::string why =
        absl::StrCat(status.message(), " (the worker's tensor-parallel ranks are out of step; it must restart)");
    broken_ = absl::UnavailableError(why);
    broken_flag_.store(true, std::memory_order_release);
    TLOG_ERROR("{}", why);
    return absl::Status(status.code(), why);
  }
  return logits_;
}

}  // namespace tandem::engine
