// The order in which the NVFP4 GEMV streams weights, shared by the host repack (Nvfp4RepackForGpu),
// the kernels and the tests (the __host__ __device__ functions compile for both, so the CPU tests run
// the very bit tricks the GPU runs). Plain C++ plus CUDA's function qualifiers.
//
// The kernel multiplies W [n, k] as the A operand of mma.sync m16n8k16 (16 rows of W per tile, x as
// B), so the weight is cut into row tiles of 16 output rows and, along k, chunks of 64 inputs (four
// 16-input scale groups); chunks of a tile are contiguous, so a block streams one range per tile:
//   codes  [ceil(n / 16)][ceil(k / 64)][512 bytes]   (32 lanes x 16 bytes)
//   scales [ceil(n / 16)][ceil(k / 256)][256 bytes]  (32 lanes x 8 bytes: four chunks per record)
// Rows past n and inputs past k are zero codes with scale code 0 (they compute zeros; the kernel also
// zeroes x past k, so garbage there cannot make NaN).
//
// Codes. Lane l = 4g + t of a warp (g = l / 4, t = l % 4) reads the 16 bytes at l * 16 of a chunk: the
// codes of rows g and g + 8 of the tile for scale group t of the chunk (inputs 16t .. 16t + 15), so a
// lane's 32 weights share one scale per row. Word i holds the A fragment of k-step i, inputs
// 16t + 4i .. 16t + 4i + 3: ExpandCodes gives {a0, a1, a2, a3} = {row g inputs +0 +1, row g+8 +0 +1,
// row g +2 +3, row g+8 +2 +3}, the low half the even input. The matching B fragment is x at the same
// inputs: {b0, b1} = {x[+0, +1], x[+2, +3]}, so a lane loads x[16t .. 16t + 15] as two 16-byte loads
// (the k order inside a k-step is permuted the same way for A and B; a dot product does not care).
// Each half of an ExpandCodes register is e2m1 * 2^-126 as bf16 bits: the code's sign at bit 15 and
// its 3 magnitude bits e1 e0 m at bits 8..6 (exponent field e1 e0, mantissa m; e = 0 gives the bf16
// subnormal 0.5 * 2^-126, so the map is exact for all 16 codes). The codes are placed in the word so
// that three of the four registers are one rotate and one AND (kCodeBit below; 11 integer
// instructions for 8 codes, against 15 for the plain nibble order). A block whose scale is zero keeps
// only its sign bits (its weights are -0 or +0, as the CPU's dequantization gives).
//
// Scales. Lane l reads the 8 bytes at l * 8 of a scale record (four chunks): the scales of rows g and
// g + 8 for group t of each chunk, one byte each in an unsigned E5M3 code u (exponent bias 22, no
// subnormals: every E4M3 value from 2^-9 to 448 is exact in it; 0 = zero scale). Word h (0, 1) holds
// chunks 2h and 2h + 1: ExpandScales(word) gives two bf16x2 registers, lo = chunk 2h and hi = chunk
// 2h + 1, each {row g, row g + 8}, with bf16 bits 0x7000 | u << 4 in each half, i.e. the value
// scale * 2^119. code * scale = e2m1 * 2^-126 * scale * 2^119 = e2m1 * scale * 2^-7, exact in bf16
// (at most 6 significant bits, from 2^-17 to 21), so the kernel's weights are the checkpoint's values
// times 2^-7 / scale2, and the epilogue multiplies by scale2 * 2^7. The bytes of a word are not in
// order: u(j = 0..3) at bits 4..11, 20..27, 12..19 and 28..31 (low nibble) + 0..3 (high nibble), with
// j = 2 * (chunk % 2) + (row g + 8 ? 1 : 0), so that (word & 0x0FF00FF0) and (rotr(word, 8) &
// 0x0FF00FF0) are both in place (PlaceScaleCode).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tandem::kernels::nvfp4 {

inline constexpr int kTileRows = 16;          // output rows per tile (the mma's M)
inline constexpr int kChunkK = 64;            // inputs per chunk: 4 scale groups, one per lane quad
inline constexpr int kGroupK = 16;            // inputs per E4M3 scale
inline constexpr int kRecordChunks = 4;       // chunks per scale record
inline constexpr int kCodeChunkBytes = 512;   // codes of one 16 x 64 chunk
inline constexpr int kScaleRecordBytes = 256;  // scale codes of four chunks
inline constexpr float kKernelScale = 128.f;  // the kernel's weights are W * 2^-7 / scale2

// Bit positions of {sign, e1, e0, m} of the code that lands in half h of register i of ExpandCodes.
inline constexpr int kCodeBit[4][2][4] = {
    {{15, 8, 7, 6}, {31, 24, 23, 22}},    // i = 0: the bits are already in place
    {{18, 11, 10, 9}, {2, 27, 26, 25}},   // i = 1: rotate right by 3
    {{21, 14, 13, 12}, {5, 30, 29, 28}},  // i = 2: rotate right by 6
    {{4, 1, 0, 3}, {20, 17, 16, 19}},     // i = 3: the remaining bits, in three pieces
};

__host__ __device__ __forceinline__ uint32_t Rotr(uint32_t x, int r) {
#ifdef __CUDA_ARCH__
  return __funnelshift_r(x, x, r);
#else
  return (x >> r) | (x << (32 - r));
#endif
}

// out[0] = (j = 2a, b01), out[1] = (j = 2a, b23), out[2] = (j = 2a + 1, b01), out[3] = (j = 2a + 1, b23);
// each half is e2m1 * 2^-126 in bf16 bits.
__host__ __device__ __forceinline__ void ExpandCodes(uint32_t q, uint32_t out[4]) {
  constexpr uint32_t kMask = 0x81C081C0u;  // sign at 15 / 31, magnitude at 8..6 / 24..22
  out[0] = q & kMask;
  out[1] = Rotr(q, 3) & kMask;
  out[2] = Rotr(q, 6) & kMask;
  out[3] = ((q << 7) & 0x01800180u) | ((q << 3) & 0x00400040u) | ((q << 11) & 0x80008000u);
}

// A scale word (4 scale codes) -> two bf16x2 registers of scale * 2^119: lo = {j0, j1}, hi = {j2, j3}.
// (x & 0x0FF00FF0) | 0x70007000 as one LOP3 (ptxas otherwise emits an AND and an OR).
__host__ __device__ __forceinline__ uint32_t ScaleBits(uint32_t x) {
#ifdef __CUDA_ARCH__
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(r) : "r"(x), "n"(0x0FF00FF0), "r"(0x70007000));  // (a & b) | c
  return r;
#else
  return (x & 0x0FF00FF0u) | 0x70007000u;
#endif
}

__host__ __device__ __forceinline__ void ExpandScales(uint32_t s, uint32_t* lo, uint32_t* hi) {
  *lo = ScaleBits(s);
  *hi = ScaleBits(Rotr(s, 8));
}

// Host side of the layout (used by the repack and the tests).

// float8_e4m3fn byte (non-negative, not NaN) -> scale code u; 0 and -0 -> 0.
inline uint8_t ScaleCode(uint8_t e4m3) {
  const int exp = (e4m3 >> 3) & 0xF;
  int mant = e4m3 & 7;
  if ((e4m3 & 0x7F) == 0) return 0;
  int e;  // value = 2^e * (1 + mant / 8)
  if (exp != 0) {
    e = exp - 7;
  } else {  // subnormal mant * 2^-9: normalize
    e = -9;
    while (mant < 8) {
      mant <<= 1;
      --e;
    }
    mant -= 8;
    e += 3;
  }
  return static_cast<uint8_t>(((e + 22) << 3) | mant);
}

// Adds scale code u to slot j (0..7) of a lane's two scale words: word j / 4, and within it
// ExpandScales' lo.lo, lo.hi, hi.lo, hi.hi for j % 4 = 0, 1, 2, 3.
inline void PlaceScaleCode(uint32_t words[2], int j, uint8_t u) {
  uint32_t& w = words[j / 4];
  switch (j % 4) {
    case 0:
      w |= static_cast<uint32_t>(u) << 4;
      break;
    case 1:
      w |= static_cast<uint32_t>(u) << 20;
      break;
    case 2:
      w |= static_cast<uint32_t>(u) << 12;
      break;
    case 3:
      w |= (static_cast<uint32_t>(u & 0xF) << 28) | (static_cast<uint32_t>(u) >> 4);
      break;
  }
}

// Where the code of tile row r (0..15) and chunk input kl (0..63) goes: lane, word, register, half.
struct CodeSlot {
  int lane;  // 0..31: the 16 bytes at lane * 16
  int word;  // 0..3 within them (the k-step)
  int reg;   // 0..3: which ExpandCodes output
  int half;  // 0 = low (even input), 1 = high
};
inline CodeSlot CodeSlotOf(int r, int kl) {
  const int g = r % 8, t = kl / 16, o = kl % 16;
  return CodeSlot{4 * g + t, o / 4, (r / 8) + 2 * ((o % 4) / 2), o % 2};
}

// Which of the lane's scale-word slots j (PlaceScaleCode) holds tile row r's scale for chunk c of a record.
inline int ScaleSlotOf(int r, int chunk) { return 4 * (chunk / 2) + 2 * (chunk % 2) + r / 8; }

// The 32-bit pattern of one E2M1 code placed in (reg, half) of a word.
inline uint32_t PlaceCode(int reg, int half, uint8_t code) {
  const int* bit = kCodeBit[reg][half];
  return (static_cast<uint32_t>((code >> 3) & 1) << bit[0]) |
         (static_cast<uint32_t>((code >> 2) & 1) << bit[1]) |
         (static_cast<uint32_t>((code >> 1) & 1) << bit[2]) | (static_cast<uint32_t>(code & 1) << bit[3]);
}

}  // namespace tandem::kernels::nvfp4
