// Error checking for CUDA runtime calls in kernel launchers and tests.
#pragma once

#include <cuda_runtime.h>

#include <string>

namespace tandem::kernels {

// "what: cudaErrorX (message)" for a failed call, "" for success.
inline std::string CudaErrorText(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return "";
  return std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
}

}  // namespace tandem::kernels

// Returns the error from the enclosing launcher (which returns cudaError_t) if `expr` failed.
#define TANDEM_CUDA_RETURN_IF_ERROR(expr)      \
  do {                                         \
    cudaError_t tandem_cuda_err_ = (expr);     \
    if (tandem_cuda_err_ != cudaSuccess) return tandem_cuda_err_; \
  } while (0)
