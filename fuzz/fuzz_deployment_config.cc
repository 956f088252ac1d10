// The deployment YAML: any text parses to a validated deployment or an error naming the key.
#include <string>

#include "tandem/core/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = tandem::ParseDeploymentConfig(text, "fuzz.yaml", {});
  if (config.ok()) (void)tandem::DescribeDeployment(*config);
  return 0;
}
