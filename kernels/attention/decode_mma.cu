// tandem's batch-decode attention on tensor cores (decode_mma.cuh). Per CTA: 4 warps, KV tiles of 64
// tokens through a 3-stage cp.async pipeline (K and V of a tile: 32 KB at head_dim 128), each warp
// taking 16 tokens of every tile: S = Q Kᵀ with the group's query heads as the MMA's rows (K from
// shared memory by ldmatrix), an online softmax in base 2, O += P V with P straight from S's
// accumulators (V by ldmatrix.trans); the warps' partial results meet in shared memory at the end.
#include <algorithm>
#include <cfloat>
#include <cstdint>

#include "attention/decode_mma.cuh"
#include "common/mma.cuh"
#include "common/pdl.cuh"

namespace tandem::kernels::attention_units {
namespace {

constexpr int kTile = 64;  // tokens per pipeline stage
constexpr int kWarps = 4;  // each takes 16 tokens of a tile
constexpr int kThreads = kWarps * 32;
constexpr int kStages = 3;
constexpr int kRows = 16;  // MMA rows: the GQA group's query heads, zero-padded
constexpr float kLog2e = 1.4426950408889634f;

template <int D>
constexpr size_t SmemBytes() {
  return size_t{kStages} * 2 * kTile * D * sizeof(__nv_bfloat16);
}

// Element offset of 16-byte chunk `chunk` of token row `row` in a [kTile, D] tile: XOR-swizzled so
// that the 8 rows one ldmatrix matrix reads at the same chunk sit in 8 different bank groups.
template <int D>
__device__ __forceinline__ int Swizzle(int row, int chunk) {
  return row * D + ((chunk ^ (row & 7)) << 3);
}

__device__ __forceinline__ uint32_t SmemAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, bypassing L1; zero-filled (nothing read) when !valid.
__device__ __forceinline__ void CpAsync16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void LdMatrixX4(uint32_t r[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}
__device__ __forceinline__ void LdMatrixX4Trans(uint32_t r[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// Two floats as a bf16 pair, `lo` in the low half (the lower column of an MMA fragment).
__device__ __forceinline__ uint32_t PackBf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

template <int D>
__global__ void __launch_bounds__(kThreads, 2) DecodeMmaKernel(DecodeMmaArgs a) {
  constexpr int kChunks = D / 8;                         // 16-byte chunks per token row
  constexpr int kLoads = kTile * kChunks / kThreads;     // chunks of K (and of V) per thread per tile
  extern __shared__ __align__(128) unsigned char smem_raw[];
  auto* const smem = reinterpret_cast<__nv_bfloat16*>(smem_raw);
  PdlTrigger();

  const int split = static_cast<int>(blockIdx.x), h = static_cast<int>(blockIdx.y);
  const int seq = static_cast<int>(blockIdx.z);
  const int warp = static_cast<int>(threadIdx.x) >> 5, lane = static_cast<int>(threadIdx.x) & 31;
  const int g = lane >> 2, t = lane & 3;
  const int group = a.num_qo_heads / a.num_kv_heads;
  const int bs = a.block_size;

  // The step arrays were copied before the previous kernel began: readable before PdlWait.
  const int page_begin = a.kv_indptr[seq];
  const int kv_len = (a.kv_indptr[seq + 1] - page_begin - 1) * bs + a.kv_last_page_len[seq];
  const int tiles = (kv_len + kTile - 1) / kTile;
  const int per_split = (tiles + a.num_splits - 1) / a.num_splits;
  const int tile_begin = split * per_split;
  const int num_tiles = min(tiles, tile_begin + per_split) - tile_begin;  // <= 0: an empty split
  const int token_end = min(kv_len, (tile_begin + max(num_tiles, 0)) * kTile);

  const size_t head_stride = static_cast<size_t>(bs) * D;
  const size_t kv_half = static_cast<size_t>(a.num_kv_heads) * head_stride;
  const __nv_bfloat16* const k_head = a.kv + static_cast<size_t>(h) * head_stride;
  const auto load_tile = [&](int tile, int stage) {
    __nv_bfloat16* const ks = smem + static_cast<size_t>(stage) * 2 * kTile * D;
    __nv_bfloat16* const vs = ks + kTile * D;
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int c = static_cast<int>(threadIdx.x) + i * kThreads;
      const int row = c / kChunks, chunk = c % kChunks;
      const int pos = (tile_begin + tile) * kTile + row;
      const bool valid = pos < token_end;
      const int page = valid ? __ldg(a.kv_indices + page_begin + pos / bs) : 0;
      const __nv_bfloat16* src = k_head + static_cast<size_t>(page) * 2 * kv_half +
                                 static_cast<size_t>(pos % bs) * D + chunk * 8;
      const int at = Swizzle<D>(row, chunk);
      CpAsync16(SmemAddress(ks + at), valid ? src : a.kv, valid);
      CpAsync16(SmemAddress(vs + at), valid ? src + kv_half : a.kv, valid);
    }
  };

  PdlWait();  // q and this step's K/V were written by the kernels before
#pragma unroll
  for (int i = 0; i < kStages - 1; ++i) {
    if (i < num_tiles) load_tile(i, i);
    CpAsyncCommit();
  }

  // Q as the A operand: rows = the group's query heads (zero past the group), k = head_dim.
  const __nv_bfloat16* const q0 = a.q + static_cast<size_t>(seq) * a.ld_q + static_cast<size_t>(h) * group * D;
  uint32_t qa[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const int col = kk * 16 + 2 * t;
    qa[kk][0] = g < group ? LoadAfterWait32(q0 + g * D + col) : 0u;
    qa[kk][1] = g + 8 < group ? LoadAfterWait32(q0 + (g + 8) * D + col) : 0u;
    qa[kk][2] = g < group ? LoadAfterWait32(q0 + g * D + col + 8) : 0u;
    qa[kk][3] = g + 8 < group ? LoadAfterWait32(q0 + (g + 8) * D + col + 8) : 0u;
  }

  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // rows g and g + 8
  const float scale = a.sm_scale * kLog2e;

  for (int i = 0; i < num_tiles; ++i) {
    CpAsyncWait<kStages - 2>();
    __syncthreads();  // tile i landed for every thread; every warp is done with tile i - 1's stage
    if (i + kStages - 1 < num_tiles) load_tile(i + kStages - 1, (i + kStages - 1) % kStages);
    CpAsyncCommit();
    const __nv_bfloat16* const ks = smem + static_cast<size_t>(i % kStages) * 2 * kTile * D;
    const __nv_bfloat16* const vs = ks + kTile * D;

    float s[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
    {
      const int row = warp * 16 + (lane & 7) + ((lane >> 4) << 3);
      const int half = (lane >> 3) & 1;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t b[4];
        LdMatrixX4(b, SmemAddress(ks + Swizzle<D>(row, 2 * kk + half)));
        MmaBf16(s[0], qa[kk], b[0], b[1]);
        MmaBf16(s[1], qa[kk], b[2], b[3]);
      }
    }
    const int tok0 = (tile_begin + i) * kTile + warp * 16 + 2 * t;
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < 2; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[j][e] = tok0 + 8 * j + (e & 1) < token_end ? s[j][e] * scale : -INFINITY;
        mx[e >> 1] = fmaxf(mx[e >> 1], s[j][e]);
      }
    }
    float base[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float m_new = fmaxf(m[r], mx[r]);
      base[r] = m_new == -INFINITY ? 0.f : m_new;  // nothing seen yet: every p is 0, no NaN
      const float correction = exp2f(m[r] - base[r]);
      m[r] = m_new;
      l[r] *= correction;
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        o[n][2 * r] *= correction;
        o[n][2 * r + 1] *= correction;
      }
    }
#pragma unroll
    for (int j = 0; j < 2; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[j][e] = exp2f(s[j][e] - base[e >> 1]);
        l[e >> 1] += s[j][e];
      }
    }
    const uint32_t pa[4] = {PackBf16(s[0][0], s[0][1]), PackBf16(s[0][2], s[0][3]), PackBf16(s[1][0], s[1][1]),
                            PackBf16(s[1][2], s[1][3])};
    {
      const int row = warp * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
      const int half = lane >> 4;
#pragma unroll
      for (int n2 = 0; n2 < D / 16; ++n2) {
        uint32_t b[4];
        LdMatrixX4Trans(b, SmemAddress(vs + Swizzle<D>(row, 2 * n2 + half)));
        MmaBf16(o[2 * n2], pa, b[0], b[1]);
        MmaBf16(o[2 * n2 + 1], pa, b[2], b[3]);
      }
    }
  }
  CpAsyncWait<0>();
  __syncthreads();  // the pipeline's buffers become the warps' meeting place

  float* const so = reinterpret_cast<float*>(smem_raw);  // [kWarps][kRows][D]
  float* const sm = so + kWarps * kRows * D;              // [kWarps][kRows]
  float* const sl = sm + kWarps * kRows;                  // [kWarps][kRows]
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    const int row = g + 8 * r;
    if (t == 0) {
      sm[warp * kRows + row] = m[r];
      sl[warp * kRows + row] = l[r];
    }
    if (row < group) {
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        float* const dst = so + (warp * kRows + row) * D + 8 * n + 2 * t;
        dst[0] = o[n][2 * r];
        dst[1] = o[n][2 * r + 1];
      }
    }
  }
  __syncthreads();
  for (int e = static_cast<int>(threadIdx.x); e < group * D; e += kThreads) {
    const int row = e / D, d = e % D;
    float mmax = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) mmax = fmaxf(mmax, sm[w * kRows + row]);
    float sum = 0.f, acc = 0.f;
    if (mmax != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        const float f = exp2f(sm[w * kRows + row] - mmax);
        sum += sl[w * kRows + row] * f;
        acc += so[(w * kRows + row) * D + d] * f;
      }
    }
    const int head = h * group + row;
    if (a.num_splits == 1) {
      a.out[(static_cast<size_t>(seq) * a.num_qo_heads + head) * D + d] = __float2bfloat16(acc / sum);
    } else {
      const size_t item = (static_cast<size_t>(seq) * a.num_splits + split) * a.num_qo_heads + head;
      a.partial[item * D + d] = sum > 0.f ? acc / sum : 0.f;
      if (d == 0) {
        float* const lse = a.partial + static_cast<size_t>(a.num_seqs) * a.num_splits * a.num_qo_heads * D;
        lse[item] = sum > 0.f ? mmax + log2f(sum) : -INFINITY;
      }
    }
  }
  if (a.num_splits == 1) return;

  // The last split of this (sequence, kv head) to finish merges all of them: the splits' outputs
  // weighted by their base-2 log-sum-exps (an empty split has -inf and weighs nothing).
  __shared__ bool last;
  __threadfence();  // this CTA's partials are visible before it counts itself
  __syncthreads();
  if (threadIdx.x == 0) {
    int* const counter = a.counters + seq * a.num_kv_heads + h;
    last = atomicAdd(counter, 1) == a.num_splits - 1;
    if (last) *counter = 0;  // for the next launch (a replayed graph reuses it)
  }
  __syncthreads();
  if (!last) return;
  __threadfence();  // and the other splits' partials are visible to this one
  // Each query row's split weights exp2(lse - max) / sum in shared memory (the pipeline's buffers are
  // free: group * num_splits <= 16 * 16 floats), then every output element as one fixed-order
  // sum over the splits of independent loads.
  const float* const lse = a.partial + static_cast<size_t>(a.num_seqs) * a.num_splits * a.num_qo_heads * D;
  const size_t base = static_cast<size_t>(seq) * a.num_splits * a.num_qo_heads + static_cast<size_t>(h) * group;
  const int splits = a.num_splits;
  float* const weight = reinterpret_cast<float*>(smem_raw);  // [group][splits]
  for (int e = static_cast<int>(threadIdx.x); e < group * splits; e += kThreads) {
    weight[e] = __ldcg(lse + base + static_cast<size_t>(e % splits) * a.num_qo_heads + e / splits);
  }
  __syncthreads();
  for (int row = warp; row < group; row += kWarps) {
    float* const w = weight + row * splits;
    float mmax = -INFINITY;
    for (int sp = lane; sp < splits; sp += 32) mmax = fmaxf(mmax, w[sp]);
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) mmax = fmaxf(mmax, __shfl_xor_sync(0xffffffffu, mmax, offset));
    float sum = 0.f;
    for (int sp = lane; sp < splits; sp += 32) {
      w[sp] = w[sp] == -INFINITY ? 0.f : exp2f(w[sp] - mmax);  // an empty split weighs nothing
      sum += w[sp];
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    __syncwarp();
    for (int sp = lane; sp < splits; sp += 32) w[sp] /= sum;
  }
  __syncthreads();
  const size_t split_stride = static_cast<size_t>(a.num_qo_heads) * D;
  for (int e = static_cast<int>(threadIdx.x); e < group * D; e += kThreads) {
    const int row = e / D, d = e % D;
    const float* const p = a.partial + (base + row) * D + d;
    const float* const w = weight + row * splits;
    float acc = 0.f;
#pragma unroll 8
    for (int sp = 0; sp < splits; ++sp) acc = fmaf(w[sp], __ldcg(p + sp * split_stride), acc);
    a.out[(static_cast<size_t>(seq) * a.num_qo_heads + h * group + row) * D + d] = __float2bfloat16(acc);
  }
}

}  // namespace

int DecodeMmaSplits(int num_seqs, int num_kv_heads, int num_sms, int max_tiles) {
  // Two CTAs fit on an SM (SmemBytes<128>() = 96 KB each); fill one wave without passing it, with at
  // most kMaxSplits (measured at batch 1 on the H200, 8B shape: 16 splits 13.4 µs at 1K and 19.4 at
  // 4K, 33 splits 18.0 and 21–41 µs: more splits only add to the merge).
  constexpr int64_t kMaxSplits = 16;
  const int64_t ctas = int64_t{num_seqs} * num_kv_heads;
  const int64_t slots = 2 * int64_t{num_sms};
  const int64_t splits = ctas >= slots ? 1 : slots / ctas;
  return static_cast<int>(std::max<int64_t>(1, std::min({splits, kMaxSplits, int64_t{max_tiles}})));
}

size_t DecodeMmaPartialFloats(int num_seqs, int num_splits, int num_qo_heads, int head_dim) {
  if (num_splits <= 1) return 0;
  return static_cast<size_t>(num_seqs) * num_splits * num_qo_heads * (head_dim + 1);
}

template <int kHeadDim>
cudaError_t DecodeMma(const DecodeMmaArgs& args, cudaStream_t stream) {
  if (args.num_seqs < 1 || args.num_kv_heads < 1 || args.num_qo_heads % args.num_kv_heads != 0 ||
      args.num_qo_heads / args.num_kv_heads > kDecodeMmaMaxGroup || args.num_splits < 1 ||
      args.num_splits > 16 || args.num_kv_heads > 65535 || args.num_seqs > 65535 ||
      (args.num_splits > 1 && (args.partial == nullptr || args.counters == nullptr))) {
    return cudaErrorInvalidValue;
  }
  constexpr size_t kSmem = SmemBytes<kHeadDim>();
  static const cudaError_t configured = cudaFuncSetAttribute(
      DecodeMmaKernel<kHeadDim>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmem));
  if (configured != cudaSuccess) return configured;
  const dim3 grid(static_cast<unsigned>(args.num_splits), static_cast<unsigned>(args.num_kv_heads),
                  static_cast<unsigned>(args.num_seqs));
  return LaunchPdl(DecodeMmaKernel<kHeadDim>, grid, dim3(kThreads), kSmem, stream, args);
}

template cudaError_t DecodeMma<64>(const DecodeMmaArgs&, cudaStream_t);
template cudaError_t DecodeMma<128>(const DecodeMmaArgs&, cudaStream_t);

}  // namespace tandem::kernels::attention_units
