#include "tandem/engine/backend_model_executor.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "tandem/core/status.h"

namespace tandem::engine {

BackendModelExecutor::BackendModelExecutor(std::unique_ptr<backend::Backend> backend,
                                           std::unique_ptr<backend::ModelRunner> runner,
                                           std::unique_ptr<backend::KvPool> cache)
    : backend_(std::move(backend)), runner_(std::move(runner)), cache_(std::move(cache)) {}

BackendModelExecutor::~BackendModelExecutor() {
  // The cache and the runner hold memory of backend_: release them first.
  cache_.reset();
  runner_.reset();
}

absl::StatusOr<std::unique_ptr<BackendModelExecutor>> BackendModelExecutor::Create(
    std::unique_ptr<backend::Backend> backend, std::unique_ptr<backend::ModelRunner> runner,
    int32_t num_blocks, int32_t block_size, const backend::KvPoolAllocator& kv_allocator) {
  if (backend == nullptr || runner == nullptr) {
    return absl::InvalidArgumentError(
        "BackendModelExecutor: expected a backend and a model runner, found null");
  }
  if (num_blocks <= 0 || block_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("BackendModelExecutor: expected positive num_blocks and block_size, "
                     "found ",
                     num_blocks, " and ", block_size));
  }
  const backend::KvCacheSpec spec = runner->MakeKvCacheSpec(num_blocks, block_size);
  TANDEM_ASSIGN_OR_RETURN(auto cache, backend::KvPool::Create(*backend, spec, kv_allocator));
  return std::unique_ptr<BackendModelExecutor>(
      new BackendModelExecutor(std::move(backend), std::move(runner), std::move(cache)));
}

int32_t BackendModelExecutor::vocab_size() const { return runner_->config().vocab_size; }
int32_t BackendModelExecutor::num_kv_blocks() const { return cache_->spec().num_blocks; }
int32_t BackendModelExecutor::block_size() const { return cache_->spec().block_size; }

void FillSequenceSteps(const StepPlan& plan, std::vector<backend::SequenceStep>* steps) {
  steps->resize(plan.seqs.size());
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const ExecSequence& in = plan.seqs[i];
    backend::SequenceStep& step = (*steps)[i];
    step.token_ids.assign(in.token_ids.begin(), in.token_ids.end());
    step.start_position = in.start_position;
    step.block_table.assign(in.block_table.begin(), in.block_table.end());
    step.needs_logits = in.needs_logits;
    step.needs_full_logits = in.needs_full_logits;
    step.sampling = in.sampling;
  }
}

absl::StatusOr<std::span<const float>> BackendModelExecutor::Execute(const StepPlan& plan) {
  FillSequenceSteps(plan, &steps_);
  TANDEM_ASSIGN_OR_RETURN(backend::BatchPlan batch, runner_->Plan(steps_, *cache_));
  if (batch.num_logits() != plan.num_logit_rows) {
    return absl::InternalError(absl::StrCat("step plan asks for ", plan.num_logit_rows,
                                            " logits rows, the backend planned ", batch.num_logits()));
  }
  absl::StatusOr<std::vector<float>> logits = runner_->Forward(batch, *cache_, layer_hook_.Begin(plan));
  layer_hook_.End();
  TANDEM_ASSIGN_OR_RETURN(logits_, std::move(logits));
  const size_t expected =
      runner_->computes_logits() ? static_cast<size_t>(plan.num_logit_rows) * static_cast<size_t>(vocab_size()) : 0;
  if (logits_.size() != expected) {
    return absl::InternalError(
        absl::StrCat("expected ", expected, " logits from the model runner, found ", logits_.size()));
  }
  return std::span<const float>(logits_);
}

absl::Status BackendModelExecutor::SetLayerDoneCallback(LayerDoneCallback callback, LayerStepFilter wants) {
  layer_hook_.Set(std::move(callback), std::move(wants));
  return absl::OkStatus();
}

void LayerHook::Set(LayerDoneCallback callback, LayerStepFilter wants) {
  on_layer_done_ = std::move(callback);
  wants_ = std::move(wants);
  if (on_layer_done_ && !runner_hook_) {
    runner_hook_ = [this](int layer) { on_layer_done_(*executing_, static_cast<int32_t>(layer)); };
  }
}

const backend::RunnerLayerCallback* LayerHook::Begin(const StepPlan& plan) {
  executing_ = &plan;
  if (!on_layer_done_ || (wants_ && !wants_(plan))) return nullptr;
  return &runner_hook_;
}

}  // namespace tandem::engine
