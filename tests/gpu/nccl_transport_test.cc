// The nccl KvTransport on real GPUs: random block lists of several layers land byte-exact in the
// receiver's device pools (two GPUs in one process, and across two processes), the notification
// follows the data, host memory and one-GPU pairs are refused clearly, and a receiver killed
// mid-transfer fails the writer's transfers instead of hanging them.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gpu_test_util.h"
#include "gtest/gtest.h"
#include "support/status_matchers.h"
#include "tandem/transfer/block_runs.h"
#include "tandem/transfer/nccl_transport.h"

extern char** environ;

namespace tandem::transfer {
namespace {

using ::tandem::testing::DeviceBuffer;
using Clock = std::chrono::steady_clock;

int GpuCount() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

#define REQUIRE_GPUS(n)                                                                              \
  do {                                                                                               \
    if (GpuCount() < (n)) GTEST_SKIP() << "needs " << (n) << " CUDA devices, found " << GpuCount(); \
  } while (0)

std::unique_ptr<NcclTransport> MakeTransport(int device, int timeout_ms = 20000) {
  auto t = NcclTransport::Create({device, timeout_ms});
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

TEST(NcclTransportTest, RefusesHostMemoryAndOneGpuPairs) {
  REQUIRE_GPUS(1);
  auto a = MakeTransport(0);
  auto b = MakeTransport(0);
  ASSERT_TRUE(a && b);
  EXPECT_STREQ(a->name(), "nccl");
  std::vector<uint8_t> host(4096);
  auto r = a->RegisterMemory({host.data(), host.size(), backend::MemoryKind::kHost, -1});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("host memory"), std::string::npos) << r.status();
  r = a->RegisterMemory({host.data(), host.size(), backend::MemoryKind::kDevice, 0});  // mislabelled host memory
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not device memory"), std::string::npos) << r.status();
  EXPECT_ERROR(a->Connect("nccl1;zz;1;127.0.0.1"), absl::StatusCode::kInvalidArgument,
               "nccl Connect: expected an address");
  EXPECT_ERROR(a->Connect("ucx-binary-address"), absl::StatusCode::kInvalidArgument,
               "nccl Connect: expected an address");
  auto peer = a->Connect(*b->LocalAddress());
  ASSERT_FALSE(peer.ok()) << "two ends on one GPU must be refused";
  EXPECT_EQ(peer.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(peer.status().message().find("one GPU per end"), std::string::npos) << peer.status();
}

// Two transports, GPU 0 writes into GPU 1: several layers, random block lists mixing contiguous
// runs and scattered ids, several rounds; after each round's notification the receiver's pools
// equal a host mirror of the expected bytes (untouched blocks keep their poison).
TEST(NcclTransportTest, RandomBlockListsLandExactly) {
  REQUIRE_GPUS(2);
  constexpr int kLayers = 4;
  constexpr int64_t kBlocks = 96;
  constexpr std::size_t kBlockBytes = 2 * 4 * 16 * 64 * 2;  // 2 (K,V) · 4 heads · 16 tokens · 64 dim · bf16
  constexpr std::size_t kPoolBytes = kBlocks * kBlockBytes;
  auto src_t = MakeTransport(0);
  auto dst_t = MakeTransport(1);
  ASSERT_TRUE(src_t && dst_t);

  std::vector<std::unique_ptr<DeviceBuffer>> src_pools, dst_pools;
  std::vector<std::vector<uint8_t>> src_host, expected;
  std::vector<RegionId> src_regions;
  std::vector<RemoteRegionId> remotes;
  auto address = dst_t->LocalAddress();
  ASSERT_TRUE(address.ok());
  auto peer = src_t->Connect(*address);
  ASSERT_TRUE(peer.ok()) << peer.status();
  for (int layer = 0; layer < kLayers; ++layer) {
    TANDEM_CUDA_ASSERT(cudaSetDevice(0));
    src_pools.push_back(std::make_unique<DeviceBuffer>(kPoolBytes));
    src_host.push_back(RandomBytes(kPoolBytes, 100 + layer));
    TANDEM_CUDA_ASSERT(cudaMemcpy(src_pools.back()->as<void>(), src_host.back().data(), kPoolBytes,
                                  cudaMemcpyHostToDevice));
    TANDEM_CUDA_ASSERT(cudaSetDevice(1));
    dst_pools.push_back(std::make_unique<DeviceBuffer>(kPoolBytes));
    TANDEM_CUDA_ASSERT(cudaMemset(dst_pools.back()->as<void>(), 0xEE, kPoolBytes));
    TANDEM_CUDA_ASSERT(cudaDeviceSynchronize());
    expected.emplace_back(kPoolBytes, 0xEE);
    auto s = src_t->RegisterMemory({src_pools.back()->as<void>(), kPoolBytes, backend::MemoryKind::kDevice, 0});
    auto d = dst_t->RegisterMemory({dst_pools.back()->as<void>(), kPoolBytes, backend::MemoryKind::kDevice, 1});
    ASSERT_TRUE(s.ok() && d.ok()) << s.status() << " " << d.status();
    src_regions.push_back(*s);
    auto remote = src_t->ImportRegion(*peer, *dst_t->ExportRegion(*d));
    ASSERT_TRUE(remote.ok()) << remote.status();
    remotes.push_back(*remote);
  }

  std::mt19937 rng(7);
  for (int round = 0; round < 5; ++round) {
    // A destination list with runs: shuffled ids, then a few stretches sorted into consecutive runs.
    std::vector<int64_t> all(kBlocks);
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    const int64_t n = 1 + static_cast<int64_t>(rng() % kBlocks);
    std::vector<int64_t> src_ids(all.begin(), all.begin() + n);
    std::shuffle(all.begin(), all.end(), rng);
    std::vector<int64_t> dst_ids(all.begin(), all.begin() + n);
    if (round % 2 == 0) {  // half the list as one run on both sides, the rest scattered
      const int64_t h = n / 2;
      std::iota(src_ids.begin(), src_ids.begin() + h, static_cast<int64_t>(rng() % (kBlocks - h + 1)));
      std::iota(dst_ids.begin(), dst_ids.begin() + h, int64_t{0});
      std::vector<int64_t> rest(kBlocks - h);
      std::iota(rest.begin(), rest.end(), h);
      std::shuffle(rest.begin(), rest.end(), rng);
      std::copy(rest.begin(), rest.begin() + (n - h), dst_ids.begin() + h);
    }
    auto runs = CoalesceBlockRuns(src_ids, dst_ids);
    ASSERT_TRUE(runs.ok()) << runs.status();
    std::vector<TransferId> posted;
    const std::string note = "round-" + std::to_string(round);
    for (int layer = 0; layer < kLayers; ++layer) {
      const auto ops = LayerWrites(*runs, src_regions[layer], remotes[layer], kBlockBytes);
      auto t = src_t->PostWrite(*peer, ops, layer + 1 == kLayers ? note : "");
      ASSERT_TRUE(t.ok()) << t.status();
      posted.push_back(*t);
      for (int64_t i = 0; i < n; ++i) {
        std::memcpy(expected[layer].data() + dst_ids[i] * kBlockBytes,
                    src_host[layer].data() + src_ids[i] * kBlockBytes, kBlockBytes);
      }
    }
    std::vector<std::string> notes;
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (notes.empty() && Clock::now() < deadline) notes = dst_t->TakeNotifications();
    ASSERT_EQ(notes, std::vector<std::string>{note}) << "round " << round;
    // The notification says the data landed: check before waiting on the writer.
    TANDEM_CUDA_ASSERT(cudaSetDevice(1));
    for (int layer = 0; layer < kLayers; ++layer) {
      std::vector<uint8_t> got(kPoolBytes);
      TANDEM_CUDA_ASSERT(cudaMemcpy(got.data(), dst_pools[layer]->as<void>(), kPoolBytes, cudaMemcpyDeviceToHost));
      for (int64_t b = 0; b < kBlocks; ++b) {
        ASSERT_EQ(0, std::memcmp(got.data() + b * kBlockBytes, expected[layer].data() + b * kBlockBytes, kBlockBytes))
            << "round " << round << " layer " << layer << " block " << b << " (" << runs->size() << " runs of "
            << n << " blocks)";
      }
    }
    for (TransferId t : posted) {
      EXPECT_TRUE(WaitForTransfer(*src_t, t, 20000).ok());
      src_t->Release(t);
    }
  }
  // Bad requests move nothing and say why.
  const WriteOp bad{src_regions[0], 0, remotes[0], kPoolBytes - kBlockBytes, 2 * kBlockBytes};
  auto t = src_t->PostWrite(*peer, std::span<const WriteOp>(&bad, 1), "");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_ERROR(src_t->ImportRegion(*peer, "garbage"), absl::StatusCode::kInvalidArgument,
               "nccl ImportRegion: malformed region descriptor");
  EXPECT_TRUE(src_t->Disconnect(*peer).ok());
  EXPECT_ERROR(src_t->PostWrite(*peer, {}, ""), absl::StatusCode::kNotFound, "no connected peer");  // disconnected
}

// --- Two processes: the receiver is this binary re-executed with TANDEM_NCCL_CHILD_FD set. ---

constexpr std::size_t kChildPoolBytes = 1ull << 30;
constexpr std::size_t kCheckBytes = 128ull << 20;

uint8_t PatternByte(std::size_t i) { return static_cast<uint8_t>((i * 7 + 3) ^ (i >> 12)); }

bool WriteString(int fd, const std::string& s) {
  const uint32_t n = static_cast<uint32_t>(s.size());
  return write(fd, &n, 4) == 4 && write(fd, s.data(), n) == static_cast<ssize_t>(n);
}

bool ReadString(int fd, std::string* s) {
  uint32_t n = 0;
  if (read(fd, &n, 4) != 4) return false;
  s->resize(n);
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = read(fd, s->data() + got, n - got);
    if (r <= 0) return false;
    got += static_cast<std::size_t>(r);
  }
  return true;
}

// Helper process, not a test of its own: skipped unless the parent test started it.
TEST(NcclTransportChild, Receiver) {
  const char* fd_env = std::getenv("TANDEM_NCCL_CHILD_FD");
  if (fd_env == nullptr) GTEST_SKIP() << "helper process of NcclTransportTest.ReceiverKilledMidTransferFails";
  const int fd = std::atoi(fd_env);
  auto t = MakeTransport(1);
  ASSERT_TRUE(t);
  TANDEM_CUDA_ASSERT(cudaSetDevice(1));
  DeviceBuffer pool(kChildPoolBytes);
  ASSERT_TRUE(pool.ok());
  TANDEM_CUDA_ASSERT(cudaMemset(pool.as<void>(), 0, kChildPoolBytes));
  TANDEM_CUDA_ASSERT(cudaDeviceSynchronize());
  auto region = t->RegisterMemory({pool.as<void>(), kChildPoolBytes, backend::MemoryKind::kDevice, 1});
  ASSERT_TRUE(region.ok()) << region.status();
  ASSERT_TRUE(WriteString(fd, *t->LocalAddress()) && WriteString(fd, *t->ExportRegion(*region)));
  const auto deadline = Clock::now() + std::chrono::seconds(120);  // the parent kills us long before
  while (Clock::now() < deadline) {
    for (const std::string& note : t->TakeNotifications()) {
      if (note != "check") continue;
      std::vector<uint8_t> got(kCheckBytes);
      TANDEM_CUDA_ASSERT(cudaMemcpy(got.data(), pool.as<void>(), kCheckBytes, cudaMemcpyDeviceToHost));
      bool same = true;
      for (std::size_t i = 0; i < kCheckBytes && same; ++i) same = got[i] == PatternByte(i);
      const char verdict = same ? 'y' : 'n';
      ASSERT_EQ(write(fd, &verdict, 1), 1);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

TEST(NcclTransportTest, CrossProcessWriteThenReceiverKilledMidTransferFails) {
  REQUIRE_GPUS(2);
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  env_strings.push_back("TANDEM_NCCL_CHILD_FD=" + std::to_string(pipe_fds[1]));
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe", filter = "--gtest_filter=NcclTransportChild.Receiver";
  char* argv[] = {exe.data(), filter.data(), nullptr};
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(pipe_fds[0]);
    execve(exe.c_str(), argv, envp.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  struct KillOnExit {  // an early ASSERT must not leave the receiver running
    pid_t pid;
    ~KillOnExit() {
      if (pid > 0 && kill(pid, SIGKILL) == 0) waitpid(pid, nullptr, 0);
    }
  } guard{child};
  std::string address, descriptor;
  ASSERT_TRUE(ReadString(pipe_fds[0], &address) && ReadString(pipe_fds[0], &descriptor))
      << "the receiver process did not start";

  auto t = MakeTransport(0, /*timeout_ms=*/15000);
  ASSERT_TRUE(t);
  TANDEM_CUDA_ASSERT(cudaSetDevice(0));
  DeviceBuffer src(kChildPoolBytes);
  ASSERT_TRUE(src.ok());
  std::vector<uint8_t> pattern(kCheckBytes);
  for (std::size_t i = 0; i < kCheckBytes; ++i) pattern[i] = PatternByte(i);
  TANDEM_CUDA_ASSERT(cudaMemcpy(src.as<void>(), pattern.data(), kCheckBytes, cudaMemcpyHostToDevice));
  auto region = t->RegisterMemory({src.as<void>(), kChildPoolBytes, backend::MemoryKind::kDevice, 0});
  ASSERT_TRUE(region.ok()) << region.status();
  auto peer = t->Connect(address);
  ASSERT_TRUE(peer.ok()) << peer.status();
  auto remote = t->ImportRegion(*peer, descriptor);
  ASSERT_TRUE(remote.ok()) << remote.status();

  // 1. A 128 MiB write that the other process checks: a 16 MiB run (sent as it is), then 64 KiB
  //    blocks in shuffled order (packed, two staging chunks).
  constexpr std::size_t kBlock = 64 << 10;
  std::vector<int64_t> ids(kCheckBytes / kBlock);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin() + 256, ids.end(), std::mt19937(3));
  auto runs = CoalesceBlockRuns(ids, ids);
  ASSERT_TRUE(runs.ok());
  const auto ops = LayerWrites(*runs, *region, *remote, kBlock);
  auto first = t->PostWrite(*peer, ops, "check");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(WaitForTransfer(*t, *first, 20000).ok());
  t->Release(*first);
  char verdict = 0;
  ASSERT_EQ(read(pipe_fds[0], &verdict, 1), 1);
  EXPECT_EQ(verdict, 'y') << "the receiver process found other bytes than were written";

  // 2. 16 GiB of writes in flight, then the receiver dies: every transfer resolves, none hangs.
  const WriteOp whole{*region, 0, *remote, 0, kChildPoolBytes};
  std::vector<TransferId> inflight;
  for (int i = 0; i < 16; ++i) {
    auto tr = t->PostWrite(*peer, std::span<const WriteOp>(&whole, 1), "");
    ASSERT_TRUE(tr.ok()) << tr.status();
    inflight.push_back(*tr);
  }
  const auto killed_at = Clock::now();
  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  guard.pid = 0;
  int done = 0, failed = 0;
  absl::Status last;
  for (TransferId id : inflight) {
    const absl::Status s = WaitForTransfer(*t, id, 60000);
    EXPECT_NE(s.code(), absl::StatusCode::kDeadlineExceeded) << "the transfer hung: " << s;
    if (s.ok()) {
      ++done;
    } else {
      ++failed;
      last = s;
    }
    t->Release(id);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - killed_at).count();
  std::printf("receiver killed: %d transfers had landed, %d failed in %.3f s; last error: %s\n", done, failed,
              seconds, last.ToString().c_str());
  EXPECT_GT(failed, 0) << "every transfer finished before the kill: nothing was in flight";
  EXPECT_LT(seconds, 20.0);
  auto after = t->PostWrite(*peer, std::span<const WriteOp>(&whole, 1), "");
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.status().code(), absl::StatusCode::kUnavailable) << after.status();
  close(pipe_fds[0]);
}

}  // namespace
}  // namespace tandem::transfer
