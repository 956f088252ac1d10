// safetensors: any bytes open to a file or an error; every tensor it lists lies inside the file and
// converts to fp32 or gives an error.
#include "fuzz_file_input.h"
#include "tandem/model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!tandem::fuzz::WriteInput(data, size)) return 0;
  auto file = tandem::model::SafetensorsFile::Open(tandem::fuzz::InputPath());
  if (!file.ok()) return 0;
  for (const auto& [name, info] : (*file)->tensors()) {
    if (info.nbytes <= (1u << 20)) (void)tandem::model::ToFloat32(info);
  }
  return 0;
}
