// KV transfer bandwidth per backend against the link's peak on this host (single-thread memcpy of
// the same bytes). Moves one Llama-3-8B-shaped layer's blocks (64 KiB per block: 2·8·16·128·2 B)
// as contiguous runs and as scattered single blocks; UCX both in-process and across processes.
// CUDA builds add nccl GPU 0 → GPU 1 (needs two GPUs) against cudaMemcpyPeer of the same bytes.
// `transfer_bench nccl` runs only that part.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "tandem/transfer/block_runs.h"
#include "tandem/transfer/local_transport.h"
#include "tandem/transfer/ucx_transport.h"
#ifdef TANDEM_HAS_NCCL
#include <cuda_runtime.h>

#include "tandem/transfer/nccl_transport.h"
#endif

namespace {

using namespace tandem::transfer;
using tandem::backend::MemoryKind;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kBlockBytes = 64 << 10;
constexpr int64_t kPoolBlocks = 1024;  // 64 MiB per pool
constexpr int kReps = 7;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::vector<WriteOp> MakeOps(bool scattered, int64_t blocks, RegionId local, RemoteRegionId remote,
                             int64_t pool_blocks = kPoolBlocks) {
  std::vector<int64_t> src(blocks), dst(blocks);
  std::iota(src.begin(), src.end(), 0);
  std::iota(dst.begin(), dst.end(), 0);
  if (scattered) {
    std::mt19937 rng(1);
    std::vector<int64_t> all(pool_blocks);
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

// UCX across two processes (the realistic prefill → decode case on one host). The destination pool is
// the process's own memory ("own pool": UCX reaches it by CMA or TCP loopback) or, with `shm`, memory
// UCX allocated ("ucx pool": POSIX shared memory the sender maps and memcpys into, what workers use on
// the CPU backend). Run with UCX_TLS=tcp,self for the TCP-only figure. Returns GB/s.
double CrossProcess(bool scattered, int64_t blocks, bool shm) {
  int up[2], down[2];
  if (pipe(up) != 0 || pipe(down) != 0) return -1;
  const pid_t child = fork();
  if (child == 0) {
    auto t = *UcxTransport::Create();
    std::vector<uint8_t> dst_vector(shm ? 0 : kBlockBytes * kPoolBlocks, 0);
    void* dst = shm ? *t->AllocateMemory(kBlockBytes * kPoolBlocks, MemoryKind::kHost) : dst_vector.data();
    RegionId d = *t->RegisterMemory({dst, kBlockBytes * kPoolBlocks, MemoryKind::kHost, -1});
    for (const std::string& s : {*t->LocalAddress(), *t->ExportRegion(d)}) {
      uint32_t n = s.size();
      if (write(up[1], &n, 4) != 4 || write(up[1], s.data(), n) != static_cast<ssize_t>(n)) _exit(1);
    }
    int received = 0;
    while (received < kReps + 1) {
      received += static_cast<int>(t->TakeNotifications().size());
      if (getppid() == 1) _exit(3);  // the parent died (e.g. it could not connect): don't linger
    }
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
  absl::StatusOr<PeerId> connected = t->Connect(address);
  if (!connected.ok()) {  // e.g. UCX_TLS limited to shared memory: no lane supports peer-failure mode
    std::printf("ucx connect: %s\n", connected.status().ToString().c_str());
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    return -1;
  }
  const PeerId peer = *connected;
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

void RunHostBackends() {
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
      const double shm = CrossProcess(scattered, blocks, /*shm=*/true);
      std::printf("%-22s %8lld %10s %10.2f %9.0f%%\n", "ucx 2 procs, ucx pool", static_cast<long long>(blocks),
                  pattern, shm, 100 * shm / peak);
      std::fflush(stdout);
      const double tcp = CrossProcess(scattered, blocks, /*shm=*/false);
      std::printf("%-22s %8lld %10s %10.2f %9.0f%%\n", "ucx 2 procs, own pool", static_cast<long long>(blocks),
                  pattern, tcp, 100 * tcp / peak);
      {
        auto ua = *UcxTransport::Create();
        auto ub = *UcxTransport::Create();
        const double ucx = InProcess(*ua, *ub, scattered, blocks);
        std::printf("%-22s %8lld %10s %10.2f %9.0f%%\n", "ucx (in-process)", static_cast<long long>(blocks),
                    pattern, ucx, 100 * ucx / peak);
      }
    }
  }
}

#ifdef TANDEM_HAS_NCCL
#define CUDA_OK(expr)                                                                          \
  do {                                                                                         \
    const cudaError_t e_ = (expr);                                                             \
    if (e_ != cudaSuccess) {                                                                   \
      std::printf("%s: %s\n", #expr, cudaGetErrorString(e_));                                  \
      return;                                                                                  \
    }                                                                                          \
  } while (0)

// GPU 0 → GPU 1: nccl transport (contiguous / scattered, one transfer; and 32 layer-sized transfers
// back to back as a worker posts them), then cudaMemcpyPeer of the same bytes as the link ceiling.
void NcclSection() {
  int gpus = 0;
  if (cudaGetDeviceCount(&gpus) != cudaSuccess || gpus < 2) {
    std::printf("nccl: skipped, needs 2 GPUs, found %d\n", gpus);
    return;
  }
  constexpr int64_t kGpuPoolBlocks = 8192;  // 512 MiB per pool
  constexpr std::size_t kGpuPoolBytes = kGpuPoolBlocks * kBlockBytes;
  void* src = nullptr;
  void* dst = nullptr;
  CUDA_OK(cudaSetDevice(0));
  CUDA_OK(cudaMalloc(&src, kGpuPoolBytes));
  CUDA_OK(cudaMemset(src, 1, kGpuPoolBytes));
  CUDA_OK(cudaSetDevice(1));
  CUDA_OK(cudaMalloc(&dst, kGpuPoolBytes));
  CUDA_OK(cudaMemset(dst, 0, kGpuPoolBytes));
  CUDA_OK(cudaDeviceSynchronize());
  CUDA_OK(cudaSetDevice(0));
  std::printf("\nGPU 0 -> GPU 1, %zu KiB blocks, pools of %lld blocks, median of %d\n", kBlockBytes >> 10,
              static_cast<long long>(kGpuPoolBlocks), kReps);
  std::printf("%-26s %8s %10s %10s %10s\n", "backend", "blocks", "pattern", "GB/s", "%peer");
  struct Row {
    std::string name, pattern;
    int64_t blocks;
    double gbs;
  };
  std::vector<Row> rows;
  {
    auto a = NcclTransport::Create({0, 30000});
    auto b = NcclTransport::Create({1, 30000});
    if (!a.ok() || !b.ok()) {
      std::printf("nccl: %s %s\n", a.status().ToString().c_str(), b.status().ToString().c_str());
      return;
    }
    RegionId s = *(*a)->RegisterMemory({src, kGpuPoolBytes, MemoryKind::kDevice, 0});
    RegionId d = *(*b)->RegisterMemory({dst, kGpuPoolBytes, MemoryKind::kDevice, 1});
    auto peer = (*a)->Connect(*(*b)->LocalAddress());
    if (!peer.ok()) {
      std::printf("nccl connect: %s\n", peer.status().ToString().c_str());
      return;
    }
    RemoteRegionId remote = *(*a)->ImportRegion(*peer, *(*b)->ExportRegion(d));
    // Posts `transfers` copies of `ops` (the last one notifying) and waits for all and the notice.
    auto run = [&](const std::vector<WriteOp>& ops, int transfers) {
      std::vector<double> secs;
      for (int rep = 0; rep < kReps + 1; ++rep) {
        const auto t0 = Clock::now();
        std::vector<TransferId> ids;
        for (int i = 0; i < transfers; ++i) ids.push_back(*(*a)->PostWrite(*peer, ops, i + 1 == transfers ? "done" : ""));
        bool notified = false;
        while (!notified) notified = !(*b)->TakeNotifications().empty();
        for (TransferId id : ids) {
          if (!WaitForTransfer(**a, id, 60000).ok()) return -1.0;
          (*a)->Release(id);
        }
        if (rep > 0) secs.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      }
      return Median(secs);
    };
    const double one_block = run(MakeOps(false, 1, s, remote, kGpuPoolBlocks), 1);
    std::printf("nccl latency, one 64 KiB block posted to acknowledged + notified: %.1f us\n", one_block * 1e6);
    for (int64_t blocks : {16, 128, 512, 2048, 8192}) {
      for (bool scattered : {false, true}) {
        const auto ops = MakeOps(scattered, blocks, s, remote, kGpuPoolBlocks);
        const double sec = run(ops, 1);
        rows.push_back({"nccl", scattered ? "scattered" : "contiguous", blocks, blocks * kBlockBytes / sec / 1e9});
      }
    }
    for (int64_t blocks : {64, 256}) {  // a 32-layer model: one transfer per layer, posted back to back
      for (bool scattered : {false, true}) {
        const auto ops = MakeOps(scattered, blocks, s, remote, kGpuPoolBlocks);
        const double sec = run(ops, 32);
        rows.push_back({"nccl (32 layers)", scattered ? "scattered" : "contiguous", blocks * 32,
                        32 * blocks * kBlockBytes / sec / 1e9});
      }
    }
  }
  // The ceiling: one cudaMemcpyPeerAsync of the same bytes (contiguous), with peer access enabled.
  int can = 0;
  cudaDeviceCanAccessPeer(&can, 0, 1);
  if (can) {
    cudaDeviceEnablePeerAccess(1, 0);
    cudaGetLastError();
  }
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreate(&stream));
  auto peer_gbs = [&](std::size_t bytes) {
    std::vector<double> gbs;
    for (int rep = 0; rep < kReps + 1; ++rep) {
      const auto t0 = Clock::now();
      cudaMemcpyPeerAsync(dst, 1, src, 0, bytes, stream);
      cudaStreamSynchronize(stream);
      const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
      if (rep > 0) gbs.push_back(bytes / sec / 1e9);
    }
    return Median(gbs);
  };
  std::printf("(peer access %s)\n", can ? "on" : "not available");
  for (int64_t blocks : {16, 128, 512, 2048, 8192}) {
    std::printf("%-26s %8lld %10s %10.2f %9.0f%%\n", "cudaMemcpyPeer (ceiling)", static_cast<long long>(blocks),
                "-", peer_gbs(blocks * kBlockBytes), 100.0);
  }
  const double ceiling = peer_gbs(kGpuPoolBytes);
  for (const Row& r : rows) {
    const double same_bytes = peer_gbs(r.blocks * kBlockBytes > kGpuPoolBytes ? kGpuPoolBytes : r.blocks * kBlockBytes);
    std::printf("%-26s %8lld %10s %10.2f %9.0f%%  (memcpyPeer of these bytes %.1f GB/s)\n", r.name.c_str(),
                static_cast<long long>(r.blocks), r.pattern.c_str(), r.gbs, 100 * r.gbs / same_bytes, same_bytes);
  }
  std::printf("cudaMemcpyPeer of %zu MiB: %.1f GB/s\n", kGpuPoolBytes >> 20, ceiling);
  cudaStreamDestroy(stream);
  cudaFree(dst);
  cudaFree(src);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  const bool only_nccl = argc > 1 && std::string(argv[1]) == "nccl";
  if (!only_nccl) RunHostBackends();
#ifdef TANDEM_HAS_NCCL
  NcclSection();  // after the host part: its forks must come before this process touches CUDA
#else
  if (only_nccl) std::printf("nccl: this build has no CUDA\n");
#endif
  return 0;
}
