// The ModelExecutor over the CUDA model runner (backend/cuda_model_runner.h), which owns its bf16 KV
// pool on the GPU. Built only with CUDA (TANDEM_HAS_CUDA).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "tandem/backend/batch.h"
#include "tandem/backend/cuda_model_runner.h"
#include "tandem/engine/backend_model_executor.h"
#include "tandem/engine/model_executor.h"

namespace tandem::engine {

class CudaModelExecutor final : public ModelExecutor {
 public:
  explicit CudaModelExecutor(std::unique_ptr<backend::CudaModelRunner> runner);

  int32_t vocab_size() const override;
  int32_t num_kv_blocks() const override;
  int32_t block_size() const override;
  absl::StatusOr<std::span<const float>> Execute(const StepPlan& plan) override;
  absl::Status SetLayerDoneCallback(LayerDoneCallback callback, LayerStepFilter wants = nullptr) override;
  bool samples_rows() const override { return runner_->samples_rows(); }
  std::span<const int32_t> LastSampled() const override { return tokens_; }
  backend::KvPool* kv_pool() override { return &runner_->kv_pool(); }
  int kv_device() const override { return runner_->options().device; }
  std::string model_name() const override { return runner_->config().name; }

  backend::CudaModelRunner& runner() { return *runner_; }

 private:
  std::unique_ptr<backend::CudaModelRunner> runner_;
  std::vector<backend::SequenceStep> steps_;
  std::span<const int32_t> tokens_;  // of the last Execute (the runner's pinned memory)
  LayerHook layer_hook_;
};

}  // namespace tandem::engine
