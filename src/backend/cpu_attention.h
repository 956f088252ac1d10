// Causal paged attention over the KV cache for the CPU backend. Internal to src/backend.
#pragma once

#include "cpu_thread_pool.h"
#include "tandem/backend/backend.h"

namespace tandem::backend::cpu {

// See Backend::PagedAttention. Work is split over (token, head) pairs; each pair is computed by one
// thread with keys visited in position order, so results do not depend on the batch or chunking.
void PagedAttention(const float* q, int ld_q, const BatchView& batch, const KvPool& cache, int layer,
                    int num_heads, float scale, float* out, ThreadPool& pool);

// See Backend::WriteKv.
void WriteKv(const float* k, const float* v, int ld, const BatchView& batch, KvPool& cache, int layer);

}  // namespace tandem::backend::cpu
