// The order in which the NVFP4 GEMM streams weights, shared by the host repack (Nvfp4RepackForGpu),
// the kernels and the tests (the __host__ __device__ functions compile for both, so the CPU tests run
// the very bit tricks the GPU runs). Plain C++ plus CUDA's function qualifiers.
//
// Tiles. The weight W [n, k] is cut into tiles of 64 output columns x 16 inputs: one k-step of
// mma.m16n8k16 (16 inputs = exactly one E4M3 scale group) for 8 n8 tiles. Tiles are stored
// column-tile-major, k-steps contiguous, so a block that owns column tile nt streams one contiguous
// range:
//   codes  [n_tiles = ceil(n / 64)][k / 16][512 bytes]   (32 lanes x 16 bytes)
//   scales [n_tiles][k / 16][64 bytes]                    (8 lane groups x 8 bytes)
// Columns past n in the last tile are zero codes with scale code 0 (they compute zeros).
//
// Codes. Lane l = 4g + t of a warp (g = l / 4, t = l % 4) reads the 16 bytes at l * 16: four 32-bit
// words. Word a holds the mma B fragments of n8 tiles j = 2a and 2a + 1 for column 8j + g, i.e.
// k = 2t, 2t + 1 (register b01) and k = 2t + 8, 2t + 9 (register b23): 8 codes. ExpandCodes turns it
// into four bf16x2 registers {j=2a: b01, b23; j=2a+1: b01, b23}, each half (the low half is the even
// k) holding e2m1 * 2^-126 as bf16 bits: the code's sign at bit 15 and its 3 magnitude bits e1 e0 m
// at bits 8..6 (exponent field e1 e0, mantissa m; e = 0 gives the bf16 subnormal 0.5 * 2^-126, so the
// map is exact for all 16 codes). The codes are placed in the word so that three of the four
// registers are one rotate and one AND (kCodeBit below; 11 integer instructions for 8 codes, against
// 15 for the plain nibble order).
//
// Scales. Lane group g reads the 8 bytes at g * 8 of the scale tile: the scales of its columns 8j + g,
// j = 0..7, as one byte each in an unsigned E5M3 code u (exponent bias 22, no subnormals: every E4M3
// value from 2^-9 to 448 is exact in it; 0 = zero scale, whose block's codes the repack also clears).
// ExpandScales turns a word of four into two bf16x2 registers: bf16 bits 0x7000 | u << 4 in each half,
// i.e. the value scale * 2^119. code * scale = e2m1 * 2^-126 * scale * 2^119 = e2m1 * scale * 2^-7,
// exact in bf16 (at most 6 significant bits, from 2^-17 to 21), so the kernel's weights are the
// checkpoint's values times 2^-7 / scale2, and the epilogue multiplies by scale2 * 2^7.
// The bytes of a word are not in j order: word h (h = 0, 1) holds j = 4h .. 4h + 3 with u(4h) at bits
// 4..11, u(4h + 1) at 20..27, u(4h + 2) at 12..19 and u(4h + 3) at 28..31 (low nibble) and 0..3 (high
// nibble), so that (word & 0x0FF00FF0) and (rotr(word, 8) & 0x0FF00FF0) are both in place.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tandem::kernels::nvfp4 {

inline constexpr int kTileN = 64;             // output columns per tile
inline constexpr int kStepK = 16;             // inputs per k-step (one scale group, one mma k)
inline constexpr int kCodeTileBytes = 512;    // codes of one 64 x 16 tile
inline constexpr int kScaleTileBytes = 64;    // scale codes of one 64 x 16 tile
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

// Adds the scale code u of n8 tile j (0..7) to the two words of its lane group.
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

// Where the code of column c (0..63) and input kl (0..15) of a tile goes: lane, word, register, half.
struct CodeSlot {
  int lane;  // 0..31: the 16 bytes at lane * 16
  int word;  // 0..3 within them
  int reg;   // 0..3: which ExpandCodes output
  int half;  // 0 = low (even k), 1 = high
};
inline CodeSlot CodeSlotOf(int c, int kl) {
  const int j = c / 8, g = c % 8;
  const int t = (kl % 8) / 2;
  return CodeSlot{4 * g + t, j / 2, (j % 2) * 2 + kl / 8, kl % 2};
}

// The 32-bit pattern of one E2M1 code placed in (reg, half) of a word.
inline uint32_t PlaceCode(int reg, int half, uint8_t code) {
  const int* bit = kCodeBit[reg][half];
  return (static_cast<uint32_t>((code >> 3) & 1) << bit[0]) |
         (static_cast<uint32_t>((code >> 2) & 1) << bit[1]) |
         (static_cast<uint32_t>((code >> 1) & 1) << bit[2]) | (static_cast<uint32_t>(code & 1) << bit[3]);
}

}  // namespace tandem::kernels::nvfp4
