// The NVFP4 weight-only GEMM for Hopper (nvfp4_gemm.cuh; NOTES.md has its versions and times): the
// pipelined split-K kernel over packed e2m1 weights with their e4m3 scales, its launch plan, the
// host-side repacking of a checkpoint's tensors into the kernel's tiles, and the dequantization to
// bf16. Over 600 lines because the kernel, its tile constants, the plan that sizes its grid and the
// repacking that feeds it are one unit; the tile layout is its own header (nvfp4_layout.cuh).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>

#include "common/cuda_check.cuh"
#include "common/mma.cuh"
#include "gemm/nvfp4_gemm.cuh"
#include "gemm/nvfp4_layout.cuh"

namespace tandem::kernels {
namespace {

using nvfp4::kCodeTileBytes;
using nvfp4::kKernelScale;
using nvfp4::kScaleTileBytes;
using nvfp4::kStepK;
using nvfp4::kTileN;

constexpr int kStages = 4;              // pipeline stages: 3 in flight ahead of the one computed
constexpr int kMaxSplits = 16;          // split-K: at most this many blocks per output tile ...
constexpr int kMinStepsPerSplit = 16;   // ... each with at least 256 inputs
constexpr int kMaxColumnTiles = 65535;  // gridDim.y

// ---------------------------------------------------------------------------------------------------
// Plan: which compiled configuration and how many k-splits, from the shapes and the SM count only.

struct GemmPlan {
  int m_tiles = 1;   // 16-row mma tiles per block: 1, 2 or 4
  int warps = 8;     // warps per block, splitting the k-steps of each stage
  int m_blocks = 0;  // ceil(m / (16 m_tiles))
  int n_tiles = 0;   // ceil(n / 64)
  int ks_total = 0;  // k / 16
  int splits = 1;    // blocks per output tile along k
  int ks_per_split = 0;
  size_t counter_bytes = 0;  // [m_blocks][n_tiles] int, 256-byte aligned; 0 without split-K
  size_t partial_bytes = 0;  // [splits][m][n_tiles * 64] fp32; 0 without split-K
};

bool ShapeSupported(int n, int k) {
  return n > 0 && k > 0 && k % kStepK == 0 && (n + kTileN - 1) / kTileN <= kMaxColumnTiles;
}

// Configurations by m: one 16-row tile and 8 warps (decode; 3 blocks fit an SM), two tiles and 8
// warps, four tiles and 4 warps (2 blocks per SM each). Split-K only when the output tiles cannot
// fill one wave of resident blocks: then as many splits as fill it (a decode GEMM is a few
// microseconds, about one block's latency, so every block should start at once and put its whole
// share of the weight in flight). Larger problems run one block per tile, in waves.
GemmPlan MakePlan(int m, int n, int k, int num_sms) {
  GemmPlan p;
  int blocks_per_sm;
  if (m <= 16) {
    p.m_tiles = 1;
    p.warps = 8;
    blocks_per_sm = 3;
  } else if (m <= 32) {
    p.m_tiles = 2;
    p.warps = 8;
    blocks_per_sm = 2;
  } else {
    p.m_tiles = 4;
    p.warps = 4;
    blocks_per_sm = 2;
  }
  p.m_blocks = (m + 16 * p.m_tiles - 1) / (16 * p.m_tiles);
  p.n_tiles = (n + kTileN - 1) / kTileN;
  p.ks_total = k / kStepK;
  const long tiles = static_cast<long>(p.m_blocks) * p.n_tiles;
  const long slots = static_cast<long>(num_sms) * blocks_per_sm;
  int splits = 1;
  if (tiles < slots) {
    splits = static_cast<int>(std::min<long>({slots / tiles, p.ks_total / kMinStepsPerSplit, kMaxSplits}));
    splits = std::max(splits, 1);
  }
  p.ks_per_split = (p.ks_total + splits - 1) / splits;
  p.splits = (p.ks_total + p.ks_per_split - 1) / p.ks_per_split;  // no empty split
  if (p.splits > 1) {
    p.counter_bytes = (static_cast<size_t>(tiles) * sizeof(int) + 255) / 256 * 256;
    p.partial_bytes = static_cast<size_t>(p.splits) * m * p.n_tiles * kTileN * sizeof(float);
  }
  return p;
}

// SM count of the current device, queried once per device (devices past 63: every call).
cudaError_t CurrentSmCount(int* sms) {
  static std::atomic<int> cached[64];  // zero-initialized: not queried yet
  int device = 0;
  TANDEM_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  if (device < 64 && (*sms = cached[device].load(std::memory_order_relaxed)) > 0) return cudaSuccess;
  TANDEM_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(sms, cudaDevAttrMultiProcessorCount, device));
  if (device < 64) cached[device].store(*sms, std::memory_order_relaxed);
  return cudaSuccess;
}

// ---------------------------------------------------------------------------------------------------
// Device side.

// Everything a launch needs, by value in the kernel's parameter space.
struct GemmParams {
  const __nv_bfloat16* x;  // [m, k] row-major
  const uint8_t* codes;    // [n_tiles][ks_total][512] (nvfp4_layout.cuh)
  const uint8_t* scales;   // [n_tiles][ks_total][64]
  __nv_bfloat16* out;      // [m, n] row-major
  float* partials;         // [splits][m][n_tiles * 64] fp32, when splits > 1
  int* counters;           // [m_blocks][n_tiles], zero between launches, when splits > 1
  int m, n, k;
  int n_tiles, ks_total, splits, ks_per_split;
  int num_parts;
  int part_begin[kNvfp4MaxParts];
  float part_alpha[kNvfp4MaxParts];  // scale2 * 2^7 per part
};

__device__ __forceinline__ float PartAlpha(const GemmParams& p, int col) {
  float alpha = p.part_alpha[0];
#pragma unroll
  for (int i = 1; i < kNvfp4MaxParts; ++i) {
    if (i < p.num_parts && col >= p.part_begin[i]) alpha = p.part_alpha[i];
  }
  return alpha;
}

__device__ __forceinline__ uint32_t SharedAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Hopper bulk copies (cp.async.bulk, no tensor map) that signal an mbarrier with their byte count.
__device__ __forceinline__ void MbarrierInit(uint32_t bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void MbarrierArriveExpectTx(uint32_t bar, uint32_t bytes) {
  asm volatile(
      "{\n .reg .b64 state;\n mbarrier.arrive.expect_tx.shared::cta.b64 state, [%0], %1;\n}\n" ::"r"(bar),
      "r"(bytes)
      : "memory");
}
__device__ __forceinline__ void MbarrierWait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n .reg .pred done;\n WAIT_%=:\n mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      " @!done bra WAIT_%=;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}
// bytes (a multiple of 16, both addresses 16-byte aligned) from global to shared; completes on bar.
__device__ __forceinline__ void BulkCopy(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
      "l"(src), "r"(bytes), "r"(bar)
      : "memory");
}

// The memory clobber keeps it after the mbarrier wait and before the next __syncthreads.
__device__ __forceinline__ void LdMatrixX4(uint32_t a[4], uint32_t smem_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3])
               : "r"(smem_addr)
               : "memory");
}

// Both halves of a times the low (kHigh = false) or high half of s, as bf16 (exact here: see
// nvfp4_layout.cuh). bf16 multiplies keep subnormal inputs, which the 0.5 codes are.
template <bool kHigh>
__device__ __forceinline__ uint32_t MulByHalf(uint32_t a, uint32_t s) {
  const __nv_bfloat162 av = *reinterpret_cast<const __nv_bfloat162*>(&a);
  const __nv_bfloat162 sv = *reinterpret_cast<const __nv_bfloat162*>(&s);
  const __nv_bfloat162 r = __hmul2(av, kHigh ? __high2bfloat162(sv) : __low2bfloat162(sv));
  return *reinterpret_cast<const uint32_t*>(&r);
}

// The 32 weights of one lane for one 64 x 16 tile, scaled: b[j][0] = b01, b[j][1] = b23 of n8 tile j.
__device__ __forceinline__ void LoadWeightFragments(const uint4& q, const uint2& s, uint32_t b[8][2]) {
  uint32_t sc[4];
  nvfp4::ExpandScales(s.x, &sc[0], &sc[1]);
  nvfp4::ExpandScales(s.y, &sc[2], &sc[3]);
  const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
  for (int a = 0; a < 4; ++a) {
    uint32_t e[4];
    nvfp4::ExpandCodes(words[a], e);
    b[2 * a][0] = MulByHalf<false>(e[0], sc[a]);
    b[2 * a][1] = MulByHalf<false>(e[1], sc[a]);
    b[2 * a + 1][0] = MulByHalf<true>(e[2], sc[a]);
    b[2 * a + 1][1] = MulByHalf<true>(e[3], sc[a]);
  }
}

template <int kMTiles, int kWarps>
struct GemmConfig {
  static constexpr int kThreads = kWarps * 32;
  // Register budget: three blocks of 8 warps per SM for decode (70 KB of shared memory each), two otherwise.
  static constexpr int kMinBlocksPerSm = kMTiles == 1 ? 3 : 2;
  static constexpr int kStageKs = 2 * kWarps;  // k-steps per stage: two per warp
  static constexpr int kRows = 16 * kMTiles;   // rows of x (and out) per block
  // x rows in shared memory: the stage's k range plus 16 bytes, so that the 8 rows an ldmatrix reads
  // at one k fall in 8 different 16-byte bank groups (stride an odd number of 16-byte chunks).
  static constexpr int kXRowBytes = kStageKs * kStepK * 2 + 16;
  static constexpr int kCodeBytes = kStageKs * kCodeTileBytes;
  static constexpr int kScaleBytes = kStageKs * kScaleTileBytes;
  static constexpr int kXOffset = kCodeBytes + kScaleBytes;
  static constexpr int kStageBytes = kXOffset + kRows * kXRowBytes;
  static constexpr int kRedStride = kTileN + 8;  // floats per row in the cross-warp sum (fewer conflicts)
  static constexpr int kRedBytes = kWarps * kRows * kRedStride * 4;
  static constexpr int kSmemBytes = kStages * kStageBytes > kRedBytes ? kStages* kStageBytes : kRedBytes;
  static_assert(kXRowBytes % 16 == 0 && (kXRowBytes / 16) % 2 == 1, "x rows: odd number of 16-byte chunks");
  static_assert(kStageBytes % 16 == 0, "stages are 16-byte aligned for the bulk copies");
};

// One block: rows [row0, row0 + kRows) of x and out, output columns [64 nt, 64 nt + 64), k-steps
// [ks_begin, ks_end) of split blockIdx.z. Shared memory per stage (kStages of them, then reused for
// the cross-warp sum):
//   codes  [kStageKs][512 B]    the stage's tiles: one contiguous bulk copy from global memory
//   scales [kStageKs][64 B]     likewise
//   x      [kRows][kXRowBytes]  bf16, the stage's k range of each row (one bulk copy per row < m);
//                               rows past m are zero
// Warp 0 issues a stage's copies (Hopper's cp.async.bulk, completion counted in bytes on the stage's
// mbarrier) kStages - 1 stages ahead; every thread waits on the mbarrier before reading. Warp w
// computes k-steps w and w + kWarps of every stage for all kRows x 64 outputs; the warps' sums are
// added in shared memory at the end. With splits > 1 each block stores its fp32 sums, and the last
// block of an output tile to finish (counter) adds them in split order and writes bf16.
template <int kMTiles, int kWarps>
__global__ void __launch_bounds__(kWarps * 32, GemmConfig<kMTiles, kWarps>::kMinBlocksPerSm)
    Nvfp4GemmKernel(const GemmParams p) {
  using C = GemmConfig<kMTiles, kWarps>;
  extern __shared__ __align__(128) uint8_t smem[];
  __shared__ __align__(8) uint64_t stage_full[kStages];  // mbarriers: the stage's bytes have landed
  __shared__ int is_last_block;
  const int tid = threadIdx.x;
  const int warp = tid / 32, lane = tid % 32;
  const int m_block = blockIdx.x, n_tile = blockIdx.y, split = blockIdx.z;
  const int row0 = m_block * C::kRows;
  const int rows = min(C::kRows, p.m - row0);
  const int ks_begin = split * p.ks_per_split;
  const int ks_end = min(ks_begin + p.ks_per_split, p.ks_total);
  const int num_iters = (ks_end - ks_begin + C::kStageKs - 1) / C::kStageKs;
  const uint32_t smem_addr = SharedAddress(smem);
  const uint32_t bar_addr = SharedAddress(stage_full);

  // Rows past m: zero once in every stage; no copy writes them.
  if (rows < C::kRows) {
    for (int s = 0; s < kStages; ++s) {
      uint4* xs = reinterpret_cast<uint4*>(smem + s * C::kStageBytes + C::kXOffset);
      for (int i = rows * (C::kXRowBytes / 16) + tid; i < C::kRows * (C::kXRowBytes / 16); i += C::kThreads) {
        xs[i] = make_uint4(0, 0, 0, 0);
      }
    }
  }
  if (tid == 0) {
    for (int s = 0; s < kStages; ++s) MbarrierInit(bar_addr + s * 8, 1);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  const uint8_t* codes = p.codes + static_cast<size_t>(n_tile) * p.ks_total * kCodeTileBytes;
  const uint8_t* scales = p.scales + static_cast<size_t>(n_tile) * p.ks_total * kScaleTileBytes;
  const __nv_bfloat16* x = p.x + static_cast<size_t>(row0) * p.k;

  // Warp 0: the copies of the stage starting at k-step ks0 into buffer slot. Lane 0 announces the
  // byte count (arrive + expect_tx) before any copy is issued; the lanes then share the copies.
  const auto issue_stage = [&](int slot, int ks0) {
    const int nks = min(C::kStageKs, ks_end - ks0);
    const uint32_t stage = smem_addr + slot * C::kStageBytes;
    const uint32_t bar = bar_addr + slot * 8;
    const uint32_t x_bytes = nks * kStepK * 2;
    if (lane == 0) MbarrierArriveExpectTx(bar, nks * (kCodeTileBytes + kScaleTileBytes) + rows * x_bytes);
    __syncwarp();
    if (lane == 0)
      BulkCopy(stage, codes + static_cast<size_t>(ks0) * kCodeTileBytes, nks * kCodeTileBytes, bar);
    if (lane == 1) {
      BulkCopy(stage + C::kCodeBytes, scales + static_cast<size_t>(ks0) * kScaleTileBytes,
               nks * kScaleTileBytes, bar);
    }
    for (int r = lane; r < rows; r += 32) {
      BulkCopy(stage + C::kXOffset + r * C::kXRowBytes, x + static_cast<size_t>(r) * p.k + ks0 * kStepK,
               x_bytes, bar);
    }
  };

  // Shared-memory offsets of this thread's reads within a stage, for its two k-steps (u = 0, 1).
  uint32_t code_off[2], scale_off[2], a_off[2][kMTiles];
#pragma unroll
  for (int u = 0; u < 2; ++u) {
    const int kk = warp + u * kWarps;
    code_off[u] = kk * kCodeTileBytes + lane * 16;
    scale_off[u] = C::kCodeBytes + kk * kScaleTileBytes + (lane / 4) * 8;
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
      // ldmatrix x4: lanes 0-15 give rows 0-15 at k 0-7, lanes 16-31 rows 0-15 at k 8-15.
      const int r = mt * 16 + (lane % 16);
      a_off[u][mt] = C::kXOffset + r * C::kXRowBytes + kk * kStepK * 2 + (lane / 16) * 16;
    }
  }

  float acc[kMTiles][8][4];
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int j = 0; j < 8; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mt][j][e] = 0.f;
    }
  }

  if (warp == 0) {
    for (int s = 0; s < kStages - 1 && s < num_iters; ++s) issue_stage(s, ks_begin + s * C::kStageKs);
  }
  int slot = 0;         // buffer of the stage computed this iteration
  uint32_t parity = 0;  // its mbarrier phase
  int ks0 = ks_begin;   // its first k-step
  for (int iter = 0; iter < num_iters; ++iter) {
    // Everyone is done with the previous stage's buffer: refill it kStages - 1 stages ahead.
    __syncthreads();
    if (warp == 0 && iter + kStages - 1 < num_iters) {
      issue_stage(slot == 0 ? kStages - 1 : slot - 1, ks0 + (kStages - 1) * C::kStageKs);
    }
    MbarrierWait(bar_addr + slot * 8, parity);

    const uint8_t* stage = smem + slot * C::kStageBytes;
    const uint32_t stage_addr = smem_addr + slot * C::kStageBytes;
    const int nks = min(C::kStageKs, ks_end - ks0);
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      if (warp + u * kWarps < nks) {
        const uint4 q = *reinterpret_cast<const uint4*>(stage + code_off[u]);
        const uint2 s = *reinterpret_cast<const uint2*>(stage + scale_off[u]);
        uint32_t a[kMTiles][4];
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) LdMatrixX4(a[mt], stage_addr + a_off[u][mt]);
        uint32_t b[8][2];
        LoadWeightFragments(q, s, b);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
#pragma unroll
          for (int mt = 0; mt < kMTiles; ++mt) MmaBf16(acc[mt][j], a[mt], b[j][0], b[j][1]);
        }
      }
    }
    if (++slot == kStages) {
      slot = 0;
      parity ^= 1;
    }
    ks0 += C::kStageKs;
  }
  // Every issued stage has been waited for: no copy is in flight. Cross-warp sum in shared memory
  // (over the pipeline buffers, idle once every warp is past its last stage).
  __syncthreads();
  float* red = reinterpret_cast<float*>(smem);
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      float* r0 = red + (warp * C::kRows + mt * 16 + g) * C::kRedStride + j * 8 + 2 * t;
      *reinterpret_cast<float2*>(r0) = make_float2(acc[mt][j][0], acc[mt][j][1]);
      *reinterpret_cast<float2*>(r0 + 8 * C::kRedStride) = make_float2(acc[mt][j][2], acc[mt][j][3]);
    }
  }
  __syncthreads();

  const int col0 = n_tile * kTileN;
  const size_t ld_partial = static_cast<size_t>(p.n_tiles) * kTileN;
  for (int i = tid; i < rows * kTileN; i += C::kThreads) {
    const int r = i / kTileN, c = i % kTileN;
    const int col = col0 + c;
    if (col >= p.n) continue;
    float v = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) v += red[(w * C::kRows + r) * C::kRedStride + c];
    if (p.splits == 1) {
      p.out[static_cast<size_t>(row0 + r) * p.n + col] = __float2bfloat16_rn(v * PartAlpha(p, col));
    } else {
      p.partials[(static_cast<size_t>(split) * p.m + row0 + r) * ld_partial + col] = v;
    }
  }
  if (p.splits == 1) return;

  // Split-K: the last block of this output tile adds the partial sums (threadFenceReduction pattern).
  __threadfence();
  __syncthreads();
  int* counter = p.counters + m_block * p.n_tiles + n_tile;
  if (tid == 0) is_last_block = atomicAdd(counter, 1) == p.splits - 1;
  __syncthreads();
  if (!is_last_block) return;
  __threadfence();
  for (int i = tid; i < rows * kTileN; i += C::kThreads) {
    const int r = i / kTileN, c = i % kTileN;
    const int col = col0 + c;
    if (col >= p.n) continue;
    float v = 0.f;
    for (int s = 0; s < p.splits; ++s) {
      v += __ldcg(p.partials + (static_cast<size_t>(s) * p.m + row0 + r) * ld_partial + col);
    }
    p.out[static_cast<size_t>(row0 + r) * p.n + col] = __float2bfloat16_rn(v * PartAlpha(p, col));
  }
  if (tid == 0) *counter = 0;  // ready for the next launch
}

template <int kMTiles, int kWarps>
cudaError_t LaunchGemm(const GemmParams& params, int m_blocks, cudaStream_t stream) {
  using C = GemmConfig<kMTiles, kWarps>;
  const auto kernel = Nvfp4GemmKernel<kMTiles, kWarps>;
  // The shared-memory limit is set once per device (bit d of `configured`), so launches inside a
  // CUDA graph capture after the first one make no attribute calls.
  static std::atomic<uint64_t> configured{0};
  int device = 0;
  TANDEM_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  const uint64_t bit = device < 64 ? uint64_t{1} << device : 0;
  if (bit == 0 || (configured.load(std::memory_order_relaxed) & bit) == 0) {
    TANDEM_CUDA_RETURN_IF_ERROR(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes));
    configured.fetch_or(bit, std::memory_order_relaxed);
  }
  const dim3 grid(m_blocks, params.n_tiles, params.splits);
  kernel<<<grid, C::kThreads, C::kSmemBytes, stream>>>(params);
  return cudaGetLastError();
}

// The compiled configurations; anything else is an error, not a fallback.
cudaError_t DispatchGemm(const GemmPlan& plan, const GemmParams& params, cudaStream_t stream) {
  if (plan.m_tiles == 1 && plan.warps == 8) return LaunchGemm<1, 8>(params, plan.m_blocks, stream);
  if (plan.m_tiles == 2 && plan.warps == 8) return LaunchGemm<2, 8>(params, plan.m_blocks, stream);
  if (plan.m_tiles == 4 && plan.warps == 4) return LaunchGemm<4, 4>(params, plan.m_blocks, stream);
  return cudaErrorInvalidValue;
}

// One thread per lane of a (column tile, k-step): its 32 weights, scaled as in the GEMM, times
// scale2 * 2^7 in fp32, rounded to bf16, stored as bf16 pairs.
__global__ void Nvfp4DequantizeKernel(const GemmParams p, __nv_bfloat16* out, long total_threads) {
  const long gid = static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (gid >= total_threads) return;
  const long tile = gid / 32;
  const int lane = static_cast<int>(gid % 32);
  const int n_tile = static_cast<int>(tile / p.ks_total), ks = static_cast<int>(tile % p.ks_total);
  const uint4 q = *reinterpret_cast<const uint4*>(p.codes + tile * kCodeTileBytes + lane * 16);
  const uint2 s = *reinterpret_cast<const uint2*>(p.scales + tile * kScaleTileBytes + (lane / 4) * 8);
  uint32_t b[8][2];
  LoadWeightFragments(q, s, b);
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int col = n_tile * kTileN + 8 * j + g;
    if (col >= p.n) continue;
    const float alpha = PartAlpha(p, col);
    __nv_bfloat16* row = out + static_cast<size_t>(col) * p.k + ks * kStepK + 2 * t;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const float2 v = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&b[j][h]));
      *reinterpret_cast<__nv_bfloat162*>(row + 8 * h) = __floats2bfloat162_rn(v.x * alpha, v.y * alpha);
    }
  }
}

GemmParams WeightParams(const Nvfp4Weight& w) {
  GemmParams p{};
  p.codes = w.codes;
  p.scales = w.scales;
  p.n = w.n;
  p.k = w.k;
  p.n_tiles = (w.n + kTileN - 1) / kTileN;
  p.ks_total = w.k / kStepK;
  p.num_parts = w.num_parts;
  for (int i = 0; i < kNvfp4MaxParts; ++i) {
    p.part_begin[i] = w.part_begin[i];
    p.part_alpha[i] = w.part_scale2[i] * kKernelScale;
  }
  return p;
}

bool WeightSupported(const Nvfp4Weight& w) {
  const auto aligned16 = [](const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; };
  if (!ShapeSupported(w.n, w.k) || w.num_parts < 1 || w.num_parts > kNvfp4MaxParts || w.codes == nullptr ||
      w.scales == nullptr || !aligned16(w.codes) || !aligned16(w.scales) || w.part_begin[0] != 0) {
    return false;
  }
  for (int i = 1; i < w.num_parts; ++i) {
    if (w.part_begin[i] <= w.part_begin[i - 1] || w.part_begin[i] >= w.n) return false;
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Host API.

std::string Nvfp4RepackForGpu(const Nvfp4Part* parts, int num_parts, int k, Nvfp4Repacked* out) {
  if (k <= 0 || k % kStepK != 0) {
    return "NVFP4 repack: k must be a positive multiple of 16 (one E4M3 scale per 16 inputs); found " +
           std::to_string(k);
  }
  if (num_parts < 1 || num_parts > kNvfp4MaxParts) {
    return "NVFP4 repack: expected 1 to " + std::to_string(kNvfp4MaxParts) + " parts; found " +
           std::to_string(num_parts);
  }
  long n_total = 0;
  for (int i = 0; i < num_parts; ++i) {
    const Nvfp4Part& part = parts[i];
    if (part.rows <= 0 || part.packed == nullptr || part.scales == nullptr) {
      return "NVFP4 repack: part " + std::to_string(i) + " is empty (rows " + std::to_string(part.rows) + ")";
    }
    if (!std::isfinite(part.scale2) || part.scale2 < 0.f) {
      return "NVFP4 repack: part " + std::to_string(i) + " has scale2 " + std::to_string(part.scale2) +
             "; expected a finite value >= 0";
    }
    n_total += part.rows;
  }
  if (!ShapeSupported(static_cast<int>(std::min<long>(n_total, 1L << 30)), k)) {
    return "NVFP4 repack: n = " + std::to_string(n_total) + " exceeds " +
           std::to_string(kMaxColumnTiles * kTileN);
  }
  const int n = static_cast<int>(n_total);
  const int ks_total = k / kStepK;
  const int n_tiles = (n + kTileN - 1) / kTileN;
  Nvfp4Repacked r;
  r.n = n;
  r.k = k;
  r.num_parts = num_parts;
  r.codes.assign(static_cast<size_t>(n_tiles) * ks_total * kCodeTileBytes, 0);
  r.scales.assign(static_cast<size_t>(n_tiles) * ks_total * kScaleTileBytes, 0);

  // Check every scale first (the message names the first bad one) and note where each output
  // column's rows of codes and scales are (null in the padding past n).
  std::vector<const uint8_t*> col_codes(static_cast<size_t>(n_tiles) * kTileN, nullptr);
  std::vector<const uint8_t*> col_scales(col_codes.size(), nullptr);
  int col = 0;
  for (int i = 0; i < num_parts; ++i) {
    const Nvfp4Part& part = parts[i];
    r.part_begin[i] = col;
    r.part_scale2[i] = part.scale2;
    for (int row = 0; row < part.rows; ++row, ++col) {
      col_codes[col] = part.packed + static_cast<size_t>(row) * (k / 2);
      col_scales[col] = part.scales + static_cast<size_t>(row) * ks_total;
      for (int ks = 0; ks < ks_total; ++ks) {
        const uint8_t scale = col_scales[col][ks];
        if ((scale & 0x7F) == 0x7F || ((scale & 0x80) != 0 && scale != 0x80)) {
          return "NVFP4 repack: part " + std::to_string(i) + " row " + std::to_string(row) + " group " +
                 std::to_string(ks) + " has scale byte " + std::to_string(scale) +
                 ((scale & 0x7F) == 0x7F ? " (NaN)" : " (negative)") +
                 "; expected a non-negative float8_e4m3fn";
        }
      }
    }
  }

  // byte_bits[reg][b]: the two codes of packed byte b (low nibble = even k = half 0) placed for
  // register reg of ExpandCodes; scale_code[e4m3] = ScaleCode(e4m3).
  static uint32_t byte_bits[4][256];
  static uint8_t scale_code[256];
  static const bool tables_ready = [] {
    for (int reg = 0; reg < 4; ++reg) {
      for (int b = 0; b < 256; ++b) {
        byte_bits[reg][b] = nvfp4::PlaceCode(reg, 0, static_cast<uint8_t>(b & 0xF)) |
                            nvfp4::PlaceCode(reg, 1, static_cast<uint8_t>(b >> 4));
      }
    }
    for (int e = 0; e < 256; ++e) scale_code[e] = nvfp4::ScaleCode(static_cast<uint8_t>(e));
    return true;
  }();
  (void)tables_ready;

  // Tile by tile, in the order the kernel reads. Lane (g, t), word a: n8 tiles j = 2a + jj (column
  // 8j + g), register jj * 2 + 0 from packed byte t of the k-step (k = 2t, 2t + 1) and register
  // jj * 2 + 1 from byte 4 + t (k = 2t + 8, 2t + 9); a zero scale leaves its block's codes zero.
  for (int nt = 0; nt < n_tiles; ++nt) {
    const uint8_t* const* codes_of = col_codes.data() + static_cast<size_t>(nt) * kTileN;
    const uint8_t* const* scales_of = col_scales.data() + static_cast<size_t>(nt) * kTileN;
    for (int ks = 0; ks < ks_total; ++ks) {
      const size_t tile = static_cast<size_t>(nt) * ks_total + ks;
      uint8_t u[kTileN];
      for (int c = 0; c < kTileN; ++c) u[c] = scales_of[c] != nullptr ? scale_code[scales_of[c][ks]] : 0;
      for (int g = 0; g < 8; ++g) {
        uint32_t words[2] = {0, 0};
        for (int j = 0; j < 8; ++j) nvfp4::PlaceScaleCode(words, j, u[8 * j + g]);
        std::memcpy(r.scales.data() + tile * kScaleTileBytes + g * 8, words, 8);
      }
      uint8_t* code_tile = r.codes.data() + tile * kCodeTileBytes;
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane / 4, t = lane % 4;
        uint32_t words[4];
        for (int a = 0; a < 4; ++a) {
          uint32_t word = 0;
          for (int jj = 0; jj < 2; ++jj) {
            const int c = 8 * (2 * a + jj) + g;
            if (u[c] == 0) continue;
            const uint8_t* bytes = codes_of[c] + ks * (kStepK / 2);
            word |= byte_bits[jj * 2][bytes[t]] | byte_bits[jj * 2 + 1][bytes[4 + t]];
          }
          words[a] = word;
        }
        std::memcpy(code_tile + lane * 16, words, 16);
      }
    }
  }
  *out = std::move(r);
  return "";
}

Nvfp4Weight Nvfp4DeviceView(const Nvfp4Repacked& repacked, const void* device_codes,
                            const void* device_scales) {
  Nvfp4Weight w;
  w.codes = static_cast<const uint8_t*>(device_codes);
  w.scales = static_cast<const uint8_t*>(device_scales);
  w.n = repacked.n;
  w.k = repacked.k;
  w.num_parts = repacked.num_parts;
  for (int i = 0; i < kNvfp4MaxParts; ++i) {
    w.part_begin[i] = repacked.part_begin[i];
    w.part_scale2[i] = repacked.part_scale2[i];
  }
  return w;
}

cudaError_t Nvfp4GemmWorkspaceSize(int max_m, int n, int k, size_t* bytes) {
  if (max_m < 0 || !ShapeSupported(n, k) || bytes == nullptr) return cudaErrorInvalidValue;
  int sms = 0;
  TANDEM_CUDA_RETURN_IF_ERROR(CurrentSmCount(&sms));
  size_t most = 0;
  for (int m = 1; m <= max_m; ++m) {
    const GemmPlan plan = MakePlan(m, n, k, sms);
    most = std::max(most, plan.counter_bytes + plan.partial_bytes);
    // At least 3 tiles per SM: no split-K, now or for any larger m.
    if (static_cast<long>(plan.m_blocks) * plan.n_tiles >= 3L * sms) break;
  }
  *bytes = most;
  return cudaSuccess;
}

cudaError_t Nvfp4Gemm(const __nv_bfloat16* x, const Nvfp4Weight& w, __nv_bfloat16* out, int m,
                      void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (m < 0 || !WeightSupported(w) || (m > 0 && (x == nullptr || out == nullptr)) ||
      (reinterpret_cast<uintptr_t>(x) & 15u) != 0 || (reinterpret_cast<uintptr_t>(out) & 1u) != 0) {
    return cudaErrorInvalidValue;
  }
  if (m == 0) return cudaSuccess;
  int sms = 0;
  TANDEM_CUDA_RETURN_IF_ERROR(CurrentSmCount(&sms));
  const GemmPlan plan = MakePlan(m, w.n, w.k, sms);
  GemmParams params = WeightParams(w);
  params.x = x;
  params.out = out;
  params.m = m;
  params.splits = plan.splits;
  params.ks_per_split = plan.ks_per_split;
  if (plan.splits > 1) {
    if (workspace == nullptr || workspace_bytes < plan.counter_bytes + plan.partial_bytes ||
        (reinterpret_cast<uintptr_t>(workspace) & 255u) != 0) {
      return cudaErrorInvalidValue;
    }
    params.counters = static_cast<int*>(workspace);
    params.partials = reinterpret_cast<float*>(static_cast<uint8_t*>(workspace) + plan.counter_bytes);
  }
  return DispatchGemm(plan, params, stream);
}

cudaError_t Nvfp4DequantizeToBf16(const Nvfp4Weight& w, __nv_bfloat16* out, cudaStream_t stream) {
  if (!WeightSupported(w) || out == nullptr || (reinterpret_cast<uintptr_t>(out) & 3u) != 0) {
    return cudaErrorInvalidValue;
  }
  const GemmParams params = WeightParams(w);
  const long total = static_cast<long>(params.n_tiles) * params.ks_total * 32;
  constexpr int kThreads = 256;
  Nvfp4DequantizeKernel<<<static_cast<unsigned>((total + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      params, out, total);
  return cudaGetLastError();
}

}  // namespace tandem::kernels
