// The sampling of a step's logits rows on the GPU (kernels/sampling/sample_rows.cuh): the rows'
// parameters and logit edits staged on the host, then one kernel and one copy of a token per row to
// pinned memory, all capturable in a CUDA graph (the kernel reads the parameters staged for the
// current step when it runs).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sampling/sample_rows.cuh"
#include "tandem/backend/cuda_handles.h"
#include "tandem/backend/row_sampling.h"

namespace tandem::backend::cuda {

class DeviceSampler {
 public:
  // Whether the kernel takes rows of `vocab` logits (at most kernels::kSampleMaxVocab).
  static bool Supports(int vocab) { return vocab >= 1 && vocab <= kernels::kSampleMaxVocab; }
  // Up to `max_rows` rows of `vocab` logits (Supports(vocab)).
  static absl::StatusOr<std::unique_ptr<DeviceSampler>> Create(int max_rows, int vocab);

  // Stages rows [0, padded_rows): row r < full.size() is sampled as sampling[r] says where full[r] is
  // 0 (null: the plain argmax); rows the host samples (full[r] 1) and padding rows get the plain
  // argmax and keep their logits unchanged. The rows' edits are copied to the device on `stream`
  // now; the parameters when Launch's copy runs.
  // The staging must not change until the step has run: call it once per step, after the last one
  // finished.
  absl::Status Stage(std::span<const uint8_t> full, std::span<const RowSampling* const> sampling, int padded_rows,
                     cudaStream_t stream);
  // Enqueues the parameters' copy, the kernel over logits [rows, vocab] (edited in place) and the
  // tokens' copy to the host. No host synchronisation.
  absl::Status Launch(float* logits, int rows, cudaStream_t stream);
  // The tokens of the last Launch, valid once its stream has synchronised.
  std::span<const int32_t> tokens(int rows) const {
    return {host_tokens_.as<int32_t>(), static_cast<size_t>(rows)};
  }

 private:
  DeviceSampler(int max_rows, int vocab) : max_rows_(max_rows), vocab_(vocab) {}
  absl::Status Reserve(size_t edits);

  int max_rows_ = 0;
  int vocab_ = 0;
  PinnedMemory host_params_;  // [max_rows] kernels::SampleRowParams
  std::unique_ptr<DeviceMemory> params_;
  PinnedMemory host_edits_;  // [capacity] kernels::LogitEdit, grown as a step needs
  std::unique_ptr<DeviceMemory> edits_;
  size_t edit_capacity_ = 0;
  std::unique_ptr<DeviceMemory> tokens_;  // [max_rows] int32
  PinnedMemory host_tokens_;
};

}  // namespace tandem::backend::cuda
