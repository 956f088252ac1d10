#include "tandem/backend/device_sampler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "tandem/core/status.h"

namespace tandem::backend::cuda {

absl::StatusOr<std::unique_ptr<DeviceSampler>> DeviceSampler::Create(int max_rows, int vocab) {
  if (max_rows < 1 || !Supports(vocab)) {
    return absl::InvalidArgumentError(absl::StrCat("device sampler: ", max_rows, " rows of vocab ", vocab,
                                                   "; expected >= 1 rows and a vocab in [1, ",
                                                   kernels::kSampleMaxVocab, "]"));
  }
  TANDEM_CUDA_CHECK(kernels::PrepareSampleRows());
  std::unique_ptr<DeviceSampler> s(new DeviceSampler(max_rows, vocab));
  const size_t rows = static_cast<size_t>(max_rows);
  TANDEM_RETURN_IF_ERROR(s->host_params_.Allocate(rows * sizeof(kernels::SampleRowParams)));
  TANDEM_ASSIGN_OR_RETURN(s->params_, DeviceMemory::Allocate(rows * sizeof(kernels::SampleRowParams)));
  TANDEM_ASSIGN_OR_RETURN(s->tokens_, DeviceMemory::Allocate(rows * sizeof(int32_t)));
  TANDEM_RETURN_IF_ERROR(s->host_tokens_.Allocate(rows * sizeof(int32_t)));
  TANDEM_RETURN_IF_ERROR(s->Reserve(size_t{1} << 12));
  return s;
}

absl::Status DeviceSampler::Reserve(size_t edits) {
  if (edits <= edit_capacity_) return absl::OkStatus();
  const size_t capacity = std::max(edits, 2 * edit_capacity_);
  TANDEM_RETURN_IF_ERROR(host_edits_.Allocate(capacity * sizeof(kernels::LogitEdit)));
  TANDEM_ASSIGN_OR_RETURN(edits_, DeviceMemory::Allocate(capacity * sizeof(kernels::LogitEdit)));
  edit_capacity_ = capacity;
  return absl::OkStatus();
}

absl::Status DeviceSampler::Stage(std::span<const uint8_t> full, std::span<const RowSampling* const> sampling,
                                  int padded_rows, cudaStream_t stream) {
  if (padded_rows > max_rows_ || full.size() != sampling.size() ||
      full.size() > static_cast<size_t>(padded_rows)) {
    return absl::InvalidArgumentError(absl::StrCat("device sampler: ", full.size(), " rows (",
                                                   sampling.size(), " described) padded to ", padded_rows,
                                                   ", expected at most ", max_rows_));
  }
  size_t num_edits = 0;
  for (size_t r = 0; r < full.size(); ++r) {
    if (full[r] == 0 && sampling[r] != nullptr) num_edits += sampling[r]->edits.size();
  }
  TANDEM_RETURN_IF_ERROR(Reserve(num_edits));
  auto* params = host_params_.as<kernels::SampleRowParams>();
  auto* edits = host_edits_.as<kernels::LogitEdit>();
  const auto* device_edits = static_cast<const kernels::LogitEdit*>(edits_->data());
  size_t at = 0;
  for (int r = 0; r < padded_rows; ++r) {
    kernels::SampleRowParams& p = params[r];
    p = kernels::SampleRowParams{};
    const bool real = static_cast<size_t>(r) < full.size();
    const RowSampling* s =
        real && full[static_cast<size_t>(r)] == 0 ? sampling[static_cast<size_t>(r)] : nullptr;
    if (s == nullptr) continue;  // the plain argmax (host rows too: the row stays as it is)
    p.mode = s->greedy ? kernels::SampleMode::kArgmax : kernels::SampleMode::kDraw;
    p.top_k = s->top_k;
    p.inv_temperature = 1.0f / s->temperature;
    p.top_p = s->top_p;
    p.min_p = s->min_p;
    p.repetition_penalty = s->repetition_penalty;
    p.presence_penalty = s->presence_penalty;
    p.frequency_penalty = s->frequency_penalty;
    p.uniform = s->uniform;
    p.edits = device_edits + at;
    p.num_edits = static_cast<int32_t>(s->edits.size());
    for (const LogitEdit& e : s->edits) {
      edits[at++] = kernels::LogitEdit{
          .token = e.token,
          .bias = e.bias,
          .count = e.count,
          .flags = (e.repetition ? kernels::kEditRepetition : 0u) | (e.masked ? kernels::kEditMasked : 0u)};
    }
  }
  if (at > 0) {
    TANDEM_CUDA_CHECK(cudaMemcpyAsync(edits_->data(), edits, at * sizeof(kernels::LogitEdit),
                                      cudaMemcpyHostToDevice, stream));
  }
  return absl::OkStatus();
}

absl::Status DeviceSampler::Launch(float* logits, int rows, cudaStream_t stream) {
  if (rows > max_rows_) {
    return absl::InvalidArgumentError(
        absl::StrCat("device sampler: ", rows, " rows, expected at most ", max_rows_));
  }
  if (rows <= 0) return absl::OkStatus();
  TANDEM_CUDA_CHECK(cudaMemcpyAsync(params_->data(), host_params_.as<void>(),
                                    static_cast<size_t>(rows) * sizeof(kernels::SampleRowParams),
                                    cudaMemcpyHostToDevice, stream));
  TANDEM_CUDA_CHECK(kernels::SampleRows(logits, rows, vocab_,
                                        static_cast<const kernels::SampleRowParams*>(params_->data()),
                                        tokens_->as<int32_t>(), stream));
  TANDEM_CUDA_CHECK(cudaMemcpyAsync(host_tokens_.as<int32_t>(), tokens_->data(),
                                    static_cast<size_t>(rows) * sizeof(int32_t), cudaMemcpyDeviceToHost,
                                    stream));
  return absl::OkStatus();
}

}  // namespace tandem::backend::cuda
