// tandem::Tensor and the fp16/bf16 conversions.
#include "tandem/core/tensor.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace tandem {
namespace {

TEST(TensorTest, FactoriesSharingAndHalfConversions) {
  Tensor z = Tensor::Zeros(DType::kF32, {3, 4});
  EXPECT_EQ(z.numel(), 12);
  EXPECT_EQ(z.nbytes(), 48u);
  EXPECT_EQ(z.data<float>()[11], 0.0f);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(z.raw_data()) % 64, 0u);
  Tensor shared = z;
  EXPECT_TRUE(shared.SharesStorageWith(z));
  Tensor copy = z.Clone();
  EXPECT_FALSE(copy.SharesStorageWith(z));
  EXPECT_EQ(z.Reshape({12}).dim(0), 12);
  EXPECT_EQ(z.DebugString(), "f32[3, 4]");
  EXPECT_FALSE(Tensor().defined());
  EXPECT_EQ(FloatToBf16(1.0f), 0x3F80);
  EXPECT_EQ(FloatToBf16(1.00390625f), 0x3F80);  // tie rounds to even
  EXPECT_EQ(FloatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7BFF);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7C00);
  EXPECT_EQ(FloatToHalf(5.9604644775390625e-8f), 0x0001);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xC000);
  for (uint32_t h = 0; h < 0x7C00; ++h) {  // every finite non-negative half round-trips
    ASSERT_EQ(FloatToHalf(HalfToFloat(static_cast<uint16_t>(h))), h);
  }
  EXPECT_STREQ(DTypeName(DType::kBF16), "bf16");
}

}  // namespace
}  // namespace tandem
