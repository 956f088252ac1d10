#include <cooperative_groups.h>

#include <atomic>

#include "sampling/sample_rows.cuh"

namespace tandem::kernels {
namespace {

namespace cg = cooperative_groups;

constexpr int kThreads = 1024;
constexpr int kDigitBits = 10;  // every digit but the first of a rank key
constexpr int kIdBits = 18;
static_assert(kSampleMaxVocab == 1 << kIdBits);
constexpr uint64_t kIdMask = (uint64_t{1} << kIdBits) - 1;
// (logit, id): five digits of 10 bits. (A 12-bit first digit measured slower: fewer lanes of a warp
// share a bucket, so more atomics; kernels/sampling/NOTES.md.)
constexpr int kRankKeyBits = 32 + kIdBits, kRankFirstBits = 10;
constexpr int kIdKeyBits = 2 * kDigitBits, kIdFirstBits = 10;  // id alone: two digits of 10 bits
static_assert(kRankKeyBits - kRankFirstBits == 4 * kDigitBits && kIdKeyBits - kIdFirstBits == kDigitBits &&
              kIdKeyBits >= kIdBits);
constexpr int kMaxBuckets = 1 << kRankFirstBits;
static_assert(kMaxBuckets % kThreads == 0);
constexpr float kFixedOne = 2147483648.0f;  // 2^31: a probability of 1 in fixed point (fits 32 bits)
// A histogram bucket's weight is kept in three 32-bit counters of 11-bit parts (shared-memory atomics
// are native in 32 bits; 64-bit ones are a compare-and-swap loop): each part's sum over a row stays
// below 2^18 * 2^11.
constexpr int kPartBits = 11;
constexpr uint32_t kPartMask = (1u << kPartBits) - 1;
static_assert(3 * kPartBits >= 32);

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

// A row is split over a cluster of CTAs (one SM each: 8 when the rows are few, down to 1 when they fill
// the GPU): every pass over the row runs on that many SMs, each over its slice [begin, end), and the
// CTAs combine their partial results through distributed shared memory. Every CTA then takes the same
// decisions from the same combined figures.
struct Slice {
  int begin, end;  // token ids
};

// Calls f(i, valid, Clean(row[i])) for every index of the slice the thread owns, all threads of the
// CTA the same number of times (valid false past the slice), with kUnroll loads in flight before the
// calls: a pass is bound by how many loads wait at once.
constexpr int kUnroll = 8;
template <typename F>
__device__ __forceinline__ void ForEachInRow(const float* row, Slice slice, F f) {
  for (int base = slice.begin; base < slice.end; base += kThreads * kUnroll) {
    float x[kUnroll];
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      const int i = base + k * kThreads + static_cast<int>(threadIdx.x);
      x[k] = i < slice.end ? row[i] : -INFINITY;
    }
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      const int i = base + k * kThreads + static_cast<int>(threadIdx.x);
      f(i, i < slice.end, Clean(x[k]));
    }
  }
}

// (value, index) with the larger value first, the lower index on ties.
__device__ __forceinline__ void Better(float& v, int& i, float ov, int oi) {
  if (ov > v || (ov == v && oi < i)) {
    v = ov;
    i = oi;
  }
}

// Elements of the slice a select's second digit counts, kept (their ids) for the digits after it,
// which then read these instead of the whole slice; a slice with more goes on reading all of it.
constexpr int kListed = 4096;

struct Shared {
  uint32_t hist[3][kMaxBuckets];  // 11-bit parts of each bucket's weight
  int32_t listed[kListed];
  int num_listed;
  uint64_t warp_total[kThreads / 32];
  float warp_best[kThreads / 32];
  int warp_index[kThreads / 32];
  int digit;
  uint64_t above;
  // This CTA's partial result, read by the cluster's other CTAs, and the combined one.
  float part_best, cluster_best;
  int part_index, cluster_index;
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

// The argmax of the row: largest value, lowest index on ties; (max, index) to every thread.
__device__ void ClusterArgmax(const float* row, Slice slice, int vocab, Shared& sh, cg::cluster_group& cluster,
                              float* max_out, int* index_out) {
  float best = -INFINITY;
  int best_i = vocab;  // "none yet": loses every tie against a real index
  ForEachInRow(row, slice, [&](int i, bool valid, float x) {
    if (valid) Better(best, best_i, x, i);
  });
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
  if (threadIdx.x == 0) {
    sh.part_best = best;
    sh.part_index = best_i;
  }
  cluster.sync();
  if (threadIdx.x == 0) {
    for (unsigned r = 0; r < cluster.num_blocks(); ++r) {
      Better(best, best_i, *cluster.map_shared_rank(&sh.part_best, r), *cluster.map_shared_rank(&sh.part_index, r));
    }
    sh.cluster_best = best;
    sh.cluster_index = best_i;
  }
  cluster.sync();
  *max_out = sh.cluster_best;
  *index_out = sh.cluster_index < vocab ? sh.cluster_index : 0;  // an all -inf row gives 0, as the CPU's
}

// Members in descending key order e1, e2, ... (weight(i, x, key) > 0; keys distinct): returns the key
// of the first e_j whose cumulative weight W(e1..e_j) exceeds target_of(the members' total W) (a target
// below that total; the first digit's histogram gives the total, so no pass of its own) and
// sets *above = W(e1..e_{j-1}). One pass over the row per 10-bit digit of the key.
template <int kKeyBits, int kFirstBits, typename TargetFn, typename KeyFn, typename WeightFn>
__device__ uint64_t RadixSelect(const float* row, Slice slice, TargetFn target_of, Shared& sh,
                                cg::cluster_group& cluster, KeyFn key_of, WeightFn weight_of, uint64_t* above) {
  uint64_t prefix = 0, cum = 0, target = 0;
  const int lane = threadIdx.x % 32;
  int width = kFirstBits;
  bool use_list = false;  // this CTA's later digits read sh.listed
  for (int shift = kKeyBits - kFirstBits, pass = 0; shift >= 0; shift -= kDigitBits, width = kDigitBits, ++pass) {
    const int buckets = 1 << width;
    for (int b = threadIdx.x; b < buckets; b += kThreads) {
      for (int part = 0; part < 3; ++part) sh.hist[part][b] = 0;
    }
    const bool make_list = pass == 1 && shift >= kDigitBits;  // the second digit, with digits after it
    if (threadIdx.x == 0) {
      sh.digit = -1;
      if (make_list) sh.num_listed = 0;
    }
    __syncthreads();
    // Whole warps go through the row together: lanes with the same bucket add their weights first
    // (match + reduce), then one lane per bucket adds the sums.
    auto visit = [&](int i, bool valid, float x) {
      int bucket = -1;
      uint64_t w = 0;
      if (valid) {
        const uint64_t k = key_of(i, x);
        if ((k >> (shift + width)) == prefix) {
          w = weight_of(i, x, k);
          if (w != 0) bucket = static_cast<int>((k >> shift) & static_cast<uint64_t>(buckets - 1));
        }
      }
      if (!__any_sync(0xffffffffu, bucket >= 0)) return;  // later digits: most warps have nothing to add
      if (make_list) {  // a warp's counted elements take consecutive slots
        const uint32_t counted = __ballot_sync(0xffffffffu, bucket >= 0);
        int base = 0;
        if (lane == 0) base = atomicAdd(&sh.num_listed, __popc(counted));
        base = __shfl_sync(0xffffffffu, base, 0);
        const int slot = base + __popc(counted & ((1u << lane) - 1u));
        if (bucket >= 0 && slot < kListed) sh.listed[slot] = i;
      }
      const uint32_t peers = __match_any_sync(0xffffffffu, bucket);
      const uint32_t p0 = __reduce_add_sync(peers, static_cast<uint32_t>(w) & kPartMask);
      const uint32_t p1 = __reduce_add_sync(peers, static_cast<uint32_t>(w >> kPartBits) & kPartMask);
      const uint32_t p2 = __reduce_add_sync(peers, static_cast<uint32_t>(w >> (2 * kPartBits)));
      if (bucket >= 0 && lane == __ffs(peers) - 1) {
        atomicAdd(&sh.hist[0][bucket], p0);
        atomicAdd(&sh.hist[1][bucket], p1);
        atomicAdd(&sh.hist[2][bucket], p2);
      }
    };
    if (use_list) {
      const int listed = sh.num_listed;
      for (int base = 0; base < listed; base += kThreads) {
        const int j = base + static_cast<int>(threadIdx.x);
        const int i = j < listed ? sh.listed[j] : slice.begin;
        visit(i, j < listed, Clean(row[i]));
      }
    } else {
      ForEachInRow(row, slice, visit);
    }
    cluster.sync();  // every CTA's histogram of its slice is complete
    if (make_list) use_list = sh.num_listed <= kListed;
    // Thread t takes `per` digits downwards from the largest: their sum over the cluster's CTAs, a
    // scan over the threads, then the crossing digit within the thread's own.
    const int per = buckets > kThreads ? buckets / kThreads : 1;
    const int top = buckets - 1 - static_cast<int>(threadIdx.x) * per;
    auto weight_at = [&](int d) {
      uint64_t w = 0;
      for (unsigned r = 0; r < cluster.num_blocks(); ++r) {
        const Shared& remote = *cluster.map_shared_rank(&sh, r);
        w += uint64_t{remote.hist[0][d]} + (uint64_t{remote.hist[1][d]} << kPartBits) +
             (uint64_t{remote.hist[2][d]} << (2 * kPartBits));
      }
      return w;
    };
    uint64_t local = 0;
    for (int j = 0; j < per; ++j) local += top - j >= 0 ? weight_at(top - j) : 0;
    const uint64_t incl = BlockInclusiveSum(local, sh);
    if (pass == 0) target = target_of(sh.warp_total[kThreads / 32 - 1]);  // the whole histogram's total
    uint64_t running = cum + incl - local;
    for (int j = 0; j < per && top - j >= 0; ++j) {
      const uint64_t v = weight_at(top - j);
      if (v != 0 && running <= target && target < running + v) {
        sh.digit = top - j;
        sh.above = running;
      }
      running += v;
    }
    __syncthreads();
    if (sh.digit < 0) {  // target past the total: cannot happen for a valid target
      cluster.sync();
      *above = cum;
      return kNotFound;
    }
    prefix = (prefix << width) | static_cast<uint64_t>(sh.digit);
    cum = sh.above;
    cluster.sync();  // the remote histogram reads are done before anyone zeroes theirs
  }
  *above = cum;
  return prefix;
}

template <int kSlices>
__global__ void __cluster_dims__(kSlices, 1, 1) __launch_bounds__(kThreads)
    SampleRowsKernel(float* __restrict__ logits, int vocab, const SampleRowParams* __restrict__ params,
                     int32_t* __restrict__ out) {
  extern __shared__ __align__(16) unsigned char smem[];
  Shared& sh = *reinterpret_cast<Shared*>(smem);
  cg::cluster_group cluster = cg::this_cluster();
  const int r = static_cast<int>(blockIdx.x) / kSlices;
  const int per_slice = (vocab + kSlices * 32 - 1) / (kSlices * 32) * 32;  // whole 128-byte lines
  const int rank = static_cast<int>(cluster.block_rank());
  const Slice slice{min(vocab, rank * per_slice), min(vocab, (rank + 1) * per_slice)};
  const bool writer = rank == 0 && threadIdx.x == 0;
  const SampleRowParams p = params[r];
  float* row = logits + static_cast<int64_t>(r) * vocab;
  for (int e = threadIdx.x; e < p.num_edits; e += kThreads) {  // each CTA edits its own slice
    const LogitEdit edit = p.edits[e];
    if (edit.token < slice.begin || edit.token >= slice.end) continue;
    float x = row[edit.token] + edit.bias;
    if ((edit.flags & kEditRepetition) != 0 && p.repetition_penalty != 1.0f) {
      x = x > 0.0f ? x / p.repetition_penalty : x * p.repetition_penalty;
    }
    if (edit.count > 0) x -= p.presence_penalty + p.frequency_penalty * static_cast<float>(edit.count);
    if ((edit.flags & kEditMasked) != 0) x = -INFINITY;
    row[edit.token] = x;
  }
  __syncthreads();  // the CTA's global writes are visible to the CTA (the cluster: at its next sync)

  float max_logit;
  int argmax;
  ClusterArgmax(row, slice, vocab, sh, cluster, &max_logit, &argmax);
  if (p.mode == SampleMode::kArgmax || max_logit == -INFINITY) {
    if (writer) out[r] = argmax;
    return;
  }

  const float inv_t = p.inv_temperature, min_p = p.min_p;
  auto prob = [=](float x) { return x == -INFINITY ? 0.0f : expf((x - max_logit) * inv_t); };
  auto fixed = [](float pr) { return uint64_t{__float2uint_rn(pr * kFixedOne)}; };
  auto rank_key = [](int i, float x) { return RankKey(x, i); };
  uint64_t above = 0;

  // top_k: every key from the k-th largest up stays.
  uint64_t lowest = 0;
  if (p.top_k > 0 && p.top_k < vocab) {
    auto one = [](int, float, uint64_t) { return uint64_t{1}; };
    auto kth = [&](uint64_t) { return static_cast<uint64_t>(p.top_k - 1); };
    lowest = RadixSelect<kRankKeyBits, kRankFirstBits>(row, slice, kth, sh, cluster, rank_key, one, &above);
  }
  // min_p on top: a member's weight is its fixed-point probability.
  auto member = [=](int, float x, uint64_t k) {
    if (k < lowest) return uint64_t{0};
    const float pr = prob(x);
    return pr < min_p ? uint64_t{0} : fixed(pr);
  };
  // A total of 0 (every member's weight rounds to 0) finds no digit: the argmax, as the CPU's.
  int chosen;
  if (p.top_p < 1.0f) {
    // The smallest prefix (descending logit) whose mass reaches top_p of the total, then a draw in it.
    auto nucleus = [&](uint64_t total) {
      const double reach = ::ceil(static_cast<double>(p.top_p) * static_cast<double>(total));
      return reach < 1.0 || total == 0 ? uint64_t{0} : Below(static_cast<uint64_t>(reach) - 1, total);
    };
    const uint64_t last =
        RadixSelect<kRankKeyBits, kRankFirstBits>(row, slice, nucleus, sh, cluster, rank_key, member, &above);
    if (last == kNotFound) {
      chosen = -1;
    } else {
      const int last_id = IdOfKey(last);
      const uint64_t kept = above + member(last_id, Clean(row[last_id]), last);
      auto kept_member = [=](int i, float x, uint64_t k) { return k < last ? uint64_t{0} : member(i, x, k); };
      auto draw = [&](uint64_t) { return Draw(p.uniform, kept); };
      const uint64_t key = RadixSelect<kRankKeyBits, kRankFirstBits>(row, slice, draw, sh, cluster, rank_key,
                                                                     kept_member, &above);
      chosen = key == kNotFound ? -1 : IdOfKey(key);
    }
  } else {
    // A draw walking the members by ascending id.
    auto id_key = [](int i, float) { return kIdMask - static_cast<uint64_t>(i); };
    auto id_member = [=](int i, float x, uint64_t) { return member(i, x, RankKey(x, i)); };
    auto draw = [&](uint64_t total) { return total == 0 ? uint64_t{0} : Draw(p.uniform, total); };
    const uint64_t key =
        RadixSelect<kIdKeyBits, kIdFirstBits>(row, slice, draw, sh, cluster, id_key, id_member, &above);
    chosen = key == kNotFound ? -1 : static_cast<int>(kIdMask - key);
  }
  if (writer) out[r] = chosen >= 0 && chosen < vocab ? chosen : argmax;
}

constexpr int kMaxDevices = 64;
std::atomic<int> g_sms[kMaxDevices];  // per device once prepared: its SM count

template <int kSlices>
cudaError_t Prepare() {
  return cudaFuncSetAttribute(SampleRowsKernel<kSlices>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(sizeof(Shared)));
}

}  // namespace

cudaError_t PrepareSampleRows() {
  // Per device: the kernels' shared memory may exceed the 48 KB a launch gets without asking.
  int device = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  if (device >= kMaxDevices) return cudaErrorInvalidDevice;
  if (g_sms[device].load(std::memory_order_acquire) > 0) return cudaSuccess;
  int sms = 0;
  for (cudaError_t e : {Prepare<1>(), Prepare<2>(), Prepare<4>(), Prepare<8>(),
                        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device)}) {
    if (e != cudaSuccess) return e;
  }
  g_sms[device].store(sms > 0 ? sms : 1, std::memory_order_release);
  return cudaSuccess;
}

cudaError_t SampleRows(float* logits, int rows, int vocab, const SampleRowParams* params, int32_t* out,
                       cudaStream_t stream) {
  if (rows < 0 || vocab <= 0 || vocab > kSampleMaxVocab) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  const cudaError_t prepared = PrepareSampleRows();
  if (prepared != cudaSuccess) return prepared;
  int device = 0;
  const cudaError_t got = cudaGetDevice(&device);
  if (got != cudaSuccess) return got;
  // As many SMs per row as keep the rows within one wave (8 at 16 rows or fewer on an H200).
  const int sms = g_sms[device].load(std::memory_order_acquire);
  const size_t smem = sizeof(Shared);
  if (rows * 8 <= sms) {
    SampleRowsKernel<8><<<rows * 8, kThreads, smem, stream>>>(logits, vocab, params, out);
  } else if (rows * 4 <= sms) {
    SampleRowsKernel<4><<<rows * 4, kThreads, smem, stream>>>(logits, vocab, params, out);
  } else if (rows * 2 <= sms) {
    SampleRowsKernel<2><<<rows * 2, kThreads, smem, stream>>>(logits, vocab, params, out);
  } else {
    SampleRowsKernel<1><<<rows, kThreads, smem, stream>>>(logits, vocab, params, out);
  }
  return cudaGetLastError();
}

}  // namespace tandem::kernels
