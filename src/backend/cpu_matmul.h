// Batch-invariant matmul for the CPU backend: out [n, rows] = x [n, k] @ w[rows, k]^T. Every output
// element is one Dot() (cpu_dot.h) computed by one thread, so its bits depend only on its own row of
// x and of w. Block-quantized weights (Q4_1, Q8_0) are dequantized exactly in registers (q * d is
// exact in fp32, so fma(q, d, m) rounds like the loader's q * d + m) and reduced in the same order,
// giving the same bits as the fp32 matrix they dequantize to. Tiles read each weight row once for
// several tokens. Internal to src/backend.
#pragma once

#include <cstdint>

#include "cpu_thread_pool.h"
#include "tandem/backend/backend.h"

namespace tandem::backend::cpu {

// Splits the weight rows into chunks run on `pool`.
void MatMul(const float* x, int n, const Matrix& w, float* out, ThreadPool& pool);

}  // namespace tandem::backend::cpu
