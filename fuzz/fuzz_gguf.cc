// GGUF: any bytes open to a file (metadata, tensor infos) or an error; small tensors dequantize.
#include "fuzz_file_input.h"
#include "tandem/model/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!tandem::fuzz::WriteInput(data, size)) return 0;
  (void)tandem::model::GgufFile::Open(tandem::fuzz::InputPath());
  return 0;
}
