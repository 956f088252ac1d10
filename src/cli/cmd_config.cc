#include <cstdio>

#include "commands.h"
#include "flags.h"
#include "tandem/core/config.h"

namespace tandem::cli {

int RunConfig(const Args& args) {
  const std::vector<FlagSpec> specs = {
      {"config", "deployment YAML file", true, false, "c"},
      {"set", "override a key: --set pools.decode.replicas=3 (value in YAML syntax)", true, true, ""},
  };
  const std::string usage = "tandem config check -c FILE [--set KEY=VALUE ...]";
  if (WantsHelp(args)) {
    std::printf("%s", FormatHelp(usage, "Validate a deployment file and print the resolved deployment: every key "
                                 "with its default filled in, and which worker gets which devices.", specs).c_str());
    return 0;
  }
  auto flags = Flags::Parse(args, specs);
  if (!flags.ok()) {
    std::fprintf(stderr, "tandem config: %s\n", std::string(flags.status().message()).c_str());
    return 2;
  }
  if (flags->positional().size() != 1 || flags->positional()[0] != "check" || !flags->Has("config")) {
    std::fprintf(stderr, "Usage: %s\n", usage.c_str());
    return 2;
  }
  auto config = LoadDeploymentConfig(flags->Get("config"), flags->All("set"));
  if (!config.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  std::printf("%s", DescribeDeployment(*config).c_str());
  return 0;
}

}  // namespace tandem::cli
