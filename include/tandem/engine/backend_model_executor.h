// The ModelExecutor over the backend's ModelRunner and its paged KV cache
// (kv[layer]: [num_blocks, 2, num_kv_heads, block_size, head_dim]).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "tandem/backend/backend.h"
#include "tandem/backend/batch.h"
#include "tandem/backend/kv_pool.h"
#include "tandem/backend/model_runner.h"
#include "tandem/engine/model_executor.h"

namespace tandem::engine {

// The backend's view of a step plan: one SequenceStep per sequence, reusing `steps`' storage.
void FillSequenceSteps(const StepPlan& plan, std::vector<backend::SequenceStep>* steps);

// Adapts the engine's layer callback (which takes the step's plan) to a model runner's (which takes
// the layer alone), for the executors over the CPU and CUDA runners.
class LayerHook {
 public:
  void Set(LayerDoneCallback callback, LayerStepFilter wants);
  // The runner's callback for the Execute of `plan` now starting, or null when none is subscribed or
  // the subscriber does not want this step.
  const backend::RunnerLayerCallback* Begin(const StepPlan& plan);
  void End() { executing_ = nullptr; }

 private:
  LayerDoneCallback on_layer_done_;
  LayerStepFilter wants_;
  backend::RunnerLayerCallback runner_hook_;  // calls on_layer_done_ with *executing_; set once
  const StepPlan* executing_ = nullptr;     // the plan of the Execute in progress
};

class BackendModelExecutor final : public ModelExecutor {
 public:
  // Takes the backend and the runner built on it, and allocates a KV cache of `num_blocks` blocks of
  // `block_size` tokens from `kv_allocator` when given (kv_cache.h), else from the backend.
  static absl::StatusOr<std::unique_ptr<BackendModelExecutor>> Create(
      std::unique_ptr<backend::Backend> backend, std::unique_ptr<backend::ModelRunner> runner,
      int32_t num_blocks, int32_t block_size, const backend::KvPoolAllocator& kv_allocator = {});
  ~BackendModelExecutor() override;

  int32_t vocab_size() const override;
  int32_t num_kv_blocks() const override;
  int32_t block_size() const override;
  absl::StatusOr<std::span<const float>> Execute(const StepPlan& plan) override;
  absl::Status SetLayerDoneCallback(LayerDoneCallback callback, LayerStepFilter wants = nullptr) override;
  backend::KvPool* kv_pool() override { return cache_.get(); }
  std::string model_name() const override { return runner_->config().name; }

  backend::ModelRunner& runner() { return *runner_; }

 private:
  BackendModelExecutor(std::unique_ptr<backend::Backend> backend,
                       std::unique_ptr<backend::ModelRunner> runner, std::unique_ptr<backend::KvPool> cache);

  std::unique_ptr<backend::Backend> backend_;
  std::unique_ptr<backend::ModelRunner> runner_;  // uses backend_; destroyed first
  std::unique_ptr<backend::KvPool> cache_;
  std::vector<backend::SequenceStep> steps_;
  std::vector<float> logits_;  // [num_logit_rows, vocab]
  LayerHook layer_hook_;
};

}  // namespace tandem::engine
