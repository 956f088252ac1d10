// The CPU reference backend: fp32, host memory, all cores (its own thread pool), AVX2/FMA kernels where the
// build and the CPU have them and a portable path otherwise. Batch-invariant by construction: every
// output element is reduced by one thread in an order that depends only on the reduced length.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "tandem/backend/backend.h"

namespace tandem::backend {

struct CpuBackendOptions {
  int num_threads = 0;  // 0: every core the process may use
};

// Fails (FailedPrecondition) when the binary was built for AVX2/FMA and this CPU lacks them.
absl::StatusOr<std::unique_ptr<Backend>> CreateCpuBackend(const CpuBackendOptions& options = {});

// Whether the CPU kernels in this build use AVX2/FMA ("avx2+fma") or the portable path ("portable").
const char* CpuKernelIsa();

}  // namespace tandem::backend
