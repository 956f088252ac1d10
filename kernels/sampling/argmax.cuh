// Greedy sampling on the device: the index of the largest value of each fp32 row, the lowest index
// on ties (as the CPU sampler's Argmax), so only one int per row leaves the GPU for greedy requests.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tandem::kernels {

// out[r] = argmax(x[r, 0:cols]) for r < rows; x rows of stride cols. NaNs are never chosen.
cudaError_t ArgmaxRows(const float* x, int rows, int cols, int32_t* out, cudaStream_t stream);

}  // namespace tandem::kernels
