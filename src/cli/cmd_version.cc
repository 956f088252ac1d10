#include <cstdio>
#include <string>

#include "absl/strings/str_join.h"
#include "commands.h"
#include "flags.h"
#include "tandem/core/build_info.h"
#ifdef TANDEM_HAVE_WORKER  // the worker module brings the transfer module, and with it UCX
#include "tandem/transfer/ucx_info.h"
#endif

namespace tandem::cli {
namespace {

#ifdef TANDEM_HAVE_WORKER
// The UCX this process loaded (not only the one it was built with): its library, where its
// transport modules come from, the transports it found and whether device memory can move.
int PrintUcx() {
  absl::StatusOr<transfer::UcxInfo> info = transfer::QueryUcx();
  if (!info.ok()) {
    std::printf("ucx: built with %s; loading it failed: %s\n", build_info::kUcxVersion,
                info.status().ToString().c_str());
    return 1;
  }
  const auto list = [](const std::vector<std::string>& names) {
    return names.empty() ? std::string("none") : absl::StrJoin(names, ", ");
  };
  std::printf("ucx: %s (%s%s%s)\n", info->version.c_str(), info->library_path.c_str(),
              info->version == build_info::kUcxVersion ? "" : "; built with ",
              info->version == build_info::kUcxVersion ? "" : build_info::kUcxVersion);
  std::printf("ucx modules: %s (%s)\n", info->module_dir.c_str(), list(info->modules).c_str());
  std::printf("ucx transports: %s\n", list(info->transports).c_str());
  std::printf("ucx memory types: %s\n", list(info->memory_types).c_str());
  const bool copy = info->HasTransport("cuda_copy"), ipc = info->HasTransport("cuda_ipc");
  std::printf("ucx cuda: cuda_copy %s, cuda_ipc %s (%s)\n", copy ? "yes" : "no", ipc ? "yes" : "no",
              !info->HasMemoryType("cuda") ? "device memory cannot be registered"
              : ipc                        ? "device to device between processes on this host"
                                           : "device memory staged through host memory");
  return 0;
}
#else
int PrintUcx() {
  std::printf("ucx: %s\n", build_info::kUcxVersion);
  return 0;
}
#endif

}  // namespace

int RunVersion(const Args& args) {
  if (WantsHelp(args)) {
    std::printf("%s", FormatHelp("tandem version",
                                 "Print the version, git hash and the CUDA, NCCL and UCX "
                                 "versions tandem was built with, and the UCX it loads: its library, "
                                 "transport modules, transports and memory types.",
                                 {})
                          .c_str());
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
  return PrintUcx();
}

}  // namespace tandem::cli
