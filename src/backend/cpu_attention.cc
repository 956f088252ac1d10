#include "cpu_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu_dot.h"

namespace tandem::backend::cpu {

void WriteKv(const float* k, const float* v, int ld, const BatchView& batch, KvPool& cache, int layer) {
  const KvCacheSpec& spec = cache.spec();
  const int hd = spec.head_dim, bs = spec.block_size, nkv = spec.num_kv_heads;
  float* base = cache.LayerBase(layer);
  for (int t = 0; t < batch.num_tokens; ++t) {
    const int64_t slot = batch.slot_mapping[t];
    const int64_t block = slot / bs, offset = slot % bs;
    // Block layout: [2, nkv, bs, hd].
    float* kb = base + block * spec.FloatsPerBlock();
    float* vb = kb + static_cast<int64_t>(nkv) * bs * hd;
    for (int g = 0; g < nkv; ++g) {
      std::memcpy(kb + (static_cast<int64_t>(g) * bs + offset) * hd, k + static_cast<int64_t>(t) * ld + g * hd,
                  sizeof(float) * static_cast<size_t>(hd));
      std::memcpy(vb + (static_cast<int64_t>(g) * bs + offset) * hd, v + static_cast<int64_t>(t) * ld + g * hd,
                  sizeof(float) * static_cast<size_t>(hd));
    }
  }
}

namespace {

// One query head of one token: out[0:hd] = softmax(q . K[0:ctx] * scale) @ V[0:ctx].
void AttendOne(const float* q, const float* layer_base, const int32_t* block_table, int ctx, int kv_head,
               const KvCacheSpec& spec, float scale, float* scores, float* out) {
  const int hd = spec.head_dim, bs = spec.block_size, nkv = spec.num_kv_heads;
  const int64_t fpb = spec.FloatsPerBlock();
  const int64_t head_off = static_cast<int64_t>(kv_head) * bs * hd;
  const int64_t v_off = static_cast<int64_t>(nkv) * bs * hd;
  float max_score = -INFINITY;
  for (int j = 0; j < ctx; ++j) {
    const float* kj = layer_base + block_table[j / bs] * fpb + head_off + static_cast<int64_t>(j % bs) * hd;
    const float s = Dot(q, kj, hd) * scale;
    scores[j] = s;
    max_score = std::max(max_score, s);
  }
  float sum = 0.0f;
  for (int j = 0; j < ctx; ++j) {
    scores[j] = std::exp(scores[j] - max_score);
    sum += scores[j];
  }
  const float inv = 1.0f / sum;
  std::fill(out, out + hd, 0.0f);
  for (int j = 0; j < ctx; ++j) {
    const float* vj =
        layer_base + block_table[j / bs] * fpb + v_off + head_off + static_cast<int64_t>(j % bs) * hd;
    const float p = scores[j] * inv;
    for (int d = 0; d < hd; ++d) out[d] += p * vj[d];
  }
}

}  // namespace

void PagedAttention(const float* q, int ld_q, const BatchView& batch, const KvPool& cache, int layer,
                    int num_heads, float scale, float* out, ThreadPool& pool) {
  const KvCacheSpec& spec = cache.spec();
  const int hd = spec.head_dim;
  const int group = num_heads / spec.num_kv_heads;
  const float* base = cache.LayerBase(layer);
  const int64_t items = static_cast<int64_t>(batch.num_tokens) * num_heads;
  pool.ParallelFor(items, [&](int64_t item) {
    thread_local std::vector<float> scores;
    if (scores.size() < static_cast<size_t>(batch.max_context_len)) scores.resize(static_cast<size_t>(batch.max_context_len));
    const int t = static_cast<int>(item / num_heads), h = static_cast<int>(item % num_heads);
    const int s = batch.token_seq[t];
    const int ctx = batch.positions[t] + 1;
    const int32_t* table = batch.block_tables + static_cast<int64_t>(s) * batch.max_blocks_per_seq;
    AttendOne(q + static_cast<int64_t>(t) * ld_q + h * hd, base, table, ctx, h / group, spec, scale, scores.data(),
              out + (static_cast<int64_t>(t) * num_heads + h) * hd);
  });
}

}  // namespace tandem::backend::cpu
