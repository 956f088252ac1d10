// Collectives between the ranks of a tensor-parallel worker. A worker runs its ranks in one process,
// one thread per rank (docs/architecture.md "Tensor parallelism"), so a group is an in-process object:
// HostCollectiveGroup for the CPU backend (the ranks' host memory, shared), NcclCollectiveGroup for
// GPUs (nccl_collective.h). Every rank of a group must issue the same collectives in the same order.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/status.h"
#include "tandem/core/tensor.h"

namespace tandem::backend {

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Sums `count` elements of `dtype` at `data` (this rank's backend memory) over the ranks, in place;
  // every rank ends with the same bits. A device group enqueues it on `stream` (a cudaStream_t, so it
  // can be captured in a CUDA graph) and returns; the host group returns when it is done (`stream`
  // ignored).
  virtual absl::Status AllReduceSum(void* data, size_t count, DType dtype, void* stream) = 0;
  // out[r * count, (r + 1) * count) = rank r's `in` (`count` elements each), on every rank.
  virtual absl::Status AllGather(const void* in, void* out, size_t count, DType dtype, void* stream) = 0;
  // Copies `bytes` at rank `root`'s `data` into every other rank's `data`.
  virtual absl::Status Broadcast(void* data, size_t bytes, int root, void* stream) = 0;
};

// The CPU backend's group: ranks are threads of one process exchanging pointers to their fp32 host
// buffers. An all-reduce is two barriers; between them each rank sums its share of the elements over
// every rank's buffer, in rank order (so the result is the same bits on every rank and from run to
// run), and writes the sum into every buffer.
class HostCollectiveGroup {
 public:
  explicit HostCollectiveGroup(int size);
  ~HostCollectiveGroup();
  HostCollectiveGroup(const HostCollectiveGroup&) = delete;
  HostCollectiveGroup& operator=(const HostCollectiveGroup&) = delete;

  int size() const { return static_cast<int>(ranks_.size()); }
  Collective& rank(int r);
  // Fails every collective waiting now and every later one with `why` (a rank failed mid-step: the
  // others must not wait for it forever).
  void Abort(const absl::Status& why);

 private:
  class Rank;
  friend class Rank;
  // Waits until every rank has arrived (or the group is aborted).
  absl::Status Barrier();

  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  uint64_t generation_ = 0;
  absl::Status aborted_;
  std::vector<void*> slots_;  // each rank's buffer of the collective in progress
  std::vector<std::unique_ptr<Rank>> ranks_;
};

}  // namespace tandem::backend
