// The NVFP4 weight-only GEMM for Hopper (nvfp4_gemm.cuh; NOTES.md has its versions and times): the
// tensor-core GEMV over packed e2m1 weights with their e4m3 scales (W as mma.sync's A operand), the
// dequantization to bf16 for prefill-sized m, and the host-side repacking of a checkpoint's tensors
// into the order both read (nvfp4_layout.cuh).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>

#include "common/mma.cuh"
#include "common/pdl.cuh"
#include "gemm/nvfp4_gemm.cuh"
#include "gemm/nvfp4_layout.cuh"

namespace tandem::kernels {
namespace {

using nvfp4::kChunkK;
using nvfp4::kCodeChunkBytes;
using nvfp4::kGroupK;
using nvfp4::kKernelScale;
using nvfp4::kRecordChunks;
using nvfp4::kScaleRecordBytes;
using nvfp4::kTileRows;

constexpr int kWarps = 8;   // warps per block, splitting k
constexpr int kUnroll = 2;  // scale records (4 chunks: 32 weights per lane per chunk) a warp has in flight

bool ShapeSupported(int n, int k) { return n > 0 && k > 0 && k % kGroupK == 0; }

int KChunks(int k) { return (k + kChunkK - 1) / kChunkK; }
int KRecords(int k) { return (KChunks(k) + kRecordChunks - 1) / kRecordChunks; }
long RowTiles(int n) { return (static_cast<long>(n) + kTileRows - 1) / kTileRows; }

// Everything a launch needs, by value in the kernel's parameter space.
struct GemvParams {
  const __nv_bfloat16* x;  // [m, k] row-major
  const uint8_t* codes;    // [row_tiles][k_chunks][512] (nvfp4_layout.cuh)
  const uint8_t* scales;   // [row_tiles][k_records][256]
  __nv_bfloat16* out;      // [m, n] row-major
  int m, n, k;
  int k_chunks, k_records;
  int num_parts;
  int part_begin[kNvfp4MaxParts];
  float part_scale2[kNvfp4MaxParts];
};

__device__ __forceinline__ float PartScale2(const GemvParams& p, int row) {
  float s = p.part_scale2[0];
#pragma unroll
  for (int i = 1; i < kNvfp4MaxParts; ++i) {
    if (i < p.num_parts && row >= p.part_begin[i]) s = p.part_scale2[i];
  }
  return s;
}

// Both halves of a times the low (kHigh = false) or high half of s, as bf16 (exact here: see
// nvfp4_layout.cuh). bf16 multiplies keep subnormal inputs, which the 0.5 codes are. ptxas folds the
// half selection into the HMUL2's operand (.H0_H0 / .H1_H1): no shuffles.
template <bool kHigh>
__device__ __forceinline__ uint32_t MulByHalf(uint32_t a, uint32_t s) {
  const __nv_bfloat162 av = *reinterpret_cast<const __nv_bfloat162*>(&a);
  const __nv_bfloat162 sv = *reinterpret_cast<const __nv_bfloat162*>(&s);
  const __nv_bfloat162 r = __hmul2(av, kHigh ? __high2bfloat162(sv) : __low2bfloat162(sv));
  return *reinterpret_cast<const uint32_t*>(&r);
}

// The A fragments of a lane's four k-steps of one chunk: codes q (16 bytes), scales sc = {row g, row g + 8}.
__device__ __forceinline__ void ChunkFragments(const uint4& q, uint32_t sc, uint32_t a[4][4]) {
  const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    uint32_t e[4];
    nvfp4::ExpandCodes(words[i], e);
    a[i][0] = MulByHalf<false>(e[0], sc);
    a[i][1] = MulByHalf<true>(e[1], sc);
    a[i][2] = MulByHalf<false>(e[2], sc);
    a[i][3] = MulByHalf<true>(e[3], sc);
  }
}

// The mma steps of one scale record (four chunks) of a lane: its codes q and scales s, against kTiles
// n8 tiles of x. x is loaded for kGroup chunks at a time before any of their mma steps, so a warp
// waits for one L1/L2 round trip per group rather than per chunk (the loads are asm volatile: the
// compiler keeps them where they are written). kGroup only moves loads: the mma order, so the result's
// bits, are the same for every kGroup.
template <int kTiles, int kGroup>
__device__ __forceinline__ void RecordMma(const uint4 (&q)[kRecordChunks], uint2 s, int rec, const GemvParams& p,
                                          int t, const __nv_bfloat16* const (&x_rows)[kTiles],
                                          const bool (&x_valid)[kTiles], float (&acc)[kTiles][4]) {
  uint32_t sc[4];
  nvfp4::ExpandScales(s.x, &sc[0], &sc[1]);
  nvfp4::ExpandScales(s.y, &sc[2], &sc[3]);
#pragma unroll
  for (int c0 = 0; c0 < kRecordChunks; c0 += kGroup) {
    uint4 xb[kGroup][kTiles][2];
#pragma unroll
    for (int c = 0; c < kGroup; ++c) {
      const int input = (rec * kRecordChunks + c0 + c) * kChunkK;
      const bool in = input + t * kGroupK < p.k;  // false past the last chunk too
#pragma unroll
      for (int i = 0; i < kTiles; ++i) {
        const bool ld = in && x_valid[i];
        xb[c][i][0] = ld ? LoadAfterWait(x_rows[i] + input) : make_uint4(0, 0, 0, 0);
        xb[c][i][1] = ld ? LoadAfterWait(x_rows[i] + input + 8) : make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int c = 0; c < kGroup; ++c) {
      if ((rec * kRecordChunks + c0 + c) >= p.k_chunks) break;
      uint32_t a[4][4];
      ChunkFragments(q[c0 + c], sc[c0 + c], a);
#pragma unroll
      for (int i = 0; i < kTiles; ++i) {
        MmaBf16(acc[i], a[0], xb[c][i][0].x, xb[c][i][0].y);
        MmaBf16(acc[i], a[1], xb[c][i][0].z, xb[c][i][0].w);
        MmaBf16(acc[i], a[2], xb[c][i][1].x, xb[c][i][1].y);
        MmaBf16(acc[i], a[3], xb[c][i][1].z, xb[c][i][1].w);
      }
    }
  }
}

// One block: row tile blockIdx.x of W (16 output features) against rows [8 kTiles blockIdx.y, +8 kTiles)
// of x, all of k. out^T = W x^T as mma.sync m16n8k16: W as A (expanded from the codes in registers),
// x^T as B (one n8 tile per 8 rows of x, loaded straight from global memory, RecordMma). Warp w takes
// the scale records w, w + 8, ... (256 inputs each), kUnroll of them in flight; the warps' partial sums
// meet in shared memory in a fixed order, so a row of x gets the same bits whatever m is. Every byte
// of W is loaded once, by one 16-byte streaming load; the weights are on their way before PdlWait.
// kBlocksPerSm 3 (m <= 8 only): x two chunks at a time instead of a record, 80 registers (NOTES.md v2.1).
template <int kTiles, int kBlocksPerSm>
__global__ void __launch_bounds__(kWarps * 32, kBlocksPerSm) Nvfp4GemvKernel(const GemvParams p) {
  constexpr int kGroup = kBlocksPerSm == 3 ? 2 : (kTiles >= 4 ? 1 : 4 / kTiles);
  PdlTrigger();
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int g = lane >> 2, t = lane & 3;
  const long tile = blockIdx.x;
  const int x_row0 = static_cast<int>(blockIdx.y) * kTiles * 8;
  const uint4* codes = reinterpret_cast<const uint4*>(p.codes + tile * p.k_chunks * kCodeChunkBytes) + lane;
  const uint2* scales = reinterpret_cast<const uint2*>(p.scales + tile * p.k_records * kScaleRecordBytes) + lane;
  const __nv_bfloat16* x_rows[kTiles];
  bool x_valid[kTiles];
#pragma unroll
  for (int i = 0; i < kTiles; ++i) {
    const int row = x_row0 + i * 8 + g;
    x_valid[i] = row < p.m;
    x_rows[i] = p.x + static_cast<size_t>(x_valid[i] ? row : 0) * p.k + t * kGroupK;
  }
  float acc[kTiles][4];
#pragma unroll
  for (int i = 0; i < kTiles; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;

  // One scale record (four chunks) of this lane: its codes and scales, then the chunks' mma steps.
  struct Record {
    uint4 q[kRecordChunks];
    uint2 s;
  };
  const auto load = [&](int rec) {
    Record r;
    const bool live = rec < p.k_records;
    r.s = live ? __ldcs(scales + rec * 32) : make_uint2(0, 0);
#pragma unroll
    for (int c = 0; c < kRecordChunks; ++c) {
      const int chunk = rec * kRecordChunks + c;
      r.q[c] = live && chunk < p.k_chunks ? __ldcs(codes + chunk * 32) : make_uint4(0, 0, 0, 0);
    }
    return r;
  };
  bool waited = false;
  for (int r0 = warp; r0 < p.k_records; r0 += kWarps * kUnroll) {
    Record r[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) r[u] = load(r0 + u * kWarps);
    if (!waited) {  // the first weights are on their way while the kernel before finishes; x is its output
      PdlWait();
      waited = true;
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (r0 + u * kWarps >= p.k_records) break;
      RecordMma<kTiles, kGroup>(r[u].q, r[u].s, r0 + u * kWarps, p, t, x_rows, x_valid, acc);
    }
  }

  PdlWait();  // before any write (a warp with no record has not waited yet)
  constexpr int kCols = kTiles * 8;
  __shared__ float partial[kWarps][kCols][kTileRows + 1];
#pragma unroll
  for (int i = 0; i < kTiles; ++i) {
    partial[warp][i * 8 + 2 * t][g] = acc[i][0];
    partial[warp][i * 8 + 2 * t + 1][g] = acc[i][1];
    partial[warp][i * 8 + 2 * t][g + 8] = acc[i][2];
    partial[warp][i * 8 + 2 * t + 1][g + 8] = acc[i][3];
  }
  __syncthreads();
  for (int e = static_cast<int>(threadIdx.x); e < kCols * kTileRows; e += kWarps * 32) {
    const int col = e / kTileRows, r = e % kTileRows;
    const int x_row = x_row0 + col;
    const long w_row = tile * kTileRows + r;
    if (x_row >= p.m || w_row >= p.n) continue;
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < kWarps; ++i) sum += partial[i][col][r];
    const float alpha = PartScale2(p, static_cast<int>(w_row)) * kKernelScale;
    p.out[static_cast<size_t>(x_row) * p.n + w_row] = __float2bfloat16_rn(sum * alpha);
  }
}

template <int kTiles, int kBlocksPerSm>
cudaError_t LaunchGemv(const GemvParams& params, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(RowTiles(params.n)),
                  static_cast<unsigned>((params.m + kTiles * 8 - 1) / (kTiles * 8)));
  return LaunchPdl(Nvfp4GemvKernel<kTiles, kBlocksPerSm>, grid, dim3(kWarps * 32), 0, stream, params);
}

// Multiprocessors of the current device (cached per ordinal; 0 if it cannot be read).
int MultiprocessorCount() {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> counts[kMaxDevices] = {};
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= kMaxDevices) return 0;
  int count = counts[device].load(std::memory_order_relaxed);
  if (count == 0 && cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) == cudaSuccess) {
    counts[device].store(count, std::memory_order_relaxed);
  }
  return count;
}

// One thread per lane of a (row tile, chunk): its 32 weights as e2m1 * scale (exact in fp32) times
// scale2 in fp32, rounded to bf16: the CPU's DequantizeNvfp4 step for step, so the same bits.
__global__ void Nvfp4DequantizeKernel(const GemvParams p, __nv_bfloat16* out, long total_threads) {
  const long gid = static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (gid >= total_threads) return;
  const long tile_chunk = gid / 32;
  const int lane = static_cast<int>(gid % 32);
  const long tile = tile_chunk / p.k_chunks;
  const int chunk = static_cast<int>(tile_chunk % p.k_chunks);
  const int g = lane / 4, t = lane % 4;
  const int input = chunk * kChunkK + t * kGroupK;
  if (input >= p.k) return;
  const uint4 q = *reinterpret_cast<const uint4*>(p.codes + tile_chunk * kCodeChunkBytes + lane * 16);
  const uint2 s = *reinterpret_cast<const uint2*>(p.scales + (tile * p.k_records + chunk / kRecordChunks) *
                                                               kScaleRecordBytes + lane * 8);
  const uint32_t word = (chunk % kRecordChunks) < 2 ? s.x : s.y;
  const uint32_t sc = nvfp4::ScaleBits((chunk % 2) == 0 ? word : nvfp4::Rotr(word, 8));
  const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const long row = tile * kTileRows + g + 8 * rr;
    if (row >= p.n) continue;
    // scale * 2^119 as bf16 bits -> the scale, exactly (2^-9 .. 448; 0 for a zero scale code, whose
    // codes are signed zeros).
    const uint32_t scale_bits = (rr == 0 ? sc : sc >> 16) & 0xFFFFu;
    const float scale = (scale_bits & 0x0FF0u) == 0 ? 0.f : __uint_as_float(scale_bits << 16) * 0x1p-119f;
    const float scale2 = PartScale2(p, static_cast<int>(row));
    uint32_t v[8];  // the row's 16 values as bf16 pairs, stored as two 16-byte writes
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      uint32_t e[4];
      nvfp4::ExpandCodes(words[i], e);
#pragma unroll
      for (int pair = 0; pair < 2; ++pair) {
        const uint32_t bits = e[rr + 2 * pair];
        // e2m1 * 2^-126 as bf16 -> e2m1 (an exact power-of-two scaling), then the CPU's two products.
        const float lo = __uint_as_float(bits << 16) * 0x1p126f;
        const float hi = __uint_as_float(bits & 0xFFFF0000u) * 0x1p126f;
        const __nv_bfloat162 h2 = __halves2bfloat162(__float2bfloat16_rn(__fmul_rn(__fmul_rn(lo, scale), scale2)),
                                                     __float2bfloat16_rn(__fmul_rn(__fmul_rn(hi, scale), scale2)));
        v[2 * i + pair] = *reinterpret_cast<const uint32_t*>(&h2);
      }
    }
    uint4* dst = reinterpret_cast<uint4*>(out + row * p.k + input);
    dst[0] = make_uint4(v[0], v[1], v[2], v[3]);
    dst[1] = make_uint4(v[4], v[5], v[6], v[7]);
  }
}

GemvParams WeightParams(const Nvfp4Weight& w) {
  GemvParams p{};
  p.codes = w.codes;
  p.scales = w.scales;
  p.n = w.n;
  p.k = w.k;
  p.k_chunks = KChunks(w.k);
  p.k_records = KRecords(w.k);
  p.num_parts = w.num_parts;
  for (int i = 0; i < kNvfp4MaxParts; ++i) {
    p.part_begin[i] = w.part_begin[i];
    p.part_scale2[i] = w.part_scale2[i];
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
  if (k <= 0 || k % kGroupK != 0) {
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
  if (n_total > kNvfp4MaxN) {
    return "NVFP4 repack: n = " + std::to_string(n_total) + " exceeds " + std::to_string(kNvfp4MaxN);
  }
  const int n = static_cast<int>(n_total);
  const int groups = k / kGroupK;
  const long row_tiles = RowTiles(n);
  const int k_chunks = KChunks(k), k_records = KRecords(k);
  Nvfp4Repacked r;
  r.n = n;
  r.k = k;
  r.num_parts = num_parts;
  r.codes.assign(static_cast<size_t>(row_tiles) * k_chunks * kCodeChunkBytes, 0);
  r.scales.assign(static_cast<size_t>(row_tiles) * k_records * kScaleRecordBytes, 0);

  // Check every scale first (the message names the first bad one) and note where each output
  // row's codes and scales are (null in the padding past n).
  std::vector<const uint8_t*> row_codes(static_cast<size_t>(row_tiles) * kTileRows, nullptr);
  std::vector<const uint8_t*> row_scales(row_codes.size(), nullptr);
  int at = 0;
  for (int i = 0; i < num_parts; ++i) {
    const Nvfp4Part& part = parts[i];
    r.part_begin[i] = at;
    r.part_scale2[i] = part.scale2;
    for (int row = 0; row < part.rows; ++row, ++at) {
      row_codes[at] = part.packed + static_cast<size_t>(row) * (k / 2);
      row_scales[at] = part.scales + static_cast<size_t>(row) * groups;
      for (int grp = 0; grp < groups; ++grp) {
        const uint8_t scale = row_scales[at][grp];
        if ((scale & 0x7F) == 0x7F || ((scale & 0x80) != 0 && scale != 0x80)) {
          return "NVFP4 repack: part " + std::to_string(i) + " row " + std::to_string(row) + " group " +
                 std::to_string(grp) + " has scale byte " + std::to_string(scale) +
                 ((scale & 0x7F) == 0x7F ? " (NaN)" : " (negative)") +
                 "; expected a non-negative float8_e4m3fn";
        }
      }
    }
  }

  // byte_bits[reg][b]: the two codes of packed byte b (low nibble = even input = half 0) placed for
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

  // Chunk by chunk, in the order the kernel reads. Lane (g, t) of a chunk holds group t of rows g and
  // g + 8 (rr = 0, 1); packed byte b of the group (inputs 2b, 2b + 1) goes to word b / 2, register
  // rr + 2 (b % 2) (nvfp4::CodeSlotOf). A zero scale keeps only its block's sign bits.
  for (long tile = 0; tile < row_tiles; ++tile) {
    for (int chunk = 0; chunk < k_chunks; ++chunk) {
      uint8_t* code_chunk = r.codes.data() + (static_cast<size_t>(tile) * k_chunks + chunk) * kCodeChunkBytes;
      uint8_t* record = r.scales.data() +
                        (static_cast<size_t>(tile) * k_records + chunk / kRecordChunks) * kScaleRecordBytes;
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane / 4, t = lane % 4;
        const int grp = chunk * (kChunkK / kGroupK) + t;
        if (grp >= groups) continue;
        uint32_t words[4] = {0, 0, 0, 0}, scale_words[2];
        std::memcpy(scale_words, record + lane * 8, 8);
        for (int rr = 0; rr < 2; ++rr) {
          const size_t row = static_cast<size_t>(tile) * kTileRows + g + 8 * rr;
          if (row_codes[row] == nullptr) continue;
          const uint8_t u = scale_code[row_scales[row][grp]];
          nvfp4::PlaceScaleCode(scale_words, nvfp4::ScaleSlotOf(8 * rr, chunk % kRecordChunks), u);
          const uint8_t mask = u == 0 ? 0x88 : 0xFF;
          const uint8_t* bytes = row_codes[row] + static_cast<size_t>(grp) * (kGroupK / 2);
          for (int b = 0; b < kGroupK / 2; ++b) words[b / 2] |= byte_bits[rr + 2 * (b % 2)][bytes[b] & mask];
        }
        std::memcpy(code_chunk + lane * 16, words, 16);
        std::memcpy(record + lane * 8, scale_words, 8);
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

cudaError_t Nvfp4Gemm(const __nv_bfloat16* x, const Nvfp4Weight& w, __nv_bfloat16* out, int m,
                      cudaStream_t stream) {
  if (m < 0 || m > kNvfp4MaxM || !WeightSupported(w) || (m > 0 && (x == nullptr || out == nullptr)) ||
      (reinterpret_cast<uintptr_t>(x) & 15u) != 0 || (reinterpret_cast<uintptr_t>(out) & 1u) != 0) {
    return cudaErrorInvalidValue;
  }
  if (m == 0) return cudaSuccess;
  GemvParams params = WeightParams(w);
  params.x = x;
  params.out = out;
  params.m = m;
  if (m <= 8) {
    // Three blocks per SM win where two leave more than one wave of row tiles (qkv, gate_up), two where
    // the grid fits in one wave and each warp walks many records (o, down): NOTES.md v2.1.
    if (RowTiles(params.n) > 2L * MultiprocessorCount()) return LaunchGemv<1, 3>(params, stream);
    return LaunchGemv<1, 2>(params, stream);
  }
  if (m <= 16) return LaunchGemv<2, 2>(params, stream);
  if (m <= 32) return LaunchGemv<4, 1>(params, stream);
  return LaunchGemv<8, 1>(params, stream);
}

cudaError_t Nvfp4DequantizeToBf16(const Nvfp4Weight& w, __nv_bfloat16* out, cudaStream_t stream) {
  if (!WeightSupported(w) || out == nullptr || (reinterpret_cast<uintptr_t>(out) & 15u) != 0) {
    return cudaErrorInvalidValue;
  }
  const GemvParams params = WeightParams(w);
  const long total = RowTiles(w.n) * params.k_chunks * 32;
  constexpr int kThreads = 256;
  Nvfp4DequantizeKernel<<<static_cast<unsigned>((total + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      params, out, total);
  return cudaGetLastError();
}

}  // namespace tandem::kernels
