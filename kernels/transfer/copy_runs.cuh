// Gather / scatter of byte runs on one device, for packing scattered KV blocks into one contiguous
// buffer before a transfer and unpacking them after (the nccl transport's staging). One launch moves
// up to kMaxCopyRunsPerLaunch runs; CopyRuns splits longer lists into several launches.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tandem::kernels {

// One run: `bytes` from device address `src` to device address `dst` (same device, no overlap).
// Layout (host and device): 3 × u64 = 24 bytes.
struct CopyRun {
  uint64_t src;
  uint64_t dst;
  uint64_t bytes;
};

inline constexpr int kMaxCopyRunsPerLaunch = 128;  // 3 KiB of kernel parameters

// Copies every run (16-byte vectors where a run's addresses and size allow, bytes otherwise).
// `runs` is host memory, passed by value to the kernels. Returns the first launch error.
cudaError_t CopyRuns(const CopyRun* runs, int num_runs, cudaStream_t stream);

}  // namespace tandem::kernels
