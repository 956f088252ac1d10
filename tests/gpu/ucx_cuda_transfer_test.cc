// The ucx KvTransport on a GPU: the UCX loaded has its CUDA transports; device memory that is not
// device memory is refused; and between two processes (this binary re-executed as the receiver,
// on the last GPU, so on one H200 both ends share it) random block lists of device memory land
// byte-exact in the receiver's pool, the notification after the data, over cuda_ipc and over TCP
// with cuda_copy staging (what a peer on another host gets from the wheel's UCX, which has no RDMA
// module). The cuda_ipc run prints its bandwidth for 1 GiB and for 32 MiB writes (one Llama-3-8B
// layer's KV of an 8K prompt) next to a device-to-device cudaMemcpy's in the same process.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gpu_test_util.h"
#include "gtest/gtest.h"
#include "tandem/transfer/block_runs.h"
#include "tandem/transfer/ucx_info.h"
#include "tandem/transfer/ucx_transport.h"

extern char** environ;

namespace tandem::transfer {
namespace {

using ::tandem::testing::DeviceBuffer;
using Clock = std::chrono::steady_clock;

int GpuCount() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

std::unique_ptr<UcxTransport> MakeTransport() {
  auto t = UcxTransport::Create();
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

std::vector<uint8_t> RandomBytes(std::size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937 rng(seed);
  for (std::size_t i = 0; i < n; i += 4) {
    const uint32_t r = rng();
    std::memcpy(v.data() + i, &r, std::min<std::size_t>(4, n - i));
  }
  return v;
}

// FNV-1a over 8-byte words (sizes here are multiples of 8).
uint64_t Fingerprint(const std::vector<uint8_t>& bytes) {
  uint64_t h = 1469598103934665603ull;
  for (std::size_t i = 0; i + 8 <= bytes.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, bytes.data() + i, 8);
    h = (h ^ w) * 1099511628211ull;
  }
  return h;
}

bool WriteAll(int fd, const void* data, std::size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = write(fd, p, n);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool ReadAll(int fd, void* data, std::size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t r = read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

bool WriteString(int fd, const std::string& s) {
  const uint32_t n = static_cast<uint32_t>(s.size());
  return WriteAll(fd, &n, 4) && WriteAll(fd, s.data(), n);
}

bool ReadString(int fd, std::string* s) {
  uint32_t n = 0;
  if (!ReadAll(fd, &n, 4)) return false;
  s->resize(n);
  return ReadAll(fd, s->data(), n);
}

TEST(UcxCudaTest, LoadsCudaTransports) {
  TANDEM_REQUIRE_GPU();
  auto info = QueryUcx();
  ASSERT_TRUE(info.ok()) << info.status();
  std::printf("%s\n", info->Summary().c_str());
  EXPECT_TRUE(info->HasMemoryType("cuda")) << info->Summary();
  EXPECT_TRUE(info->HasTransport("cuda_copy")) << info->Summary();
  EXPECT_TRUE(info->HasTransport("cuda_ipc")) << info->Summary();
}

TEST(UcxCudaTest, RefusesWhatIsNotDeviceMemory) {
  TANDEM_REQUIRE_GPU();
  auto t = MakeTransport();
  ASSERT_TRUE(t);
  std::vector<uint8_t> host(4096);
  auto r = t->RegisterMemory({host.data(), host.size(), backend::MemoryKind::kDevice, 0});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_NE(r.status().message().find("found ordinary host memory"), std::string::npos) << r.status();
  TANDEM_CUDA_ASSERT(cudaSetDevice(0));
  DeviceBuffer device(1 << 20);
  ASSERT_TRUE(device.ok());
  r = t->RegisterMemory({device.as<void>(), device.bytes(), backend::MemoryKind::kDevice, GpuCount()});
  ASSERT_FALSE(r.ok()) << "a region naming another device than its pointer's must be refused";
  EXPECT_NE(r.status().message().find("is on device 0"), std::string::npos) << r.status();
  r = t->RegisterMemory({device.as<void>(), device.bytes(), backend::MemoryKind::kDevice, -1});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(t->DeregisterMemory(*r).ok());
}

// --- Two processes: the receiver is this binary re-executed with TANDEM_UCX_CUDA_CHILD_FD set. ---

// Receiver: a device pool poisoned with 0xEE; for each notification "check" it answers with the
// fingerprint of the whole pool, "exit" ends it.
TEST(UcxCudaChild, Receiver) {
  const char* fd_env = std::getenv("TANDEM_UCX_CUDA_CHILD_FD");
  if (fd_env == nullptr) GTEST_SKIP() << "helper process of UcxCudaTest.TwoProcesses*";
  const int fd = std::atoi(fd_env);
  const std::size_t pool_bytes = std::strtoull(std::getenv("TANDEM_UCX_CUDA_POOL_BYTES"), nullptr, 10);
  const int device = GpuCount() - 1;
  TANDEM_CUDA_ASSERT(cudaSetDevice(device));
  auto t = MakeTransport();
  ASSERT_TRUE(t);
  DeviceBuffer pool(pool_bytes);
  ASSERT_TRUE(pool.ok());
  TANDEM_CUDA_ASSERT(cudaMemset(pool.as<void>(), 0xEE, pool_bytes));
  TANDEM_CUDA_ASSERT(cudaDeviceSynchronize());
  auto region = t->RegisterMemory({pool.as<void>(), pool_bytes, backend::MemoryKind::kDevice, device});
  ASSERT_TRUE(region.ok()) << region.status();
  ASSERT_TRUE(WriteString(fd, *t->LocalAddress()) && WriteString(fd, *t->ExportRegion(*region)));
  std::vector<uint8_t> got(pool_bytes);
  const auto deadline = Clock::now() + std::chrono::seconds(300);
  while (Clock::now() < deadline) {
    for (const std::string& note : t->TakeNotifications()) {
      if (note == "exit") return;
      ASSERT_EQ(note, "check");
      TANDEM_CUDA_ASSERT(cudaMemcpy(got.data(), pool.as<void>(), pool_bytes, cudaMemcpyDeviceToHost));
      const uint64_t fingerprint = Fingerprint(got);
      ASSERT_TRUE(WriteAll(fd, &fingerprint, 8));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  FAIL() << "the writer never said exit";
}

class TwoProcesses {
 public:
  // Starts the receiver with `ucx_tls` (empty: UCX's choice) and makes this process's transport
  // with the same, so both ends offer the same transports.
  void Start(std::size_t pool_bytes, const std::string& ucx_tls) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    read_fd_ = fds[0];
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, "UCX_TLS=", 8) != 0) env_strings.emplace_back(*e);
    }
    env_strings.push_back("TANDEM_UCX_CUDA_CHILD_FD=" + std::to_string(fds[1]));
    env_strings.push_back("TANDEM_UCX_CUDA_POOL_BYTES=" + std::to_string(pool_bytes));
    if (!ucx_tls.empty()) env_strings.push_back("UCX_TLS=" + ucx_tls);
    std::vector<char*> envp;
    for (std::string& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string exe = "/proc/self/exe", filter = "--gtest_filter=UcxCudaChild.Receiver";
    char* argv[] = {exe.data(), filter.data(), nullptr};
    child_ = fork();
    ASSERT_GE(child_, 0);
    if (child_ == 0) {
      close(fds[0]);
      execve(exe.c_str(), argv, envp.data());
      _exit(127);
    }
    close(fds[1]);
    std::string address, descriptor;
    ASSERT_TRUE(ReadString(read_fd_, &address) && ReadString(read_fd_, &descriptor))
        << "the receiver process did not start";

    // UCX reads UCX_TLS in ucp_config_read, inside Create.
    const char* old = std::getenv("UCX_TLS");
    const std::string saved = old != nullptr ? old : "";
    if (!ucx_tls.empty()) setenv("UCX_TLS", ucx_tls.c_str(), 1);
    transport_ = MakeTransport();
    if (!ucx_tls.empty()) {
      if (old != nullptr) {
        setenv("UCX_TLS", saved.c_str(), 1);
      } else {
        unsetenv("UCX_TLS");
      }
    }
    ASSERT_TRUE(transport_);
    TANDEM_CUDA_ASSERT(cudaSetDevice(0));
    src_ = std::make_unique<DeviceBuffer>(pool_bytes);
    ASSERT_TRUE(src_->ok());
    src_host_ = RandomBytes(pool_bytes, 7);
    TANDEM_CUDA_ASSERT(cudaMemcpy(src_->as<void>(), src_host_.data(), pool_bytes, cudaMemcpyHostToDevice));
    auto region = transport_->RegisterMemory({src_->as<void>(), pool_bytes, backend::MemoryKind::kDevice, 0});
    ASSERT_TRUE(region.ok()) << region.status();
    region_ = *region;
    auto peer = transport_->Connect(address);
    ASSERT_TRUE(peer.ok()) << peer.status();
    peer_ = *peer;
    auto remote = transport_->ImportRegion(peer_, descriptor);
    ASSERT_TRUE(remote.ok()) << remote.status();
    remote_ = *remote;
    expected_.assign(pool_bytes, 0xEE);
  }

  ~TwoProcesses() {
    if (transport_ && child_ > 0) {
      auto t = transport_->PostWrite(peer_, {}, "exit");
      if (t.ok()) {
        (void)WaitForTransfer(*transport_, *t, 10000);
        transport_->Release(*t);
      }
    }
    if (child_ > 0) {
      int status = 0;
      const auto deadline = Clock::now() + std::chrono::seconds(20);
      while (waitpid(child_, &status, WNOHANG) == 0) {
        if (Clock::now() > deadline) {
          kill(child_, SIGKILL);
          waitpid(child_, &status, 0);
          ADD_FAILURE() << "the receiver did not exit";
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the receiver failed: status " << status;
    }
    if (read_fd_ >= 0) close(read_fd_);
  }

  // Writes `ops`, mirrors them into expected_, asks the receiver for its pool's fingerprint and
  // compares it with the mirror's.
  void WriteAndCheck(const std::vector<WriteOp>& ops) {
    auto t = transport_->PostWrite(peer_, ops, "check");
    ASSERT_TRUE(t.ok()) << t.status();
    const absl::Status s = WaitForTransfer(*transport_, *t, 120000);
    ASSERT_TRUE(s.ok()) << s;
    transport_->Release(*t);
    for (const WriteOp& op : ops) {
      std::memcpy(expected_.data() + op.remote_offset, src_host_.data() + op.local_offset, op.bytes);
    }
    uint64_t fingerprint = 0;
    ASSERT_TRUE(ReadAll(read_fd_, &fingerprint, 8)) << "the receiver did not answer";
    EXPECT_EQ(fingerprint, Fingerprint(expected_))
        << "the receiver's pool holds other bytes than were written";
  }

  // Random block lists mixing consecutive runs and scattered ids, several rounds.
  void RandomBlockLists(std::size_t block_bytes, int rounds) {
    const int64_t blocks = static_cast<int64_t>(src_host_.size() / block_bytes);
    std::mt19937 rng(11);
    for (int round = 0; round < rounds; ++round) {
      std::vector<int64_t> src(static_cast<std::size_t>(blocks)), dst(static_cast<std::size_t>(blocks));
      std::iota(src.begin(), src.end(), 0);
      std::iota(dst.begin(), dst.end(), 0);
      std::shuffle(src.begin(), src.end(), rng);
      std::shuffle(dst.begin(), dst.end(), rng);
      const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(blocks), 300);
      src.resize(n);
      dst.resize(n);
      for (std::size_t i = 0; i + 1 < n && round % 2 == 1; i += 7) {  // some consecutive runs
        if (src[i] + 1 < blocks && dst[i] + 1 < blocks) {
          src[i + 1] = src[i] + 1;
          dst[i + 1] = dst[i] + 1;
        }
      }
      // Drop duplicate destinations the runs made (the later write would win).
      std::vector<bool> taken(static_cast<std::size_t>(blocks));
      std::vector<int64_t> s2, d2;
      for (std::size_t i = 0; i < n; ++i) {
        if (taken[static_cast<std::size_t>(dst[i])]) continue;
        taken[static_cast<std::size_t>(dst[i])] = true;
        s2.push_back(src[i]);
        d2.push_back(dst[i]);
      }
      auto runs = CoalesceBlockRuns(s2, d2);
      ASSERT_TRUE(runs.ok()) << runs.status();
      WriteAndCheck(LayerWrites(*runs, region_, remote_, block_bytes));
      if (::testing::Test::HasFatalFailure()) return;
    }
  }

  // Seconds per write of `bytes` (from offset 0), the mean of `repeats` writes after one warm-up.
  double TimeWrites(std::size_t bytes, int repeats) {
    const WriteOp op{region_, 0, remote_, 0, bytes};
    double total = 0;
    for (int i = 0; i <= repeats; ++i) {
      const auto start = Clock::now();
      auto t = transport_->PostWrite(peer_, std::span<const WriteOp>(&op, 1), "");
      EXPECT_TRUE(t.ok()) << t.status();
      if (!t.ok()) return 0;
      const absl::Status s = WaitForTransfer(*transport_, *t, 120000);
      EXPECT_TRUE(s.ok()) << s;
      transport_->Release(*t);
      if (i > 0) total += std::chrono::duration<double>(Clock::now() - start).count();
    }
    std::memcpy(expected_.data(), src_host_.data(), bytes);
    return total / repeats;
  }

  // Seconds per write when `count` writes of `bytes` each (consecutive ranges from offset 0) are all
  // posted before any is waited for, as the layer-wise sender posts one layer's KV after another;
  // the mean of `repeats` such batches after one warm-up.
  double TimePipelinedWrites(std::size_t bytes, int count, int repeats) {
    std::vector<WriteOp> ops;
    for (int i = 0; i < count; ++i) {
      const std::size_t at = static_cast<std::size_t>(i) * bytes;
      ops.push_back(WriteOp{region_, at, remote_, at, bytes});
    }
    double total = 0;
    for (int r = 0; r <= repeats; ++r) {
      const auto start = Clock::now();
      std::vector<TransferId> posted;
      for (const WriteOp& op : ops) {
        auto t = transport_->PostWrite(peer_, std::span<const WriteOp>(&op, 1), "");
        EXPECT_TRUE(t.ok()) << t.status();
        if (!t.ok()) return 0;
        posted.push_back(*t);
      }
      for (TransferId t : posted) {
        const absl::Status s = WaitForTransfer(*transport_, t, 120000);
        EXPECT_TRUE(s.ok()) << s;
        transport_->Release(t);
      }
      if (r > 0) total += std::chrono::duration<double>(Clock::now() - start).count();
    }
    std::memcpy(expected_.data(), src_host_.data(), bytes * static_cast<std::size_t>(count));
    return total / repeats / count;
  }

  UcxTransport& transport() { return *transport_; }
  DeviceBuffer& src() { return *src_; }

 private:
  pid_t child_ = -1;
  int read_fd_ = -1;
  std::unique_ptr<UcxTransport> transport_;
  std::unique_ptr<DeviceBuffer> src_;
  std::vector<uint8_t> src_host_, expected_;
  RegionId region_ = 0;
  PeerId peer_ = 0;
  RemoteRegionId remote_ = 0;
};

// Seconds per cudaMemcpy of `bytes` from `from` to `to` (same device), mean of `repeats`.
double TimeDeviceCopy(void* to, const void* from, std::size_t bytes, int repeats) {
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  cudaMemcpy(to, from, bytes, cudaMemcpyDeviceToDevice);  // warm-up
  cudaEventRecord(start);
  for (int i = 0; i < repeats; ++i) cudaMemcpyAsync(to, from, bytes, cudaMemcpyDeviceToDevice);
  cudaEventRecord(stop);
  cudaEventSynchronize(stop);
  float ms = 0;
  cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / 1000.0 / repeats;
}

TEST(UcxCudaTest, TwoProcessesOverCudaIpc) {
  TANDEM_REQUIRE_GPU();
  constexpr std::size_t kPool = 1ull << 30;
  TwoProcesses run;
  run.Start(kPool, "");
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  // bf16 KV blocks of the 8B shape: 2 (K,V) · 8 heads · 16 tokens · 128 dim · 2 bytes = 64 KiB.
  run.RandomBlockLists(64 << 10, 4);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  run.RandomBlockLists(4 << 10, 2);  // small blocks: many small puts
  ASSERT_FALSE(::testing::Test::HasFatalFailure());

  const double gib_s = run.TimeWrites(kPool, 5);
  const double layer_s = run.TimeWrites(32ull << 20, 20);
  // The 8B model's 32 layers of an 8K prompt, each layer's 32 MiB posted without waiting for the last.
  const double streamed_layer_s = run.TimePipelinedWrites(32ull << 20, 32, 5);
  DeviceBuffer scratch(kPool);
  ASSERT_TRUE(scratch.ok());
  const double copy_gib_s = TimeDeviceCopy(scratch.as<void>(), run.src().as<void>(), kPool, 5);
  const double copy_layer_s = TimeDeviceCopy(scratch.as<void>(), run.src().as<void>(), 32ull << 20, 20);
  const auto gbps = [](std::size_t bytes, double s) { return s > 0 ? bytes / s / 1e9 : 0.0; };
  std::printf("ucx cuda_ipc write, 1 GiB: %.1f GB/s (cudaMemcpy D2D in this process: %.1f GB/s, %.0f%%)\n",
              gbps(kPool, gib_s), gbps(kPool, copy_gib_s), 100.0 * copy_gib_s / gib_s);
  std::printf("ucx cuda_ipc write, 32 MiB: %.1f GB/s, %.1f us (cudaMemcpy D2D: %.1f GB/s, %.0f%%)\n",
              gbps(32ull << 20, layer_s), layer_s * 1e6, gbps(32ull << 20, copy_layer_s),
              100.0 * copy_layer_s / layer_s);
  std::printf("ucx cuda_ipc writes, 32 x 32 MiB posted back to back (layer-wise): %.1f GB/s, %.1f us each "
              "(%.0f%% of the 32 MiB cudaMemcpy D2D)\n",
              gbps(32ull << 20, streamed_layer_s), streamed_layer_s * 1e6, 100.0 * copy_layer_s / streamed_layer_s);
  // Anything through host memory is far below this; cuda_ipc is a device-to-device copy.
  EXPECT_GT(gbps(kPool, gib_s), 100.0) << "UCX did not move the device memory with cuda_ipc";
  run.WriteAndCheck({});  // after the timed writes the receiver holds the source's first GiB
}

TEST(UcxCudaTest, TwoProcessesOverTcpWithCudaCopyStaging) {
  TANDEM_REQUIRE_GPU();
  constexpr std::size_t kPool = 64ull << 20;
  TwoProcesses run;
  run.Start(kPool, "tcp,cuda_copy");  // no shared memory, no cuda_ipc: as between hosts without RDMA
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  run.RandomBlockLists(64 << 10, 2);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  const double s = run.TimeWrites(kPool, 2);
  std::printf("ucx tcp + cuda_copy write, 64 MiB: %.2f GB/s\n", s > 0 ? kPool / s / 1e9 : 0.0);
  run.WriteAndCheck({});
}

}  // namespace
}  // namespace tandem::transfer
