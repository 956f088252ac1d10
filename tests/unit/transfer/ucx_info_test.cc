// Which UCX the process loaded and where its transport modules come from: the library the build
// linked (the libucx-cu13 wheel's in CUDA builds, through the RUNPATH), its modules found beside the
// loaded libucs with nothing set, also when the libraries are bundled into another folder (as the
// device machine's runs do), and device memory refused clearly by a UCX without CUDA transports.
#include "tandem/transfer/ucx_info.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tandem/core/build_info.h"
#include "tandem/transfer/ucx_transport.h"

extern char** environ;

namespace tandem::transfer {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string DirOf(const std::string& path) { return fs::path(path).parent_path().string(); }

TEST(UcxModuleDirTest, IsTheUcxFolderBesideLibucs) {
  EXPECT_EQ(UcxModuleDir("/opt/ucx/lib/libucs.so.0"), "/opt/ucx/lib/ucx");
  EXPECT_EQ(UcxModuleDir(".device/lib/libucs.so.0"), ".device/lib/ucx");
  EXPECT_EQ(UcxModuleDir("/libucs.so.0"), "/ucx");
  EXPECT_EQ(UcxModuleDir("libucs.so.0"), "./ucx");
}

TEST(LoadedLibraryPathTest, FindsLoadedLibrariesByFileName) {
  EXPECT_EQ(LoadedLibraryPath("libtandem-no-such-library.so"), "");
  const std::string ucp = LoadedLibraryPath("libucp.so");
  ASSERT_FALSE(ucp.empty());
  EXPECT_TRUE(fs::exists(ucp)) << ucp;
  EXPECT_THAT(fs::path(ucp).filename().string(), StartsWith("libucp.so"));
}

TEST(QueryUcxTest, ReportsTheLibraryTheBuildLinked) {
  auto info = QueryUcx();
  ASSERT_TRUE(info.ok()) << info.status();
  std::printf("%s\n", info->Summary().c_str());
  EXPECT_EQ(info->version, build_info::kUcxVersion) << "the UCX loaded is not the one the build found";
  EXPECT_THAT(info->version, StartsWith(info->compiled_version + "."));
  const std::string wheel_lib_dir = TANDEM_UCX_LIBRARY_DIR;
  if (!wheel_lib_dir.empty()) {  // CUDA builds: the wheel's, not the distribution's
    EXPECT_EQ(DirOf(info->library_path), wheel_lib_dir);
    EXPECT_EQ(info->module_dir, wheel_lib_dir + "/ucx");
    EXPECT_THAT(info->modules, Contains("libuct_cuda.so.0"));
  }
  EXPECT_EQ(info->module_dir, UcxModuleDir(LoadedLibraryPath("libucs.so")));
  EXPECT_TRUE(fs::is_directory(info->module_dir)) << info->module_dir;
  EXPECT_THAT(info->modules, Contains("libuct_cma.so.0"));  // in Debian's UCX and the wheel's alike
  EXPECT_THAT(info->transports, Contains("tcp"));
  EXPECT_THAT(info->transports, Contains("self"));
  EXPECT_TRUE(info->HasMemoryType("host"));
  EXPECT_EQ(info->HasTransport("cuda_copy"), info->HasMemoryType("cuda")) << info->Summary();
}

// --- The modules are found beside a bundled libucs: this binary re-executed with LD_LIBRARY_PATH
// naming a folder that holds copies of the UCX libraries and, in ucx/, of the modules. ---

// Helper process, not a test of its own: skipped unless the parent test started it.
TEST(UcxBundleChild, ReportsWhereUcxCameFrom) {
  const char* out = std::getenv("TANDEM_UCX_BUNDLE_REPORT");
  if (out == nullptr) GTEST_SKIP() << "helper process of UcxBundleTest.ModulesLoadFromBesideTheBundledLibucs";
  auto info = QueryUcx();  // loads the uct modules (uct_query_components)
  ASSERT_TRUE(info.ok()) << info.status();
  std::ofstream report(out);
  report << LoadedLibraryPath("libucs.so") << "\n"
         << LoadedLibraryPath("libuct_cma.so") << "\n"
         << info->module_dir << "\n";
}

TEST(UcxBundleTest, ModulesLoadFromBesideTheBundledLibucs) {
  const fs::path bundle = fs::temp_directory_path() / ("tandem_ucx_bundle_" + std::to_string(getpid()));
  struct RemoveOnExit {
    fs::path path;
    ~RemoveOnExit() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } cleanup{bundle};
  const fs::path lib = bundle / "lib";
  fs::create_directories(lib / "ucx");
  for (const char* name : {"libucp.so", "libuct.so", "libucs.so", "libucm.so"}) {
    const std::string path = LoadedLibraryPath(name);
    ASSERT_FALSE(path.empty()) << name << " is not loaded";
    fs::copy_file(fs::canonical(path), lib / fs::path(path).filename());
  }
  const std::string modules = UcxModuleDir(LoadedLibraryPath("libucs.so"));
  ASSERT_TRUE(fs::exists(fs::path(modules) / "libuct_cma.so.0")) << modules;
  fs::copy_file(fs::canonical(fs::path(modules) / "libuct_cma.so.0"), lib / "ucx" / "libuct_cma.so.0");

  const fs::path report = bundle / "report.txt";
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    if (entry.starts_with("LD_LIBRARY_PATH=") || entry.starts_with("UCX_MODULE_DIR=")) continue;
    env_strings.push_back(entry);
  }
  env_strings.push_back("LD_LIBRARY_PATH=" + lib.string());
  env_strings.push_back("TANDEM_UCX_BUNDLE_REPORT=" + report.string());
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string exe = fs::canonical("/proc/self/exe").string(), filter = "--gtest_filter=UcxBundleChild.*";
  char* argv[] = {exe.data(), filter.data(), nullptr};
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    execve(exe.c_str(), argv, envp.data());
    _exit(127);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child process failed: " << status;

  std::ifstream in(report);
  std::string libucs, cma, module_dir;
  ASSERT_TRUE(std::getline(in, libucs) && std::getline(in, cma) && std::getline(in, module_dir))
      << "the child wrote no report";
  EXPECT_EQ(DirOf(libucs), lib.string()) << "libucs did not come from the bundle";
  EXPECT_EQ(module_dir, (lib / "ucx").string());
  EXPECT_EQ(DirOf(cma), (lib / "ucx").string())
      << "UCX did not load its cma module from beside the bundled libucs";
}

// On this machine UCX may lack CUDA transports (Debian's UCX; the wheel's without a GPU or driver):
// registering device memory is then refused with what was found, and the memory is never mapped.
TEST(UcxDeviceMemoryTest, RefusedClearlyWithoutCudaTransports) {
  auto info = QueryUcx();
  ASSERT_TRUE(info.ok()) << info.status();
  if (info->HasMemoryType("cuda"))
    GTEST_SKIP() << "UCX has CUDA here (tests/gpu/ucx_cuda_transfer_test.cc covers it)";
  auto transport = UcxTransport::Create();
  ASSERT_TRUE(transport.ok()) << transport.status();
  std::vector<char> host(4096, 'x');  // labelled as device memory: it must not be mapped as host memory
  auto region = (*transport)->RegisterMemory({host.data(), host.size(), backend::MemoryKind::kDevice, 0});
  ASSERT_FALSE(region.ok());
  std::printf("%s\n", region.status().ToString().c_str());
  EXPECT_EQ(region.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(
      std::string(region.status().message()),
      StartsWith(
          "ucx RegisterMemory: device memory needs UCX with its CUDA transports (cuda_copy, cuda_ipc), "
          "found UCX " +
          info->version + " (" + info->library_path + "; modules from " + info->module_dir));
  EXPECT_THAT(std::string(region.status().message()), HasSubstr("memory types: host"));
  // Host memory still registers.
  auto host_region = (*transport)->RegisterMemory({host.data(), host.size(), backend::MemoryKind::kHost, -1});
  EXPECT_TRUE(host_region.ok()) << host_region.status();
}

}  // namespace
}  // namespace tandem::transfer
