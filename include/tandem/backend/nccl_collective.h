// The GPU ranks' collective group: one NCCL communicator per rank, all in this process (a
// tensor-parallel worker drives its GPUs from one thread each, docs/architecture.md "Tensor
// parallelism"). Collectives are enqueued on the caller's CUDA stream, so the runner's decode graphs
// capture them. NVLink multicast (NVLS) is off: the group sets NCCL_NVLS_ENABLE=0 before creating
// its communicators (the GPU machines this is built for require it). Built only with CUDA.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "tandem/backend/collective.h"

namespace tandem::backend {

class NcclCollectiveGroup {
 public:
  // One rank per entry of `devices` (CUDA ordinals, distinct), rank r on devices[r]. A single device
  // is a group of one (its all-reduce is a copy; the decode graph still holds the node).
  static absl::StatusOr<std::unique_ptr<NcclCollectiveGroup>> Create(const std::vector<int>& devices);
  ~NcclCollectiveGroup();
  NcclCollectiveGroup(const NcclCollectiveGroup&) = delete;
  NcclCollectiveGroup& operator=(const NcclCollectiveGroup&) = delete;

  int size() const { return static_cast<int>(ranks_.size()); }
  Collective& rank(int r);
  // Aborts every communicator (ncclCommAbort): a rank blocked in a collective whose peer failed
  // returns; the group is unusable afterwards.
  void Abort();

 private:
  class Rank;
  NcclCollectiveGroup() = default;
  std::vector<std::unique_ptr<Rank>> ranks_;
};

}  // namespace tandem::backend
