#include "sampling/sample_rows.cuh"

namespace tandem::kernels {
namespace {

constexpr int kThreads = 1024;
constexpr int kDigitBits = 10;
constexpr int kBuckets = 1 << kDigitBits;  // one per thread in the digit scan
static_assert(kBuckets == kThreads);
constexpr int kIdBits = 18;
constexpr uint64_t kIdMask = (uint64_t{1} << kIdBits) - 1;
constexpr int kRankKeyBits = 32 + kIdBits;  // (logit, id): 5 digits
constexpr int kIdKeyBits = 2 * kDigitBits;  // id alone: 2 digits
static_assert(kRankKeyBits % kDigitBits == 0 && kIdKeyBits >= kIdBits);
constexpr float kFixedOne = 1099511627776.0f;  // 2^40: a probability of 1 in fixed point

constexpr uint64_t kNotFound = ~uint64_t{0};

// min(v, bound - 1) for bound > 0.
__device__ __forceinline__ uint64_t Below(uint64_t v, uint64_t bound) { return v < bound ? v : bound - 1; }
// The fixed-point target of a draw of `uniform` (in [0, 1)) over a mass of `total`.
__device__ __forceinline__ uint64_t Draw(double uniform, uint64_t total) {
  return Below(static_cast<uint64_t>(uniform * static_cast<double>(total)), total);
}

// NaN counts as -inf and -0 as +0 (the CPU compares them equal, so their order is the id's).
__device__ __forceinline__ float Clean(float x) { return x != x ? -INFINITY : (x == 0.0f ? 0.0f : x); }

// Larger logit -> larger key; ties broken by the lower id (a larger key too).
__device__ __forceinline__ uint64_t RankKey(float x, int id) {
  const uint32_t b = __float_as_uint(x);
  const uint32_t ordered = (b & 0x80000000u) != 0 ? ~b : (b | 0x80000000u);
  return (static_cast<uint64_t>(ordered) << kIdBits) | (kIdMask - static_cast<uint64_t>(id));
}
__device__ __forceinline__ int IdOfKey(uint64_t key) { return static_cast<int>(kIdMask - (key & kIdMask)); }

// (value, index) with the larger value first, the lower index on ties.
__device__ __forceinline__ void Better(float& v, int& i, float ov, int oi) {
  if (ov > v || (ov == v && oi < i)) {
    v = ov;
    i = oi;
  }
}

struct Shared {
  uint64_t hist[kBuckets];
  uint64_t warp_total[kThreads / 32];
  float warp_best[kThreads / 32];
  int warp_index[kThreads / 32];
  int digit;
  uint64_t above;
};

// Inclusive prefix sum over the block's threads in thread order.
__device__ uint64_t BlockInclusiveSum(uint64_t v, Shared& sh) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int o = 1; o < 32; o <<= 1) {
    const uint64_t t = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o) v += t;
  }
  if (lane == 31) sh.warp_total[warp] = v;
  __syncthreads();
  if (warp == 0) {
    uint64_t w = sh.warp_total[lane];
    for (int o = 1; o < 32; o <<= 1) {
      const uint64_t t = __shfl_up_sync(0xffffffffu, w, o);
      if (lane >= o) w += t;
    }
    sh.warp_total[lane] = w;
  }
  __syncthreads();
  if (warp > 0) v += sh.warp_total[warp - 1];
  __syncthreads();  // warp_total is reused by the next call
  return v;
}

__device__ uint64_t BlockSum(uint64_t v, Shared& sh) {
  const uint64_t incl = BlockInclusiveSum(v, sh);
  __shared__ uint64_t total;
  if (threadIdx.x == kThreads - 1) total = incl;
  __syncthreads();
  const uint64_t t = total;
  __syncthreads();
  return t;
}

// The argmax of the row: largest value, lowest index on ties; (max, index) to every thread.
__device__ void BlockArgmax(const float* row, int vocab, Shared& sh, float* max_out, int* index_out) {
  float best = -INFINITY;
  int best_i = vocab;  // "none yet": loses every tie against a real index
  for (int i = threadIdx.x; i < vocab; i += kThreads) Better(best, best_i, Clean(row[i]), i);
  for (int o = 16; o > 0; o >>= 1) {
    Better(best, best_i, __shfl_xor_sync(0xffffffffu, best, o), __shfl_xor_sync(0xffffffffu, best_i, o));
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    sh.warp_best[warp] = best;
    sh.warp_index[warp] = best_i;
  }
  __syncthreads();
  best = sh.warp_best[lane];
  best_i = sh.warp_index[lane];
  for (int o = 16; o > 0; o >>= 1) {
    Better(best, best_i, __shfl_xor_sync(0xffffffffu, best, o), __shfl_xor_sync(0xffffffffu, best_i, o));
  }
  __syncthreads();
  *max_out = best;
  *index_out = best_i < vocab ? best_i : 0;  // an all -inf row gives 0, as the CPU's
}

// Members in descending key order e1, e2, ... (weight(i, x, key) > 0; keys distinct): returns the key
// of the first e_j whose cumulative weight W(e1..e_j) exceeds `target` (< the members' total) and
// sets *above = W(e1..e_{j-1}). One pass over the row per 10-bit digit of the key.
template <int kKeyBits, typename KeyFn, typename WeightFn>
__device__ uint64_t RadixSelect(const float* row, int vocab, uint64_t target, Shared& sh, KeyFn key_of,
                                WeightFn weight_of, uint64_t* above) {
  uint64_t prefix = 0, cum = 0;
  for (int shift = kKeyBits - kDigitBits; shift >= 0; shift -= kDigitBits) {
    sh.hist[threadIdx.x] = 0;
    if (threadIdx.x == 0) sh.digit = -1;
    __syncthreads();
    for (int i = threadIdx.x; i < vocab; i += kThreads) {
      const float x = Clean(row[i]);
      const uint64_t k = key_of(i, x);
      if ((k >> (shift + kDigitBits)) != prefix) continue;
      const uint64_t w = weight_of(i, x, k);
      if (w != 0) atomicAdd(reinterpret_cast<unsigned long long*>(&sh.hist[(k >> shift) & (kBuckets - 1)]), w);
    }
    __syncthreads();
    const int digit = kBuckets - 1 - static_cast<int>(threadIdx.x);  // thread 0 takes the largest digit
    const uint64_t v = sh.hist[digit];
    const uint64_t incl = BlockInclusiveSum(v, sh);
    if (v != 0 && cum + incl - v <= target && target < cum + incl) {
      sh.digit = digit;
      sh.above = cum + incl - v;
    }
    __syncthreads();
    if (sh.digit < 0) {  // target past the total: cannot happen for a valid target
      *above = cum;
      return kNotFound;
    }
    prefix = (prefix << kDigitBits) | static_cast<uint64_t>(sh.digit);
    cum = sh.above;
    __syncthreads();
  }
  *above = cum;
  return prefix;
}

__global__ void __launch_bounds__(kThreads)
    SampleRowsKernel(float* __restrict__ logits, int vocab, const SampleRowParams* __restrict__ params,
                     int32_t* __restrict__ out) {
  __shared__ Shared sh;
  const SampleRowParams p = params[blockIdx.x];
  float* row = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  for (int e = threadIdx.x; e < p.num_edits; e += kThreads) {
    const LogitEdit edit = p.edits[e];
    if (edit.token < 0 || edit.token >= vocab) continue;
    float x = row[edit.token] + edit.bias;
    if ((edit.flags & kEditRepetition) != 0 && p.repetition_penalty != 1.0f) {
      x = x > 0.0f ? x / p.repetition_penalty : x * p.repetition_penalty;
    }
    if (edit.count > 0) x -= p.presence_penalty + p.frequency_penalty * static_cast<float>(edit.count);
    if ((edit.flags & kEditMasked) != 0) x = -INFINITY;
    row[edit.token] = x;
  }
  __syncthreads();  // the block's global writes are visible to the block after the barrier

  float max_logit;
  int argmax;
  BlockArgmax(row, vocab, sh, &max_logit, &argmax);
  if (p.mode == SampleMode::kArgmax || max_logit == -INFINITY) {
    if (threadIdx.x == 0) out[blockIdx.x] = argmax;
    return;
  }

  const float inv_t = p.inv_temperature, min_p = p.min_p;
  auto prob = [=](float x) { return x == -INFINITY ? 0.0f : expf((x - max_logit) * inv_t); };
  auto fixed = [](float pr) { return static_cast<uint64_t>(__float2ull_rn(pr * kFixedOne)); };
  auto rank_key = [](int i, float x) { return RankKey(x, i); };
  uint64_t above = 0;

  // top_k: every key from the k-th largest up stays.
  uint64_t lowest = 0;
  if (p.top_k > 0 && p.top_k < vocab) {
    auto one = [](int, float, uint64_t) { return uint64_t{1}; };
    lowest = RadixSelect<kRankKeyBits>(row, vocab, static_cast<uint64_t>(p.top_k - 1), sh, rank_key, one, &above);
  }
  // min_p on top: a member's weight is its fixed-point probability.
  auto member = [=](int, float x, uint64_t k) {
    if (k < lowest) return uint64_t{0};
    const float pr = prob(x);
    return pr < min_p ? uint64_t{0} : fixed(pr);
  };
  uint64_t local = 0;
  for (int i = threadIdx.x; i < vocab; i += kThreads) {
    const float x = Clean(row[i]);
    local += member(i, x, RankKey(x, i));
  }
  const uint64_t total = BlockSum(local, sh);
  if (total == 0) {
    if (threadIdx.x == 0) out[blockIdx.x] = argmax;
    return;
  }

  int chosen;
  if (p.top_p < 1.0f) {
    // The smallest prefix (descending logit) whose mass reaches top_p of the total, then a draw in it.
    const double reach = ::ceil(static_cast<double>(p.top_p) * static_cast<double>(total));
    const uint64_t target = reach < 1.0 ? 0 : Below(static_cast<uint64_t>(reach) - 1, total);
    const uint64_t last = RadixSelect<kRankKeyBits>(row, vocab, target, sh, rank_key, member, &above);
    if (last == kNotFound) {
      chosen = -1;
    } else {
      const int last_id = IdOfKey(last);
      const uint64_t kept = above + member(last_id, Clean(row[last_id]), last);
      auto kept_member = [=](int i, float x, uint64_t k) { return k < last ? uint64_t{0} : member(i, x, k); };
      const uint64_t key = RadixSelect<kRankKeyBits>(row, vocab, Draw(p.uniform, kept), sh, rank_key, kept_member,
                                                     &above);
      chosen = key == kNotFound ? -1 : IdOfKey(key);
    }
  } else {
    // A draw walking the members by ascending id.
    auto id_key = [](int i, float) { return kIdMask - static_cast<uint64_t>(i); };
    auto id_member = [=](int i, float x, uint64_t) { return member(i, x, RankKey(x, i)); };
    const uint64_t key = RadixSelect<kIdKeyBits>(row, vocab, Draw(p.uniform, total), sh, id_key, id_member, &above);
    chosen = key == kNotFound ? -1 : static_cast<int>(kIdMask - key);
  }
  if (threadIdx.x == 0) out[blockIdx.x] = chosen >= 0 && chosen < vocab ? chosen : argmax;
}

}  // namespace

cudaError_t SampleRows(float* logits, int rows, int vocab, const SampleRowParams* params, int32_t* out,
                       cudaStream_t stream) {
  if (rows < 0 || vocab <= 0 || vocab > kSampleMaxVocab) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  SampleRowsKernel<<<rows, kThreads, 0, stream>>>(logits, vocab, params, out);
  return cudaGetLastError();
}

}  // namespace tandem::kernels
