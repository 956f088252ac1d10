// KV transfer bandwidth per backend against the link's peak on this host (single-thread memcpy of
// the same bytes). Moves one Llama-3-8B-shaped layer's blocks (64 KiB per block: 2·8·16·128·2 B)
// as contiguous runs and as scattered single blocks; UCX both in-process and across processes.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "tandem/transfer/block_runs.h"
#include "tandem/transfer/local_transport.h"
#include "tandem/transfer/ucx_transport.h"

namespace {

using namespace tandem::transfer;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kBlockBytes = 64 << 10;
constexpr int64_t kPoolBlocks = 1024;  // 64 MiB per pool
constexpr int kReps = 7;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::vector<WriteOp> MakeOps(bool scattered, int64_t blocks, RegionId local, RemoteRegionId remote) {
  std::vector<int64_t> src(blocks), dst(blocks);
  std::iota(src.begin(), src.end(), 0);
  std::iota(dst.begin(), dst.end(), 0);
  if (scattered) {
    std::mt19937 rng(1);
    std::vector<int64_t> all(kPoolBlocks);
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    dst.assign(all.begin(), all.begin() + blocks);
  }
  return LayerWrites(*CoalesceBlockRuns(src, dst), local, remote, kBlockBytes);
}

// Runs the transfer on `src_t` towards `dst_t` (same process), both progressing. Returns GB/s.
double InProcess(KvTransport& src_t, KvTransport& dst_t, bool scattered, int64_t blocks) {
  std::vector<uint8_t> src(kBlockBytes * kPoolBlocks, 1), dst(kBlockBytes * kPoolBlocks, 0);
  RegionId s = *src_t.RegisterMemory({src.data(), src.size(), MemoryKind::kHost, -1});
  RegionId d = *dst_t.RegisterMemory({dst.data(), dst.size(), MemoryKind::kHost, -1});
  PeerId peer = *src_t.Connect(*dst_t.LocalAddress());
  RemoteRegionId remote = *src_t.ImportRegion(peer, *dst_t.ExportRegion(d));
  const auto ops = MakeOps(scattered, blocks, s, remote);
  std::vector<double> gbs;
  for (int rep = 0; rep < kReps + 1; ++rep) {
    const auto t0 = Clock::now();
    TransferId id = *src_t.PostWrite(peer, ops, "done");
    bool done = false, notified = false;
    while (!done || !notified) {
      if (!done) done = *src_t.Poll(id) == TransferState::kDone;
      if (!dst_t.TakeNotifications().empty()) notified = true;
    }
    const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
    src_t.Release(id);
    if (rep > 0) gbs.push_back(blocks * kBlockBytes / sec / 1e9);
  }
  (void)src_t.Disconnect(peer);
  (void)src_t.DeregisterMemory(s);
  (void)dst_t.DeregisterMemory(d);
  return Median(gbs);
}

// UCX across two processes (the realistic prefill → decode case on one host). Returns GB/s.
double CrossProcess(bool scattered, int64_t blocks) {
  int up[2], down[2];
  if (pipe(up) != 0 || pipe(down) != 0) return -1;
  const pid_t child = fork();
  if (child == 0) {
    auto t = *UcxTransport::Create();
    std::vector<uint8_t> dst(kBlockBytes * kPoolBlocks, 0);
    RegionId d = *t->RegisterMemory({dst.data(), dst.size(), MemoryKind::kHost, -1});
    for (const std::string& s : {*t->LocalAddress(), *t->ExportRegion(d)}) {
      uint32_t n = s.size();
      if (write(up[1], &n, 4) != 4 || write(up[1], s.data(), n) != static_cast<ssize_t>(n)) _exit(1);
    }
    int received = 0;
    while (received < kReps + 1) received += static_cast<int>(t->TakeNotifications().size());
    char c;
    if (read(down[0], &c, 1) != 1) _exit(2);
    _exit(0);
  }
  auto read_string = [&] {
    uint32_t n = 0;
    if (read(up[0], &n, 4) != 4) return std::string();
    std::string s(n, '\0');
    std::size_t got = 0;
    while (got < n) got += std::max<ssize_t>(0, read(up[0], s.data() + got, n - got));
    return s;
  };
  const std::string address = read_string(), descriptor = read_string();
  auto t = *UcxTransport::Create();
  std::vector<uint8_t> src(kBlockBytes * kPoolBlocks, 1);
  RegionId s = *t->RegisterMemory({src.data(), src.size(), MemoryKind::kHost, -1});
  PeerId peer = *t->Connect(address);
  RemoteRegionId remote = *t->ImportRegion(peer, descriptor);
  const auto ops = MakeOps(scattered, blocks, s, remote);
  std::vector<double> gbs;
  for (int rep = 0; rep < kReps + 1; ++rep) {
    const auto t0 = Clock::now();
    TransferId id = *t->PostWrite(peer, ops, "done");
    if (!WaitForTransfer(*t, id, 60000).ok()) return -1;
    const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
    t->Release(id);
    if (rep > 0) gbs.push_back(blocks * kBlockBytes / sec / 1e9);
  }
  char c = 'k';
  if (write(down[1], &c, 1) != 1) return -1;
  int status = 0;
  waitpid(child, &status, 0);
  return Median(gbs);
}

double MemcpyPeak(int64_t blocks) {
  std::vector<uint8_t> src(kBlockBytes * blocks, 1), dst(kBlockBytes * blocks, 0);
  std::vector<double> gbs;
  for (int rep = 0; rep < kReps + 1; ++rep) {
    const auto t0 = Clock::now();
    std::memcpy(dst.data(), src.data(), src.size());
    const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
    if (rep > 0) gbs.push_back(src.size() / sec / 1e9);
  }
  return Median(gbs);
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  std::printf("KV transfer bandwidth, %zu KiB blocks (Llama-3-8B bf16 layer block), median of %d\n",
              kBlockBytes >> 10, kReps);
  std::printf("%-22s %8s %10s %10s %10s\n", "backend", "blocks", "pattern", "GB/s", "%memcpy");
  for (int64_t blocks : {16, 128, 512}) {
    const double peak = MemcpyPeak(blocks);
    std::printf("%-22s %8lld %10s %10.2f %9.0f%%\n", "memcpy (peak)", static_cast<long long>(blocks), "-", peak,
                100.0);
    for (bool scattered : {false, true}) {
      const char* pattern = scattered ? "scattered" : "contiguous";
      LocalTransport a, b;
      const double local = InProcess(a, b, scattered, blocks);
      std::printf("%-22s %8lld %10s %10.2f %9.0f%%\n", "local", static_cast<long long>(blocks), pattern, local,
                  100 * local / peak);
      // Fork before this process holds any UCX context: UCX state does not survive fork().
      const double cross = CrossProcess(scattered, blocks);
      std::printf("%-22s %8lld %10s %10.2f %9.0f%%\n", "ucx (two processes)", static_cast<long long>(blocks),
                  pattern, cross, 100 * cross / peak);
      {
        auto ua = *UcxTransport::Create();
        auto ub = *UcxTransport::Create();
        const double ucx = InProcess(*ua, *ub, scattered, blocks);
        std::printf("%-22s %8lld %10s %10.2f %9.0f%%\n", "ucx (in-process)", static_cast<long long>(blocks),
                    pattern, ucx, 100 * ucx / peak);
      }
    }
  }
  return 0;
}
