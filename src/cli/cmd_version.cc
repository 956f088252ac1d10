#include <cstdio>

#include "commands.h"
#include "flags.h"
#include "tandem/core/build_info.h"

namespace tandem::cli {

int RunVersion(const Args& args) {
  if (WantsHelp(args)) {
    std::printf("%s", FormatHelp("tandem version", "Print the version, git hash and the CUDA, NCCL and UCX "
                                 "versions tandem was built with.", {}).c_str());
    return 0;
  }
  if (!args.empty()) {
    std::fprintf(stderr, "tandem version: takes no arguments\n");
    return 2;
  }
  const bool cuda = build_info::kCudaVersion[0] != '\0';
  std::printf("tandem %s (git %s, %s build)\n", build_info::kVersion, build_info::kGitHash, build_info::kBuildType);
  std::printf("cuda: %s\n", cuda ? build_info::kCudaVersion : "not built (CPU only)");
  if (cuda) std::printf("cuda architectures: %s\n", build_info::kCudaArchitectures);
  std::printf("nccl: %s\n", cuda ? build_info::kNcclVersion : "not built");
  std::printf("ucx: %s\n", build_info::kUcxVersion);
  return 0;
}

}  // namespace tandem::cli
