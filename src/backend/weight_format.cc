#include "tandem/backend/backend.h"

namespace tandem::backend {

int64_t WeightRowBytes(WeightFormat format, int64_t cols) {
  switch (format) {
    case WeightFormat::kF32:
      return cols * 4;
    case WeightFormat::kQ4_1:
      return cols / 32 * 20;
    case WeightFormat::kQ8_0:
      return cols / 32 * 34;
  }
  return 0;
}

}  // namespace tandem::backend
