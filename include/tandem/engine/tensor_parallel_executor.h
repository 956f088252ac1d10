// The ModelExecutor of a tensor-parallel worker: one process, one thread per rank, each rank driving
// its own executor (a model runner over its shard of the weights and its own KV pool of its KV heads,
// on its own GPU for CUDA) and meeting the others in the collectives inside the forward pass
// (backend/collective.h). The engine thread hands each step's plan to every rank and waits for all;
// rank 0 computes the logits. docs/architecture.md "Tensor parallelism" says why one process.
//
// A rank that fails a step (a CUDA error, an out-of-memory) aborts the collective group, so the
// others stop waiting for it; that step fails with the rank's error, and the executor is broken from
// then on: every later step fails as Unavailable, and the worker stops itself so that its supervisor
// restarts it. TANDEM_FAULT_TP_RANK=R:S[:FILE] injects such a failure (rank R, its S-th step; with FILE
// once across restarts) for tests.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "tandem/engine/model_executor.h"

namespace tandem::engine {

class TensorParallelExecutor final : public ModelExecutor {
 public:
  // Builds rank r's executor with make_rank(r) on rank r's thread (all ranks at once), and calls
  // `abort(why)` when a rank fails a step (it releases the collective group's waiting ranks).
  // `rank_kv_heads[r]`: the model KV heads rank r's pool holds (TensorParallelShard::kv_heads), for the
  // KV layout a worker advertises; empty: each rank's own pool's heads, numbered from 0.
  using RankFactory = std::function<absl::StatusOr<std::unique_ptr<ModelExecutor>>(int rank)>;
  static absl::StatusOr<std::unique_ptr<TensorParallelExecutor>> Create(
      int size, const RankFactory& make_rank, std::function<void(const absl::Status&)> abort,
      std::vector<std::vector<int>> rank_kv_heads = {});
  ~TensorParallelExecutor() override;

  int32_t vocab_size() const override { return ranks_.front()->vocab_size(); }
  int32_t num_kv_blocks() const override { return num_kv_blocks_; }  // the fewest of any rank
  int32_t block_size() const override { return ranks_.front()->block_size(); }
  absl::StatusOr<std::span<const float>> Execute(const StepPlan& plan) override;
  bool samples_rows() const override { return ranks_.front()->samples_rows(); }
  std::span<const int32_t> LastSampled() const override { return ranks_.front()->LastSampled(); }
  std::string model_name() const override { return ranks_.front()->model_name(); }
  int kv_device() const override { return ranks_.front()->kv_device(); }
  int tensor_parallel_size() const override { return static_cast<int>(ranks_.size()); }
  backend::KvPool* rank_kv_pool(int rank) override { return ranks_[static_cast<size_t>(rank)]->kv_pool(); }
  std::vector<int> rank_kv_heads(int rank) override {
    return rank_kv_heads_.empty() ? ModelExecutor::rank_kv_heads(rank) : rank_kv_heads_[static_cast<size_t>(rank)];
  }
  absl::Status broken() const override {
    return broken_flag_.load(std::memory_order_acquire) ? broken_ : absl::OkStatus();
  }
  int rank_kv_device(int rank) const override { return ranks_[static_cast<size_t>(rank)]->kv_device(); }

  ModelExecutor& rank(int r) { return *ranks_[static_cast<size_t>(r)]; }

 private:
  TensorParallelExecutor() = default;
  // Runs `task(rank)` on every rank's thread and waits for all; the first error (by rank).
  absl::Status RunOnRanks(const std::function<absl::Status(int rank)>& task);
  void ThreadMain(int rank);

  std::function<void(const absl::Status&)> abort_;  // owns the collective group: destroyed after the ranks
  std::vector<std::unique_ptr<ModelExecutor>> ranks_;
  std::vector<std::vector<int>> rank_kv_heads_;
  int32_t num_kv_blocks_ = 0;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<absl::Status(int)>* task_ = nullptr;  // the work in progress
  uint64_t generation_ = 0;                                  // bumped per task
  int pending_ = 0;                                          // ranks still working on it
  std::vector<absl::Status> results_;
  bool stopping_ = false;
  absl::Status broken_;  // the first rank failure; every later step fails with it (set once)
  std::atomic<bool> broken_flag_{false};  // broken_ is set (for other threads)
  std::span<const float> logits_;
  int64_t steps_ = 0;  // steps run (the fault injection counts them)
};

}  // namespace tandem::engine
