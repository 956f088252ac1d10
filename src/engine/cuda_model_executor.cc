#include "tandem/engine/cuda_model_executor.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "tandem/core/status.h"
#include "tandem/engine/backend_model_executor.h"

namespace tandem::engine {

CudaModelExecutor::CudaModelExecutor(std::unique_ptr<backend::CudaModelRunner> runner) : runner_(std::move(runner)) {}

int32_t CudaModelExecutor::vocab_size() const { return runner_->config().vocab_size; }
int32_t CudaModelExecutor::num_kv_blocks() const { return runner_->kv_pool().spec().num_blocks; }
int32_t CudaModelExecutor::block_size() const { return runner_->kv_pool().spec().block_size; }

absl::StatusOr<std::span<const float>> CudaModelExecutor::Execute(const StepPlan& plan) {
  FillSequenceSteps(plan, &steps_);
  TANDEM_ASSIGN_OR_RETURN(backend::BatchPlan batch, runner_->Plan(steps_));
  if (batch.num_logits() != plan.num_logit_rows) {
    return absl::InternalError(absl::StrCat("step plan asks for ", plan.num_logit_rows,
                                            " logits rows, the CUDA runner planned ", batch.num_logits()));
  }
  tokens_ = {};
  absl::StatusOr<backend::CudaStepOutput> out = runner_->Forward(batch, layer_hook_.Begin(plan));
  layer_hook_.End();
  if (!out.ok()) return out.status();
  tokens_ = out->tokens;
  return out->logits;
}

absl::Status CudaModelExecutor::SetLayerDoneCallback(LayerDoneCallback callback, LayerStepFilter wants) {
  layer_hook_.Set(std::move(callback), std::move(wants));
  return absl::OkStatus();
}

}  // namespace tandem::engine
