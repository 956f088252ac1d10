// Which UCX this process loaded and what it can move: the library's version and path, where UCX
// loads its transport modules from, the transports those modules and the built-in ones provide,
// and the memory types a UCP context accepts. `tandem version` prints it; the ucx transport names
// it when device memory is registered with a UCX that cannot move it.
//
// Where the modules come from: UCX (ucs/sys/module.c) searches `<directory of the loaded libucs>/ucx`
// first, with the extension the loaded libucs has ("libucs.so.0" -> "libuct_cuda.so.0"), then the
// UCX_MODULE_DIR variable (default: the directory UCX was configured with, which for the
// libucx-cu13 wheel is its build machine's). So the modules are found without any setting wherever
// libucs is loaded from with its `ucx/` beside it: the wheel's tree in the tandem cache (through
// the executables' RPATH, cmake/Ucx.cmake), Debian's /usr/lib/x86_64-linux-gnu, or a folder that
// bundles an executable's libraries with the modules in `lib/ucx`. UCX reads UCX_MODULE_DIR once,
// in libucs's constructor, before main(): setting it from tandem's code would change nothing.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tandem::transfer {

struct UcxInfo {
  std::string version;           // of the library loaded (ucp_get_version_string), e.g. "1.22.0"
  std::string compiled_version;  // of the headers tandem was compiled against (UCP_API_*), e.g. "1.22"
  std::string library_path;      // the libucp this process loaded
  std::string module_dir;        // where UCX looks for its modules first (UcxModuleDir of the loaded libucs)
  std::vector<std::string> modules;  // module file names found there, e.g. "libuct_cuda.so.0"; sorted
  // Transport names with at least one resource on this machine, e.g. "cuda_copy", "cuda_ipc",
  // "posix", "tcp"; sorted, unique. The cuda ones need the module and a visible GPU.
  std::vector<std::string> transports;
  // A UCP context's (UCP_ATTR_FIELD_MEMORY_TYPES), e.g. "host", "cuda".
  std::vector<std::string> memory_types;

  bool HasTransport(std::string_view name) const;
  bool HasMemoryType(std::string_view name) const;
  // One line: version, library, module directory, transports and memory types, for error messages.
  std::string Summary() const;
};

// Creates (and cleans up) a UCP context of its own to ask for the memory types, so it costs what
// ucp_init costs (a few tens of milliseconds).
absl::StatusOr<UcxInfo> QueryUcx();

// The directory UCX searches first for its modules, given the path of the libucs it was loaded
// from: the `ucx` directory beside it ("/a/lib/libucs.so.0" -> "/a/lib/ucx"; "libucs.so.0" -> "./ucx").
std::string UcxModuleDir(std::string_view libucs_path);

// The path of the loaded shared library whose file name starts with `prefix` (e.g. "libucs.so"),
// as the dynamic loader opened it, or "" when none is loaded.
std::string LoadedLibraryPath(std::string_view prefix);

}  // namespace tandem::transfer
