#include "tandem/backend/nccl_collective.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdlib>
#include <mutex>
#include <set>

#include "absl/strings/str_cat.h"
#include "tandem/backend/cuda_handles.h"
#include "tandem/core/status.h"

namespace tandem::backend {

namespace {

absl::Status NcclStatus(ncclResult_t r, const char* what) {
  if (r == ncclSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("nccl collective: ", what, ": ", ncclGetErrorString(r)));
}

absl::StatusOr<ncclDataType_t> NcclType(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return ncclFloat32;
    case DType::kBF16:
      return ncclBfloat16;
    case DType::kF16:
      return ncclFloat16;
    case DType::kI32:
      return ncclInt32;
    case DType::kI64:
      return ncclInt64;
    case DType::kU8:
    case DType::kF8E4M3:
      return ncclUint8;
  }
  return absl::InvalidArgumentError("nccl collective: unsupported dtype");
}

}  // namespace

class NcclCollectiveGroup::Rank final : public Collective {
 public:
  Rank(int rank, int size, int device) : rank_(rank), size_(size), device_(device) {}
  ~Rank() override {
    if (comm_ != nullptr) {
      cuda::DeviceGuard guard(device_);
      ncclCommDestroy(comm_);
    }
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  absl::Status AllReduceSum(void* data, size_t count, DType dtype, void* stream) override {
    TANDEM_ASSIGN_OR_RETURN(ncclDataType_t type, NcclType(dtype));
    return NcclStatus(ncclAllReduce(data, data, count, type, ncclSum, comm_, static_cast<cudaStream_t>(stream)),
                      "ncclAllReduce");
  }
  absl::Status AllGather(const void* in, void* out, size_t count, DType dtype, void* stream) override {
    TANDEM_ASSIGN_OR_RETURN(ncclDataType_t type, NcclType(dtype));
    return NcclStatus(ncclAllGather(in, out, count, type, comm_, static_cast<cudaStream_t>(stream)), "ncclAllGather");
  }
  absl::Status Broadcast(void* data, size_t bytes, int root, void* stream) override {
    return NcclStatus(ncclBroadcast(data, data, bytes, ncclUint8, root, comm_, static_cast<cudaStream_t>(stream)),
                      "ncclBroadcast");
  }

  int rank_, size_, device_;
  ncclComm_t comm_ = nullptr;
  std::once_flag aborted_;
};

absl::StatusOr<std::unique_ptr<NcclCollectiveGroup>> NcclCollectiveGroup::Create(const std::vector<int>& devices) {
  if (devices.empty() || std::set<int>(devices.begin(), devices.end()).size() != devices.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("nccl collective: expected distinct devices, one per rank, found ", devices.size()));
  }
  int visible = 0;
  TANDEM_CUDA_CHECK(cudaGetDeviceCount(&visible));
  for (int d : devices) {
    if (d < 0 || d >= visible) {
      return absl::InvalidArgumentError(
          absl::StrCat("nccl collective: device ", d, " is not one of the ", visible, " visible GPUs"));
    }
  }
  setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/1);  // never NVLink multicast
  // Connect every channel now rather than at a communicator's first collective, which may be inside
  // a decode graph's capture (an operator's setting wins).
  setenv("NCCL_RUNTIME_CONNECT", "0", /*overwrite=*/0);
  std::unique_ptr<NcclCollectiveGroup> group(new NcclCollectiveGroup());
  const int n = static_cast<int>(devices.size());
  for (int r = 0; r < n; ++r) group->ranks_.push_back(std::make_unique<Rank>(r, n, devices[static_cast<size_t>(r)]));
  ncclUniqueId id;
  TANDEM_RETURN_IF_ERROR(NcclStatus(ncclGetUniqueId(&id), "ncclGetUniqueId"));
  // One thread creating every rank's communicator: inside a group call.
  TANDEM_RETURN_IF_ERROR(NcclStatus(ncclGroupStart(), "ncclGroupStart"));
  for (int r = 0; r < n; ++r) {
    TANDEM_CUDA_CHECK(cudaSetDevice(devices[static_cast<size_t>(r)]));
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 1;
    if (const ncclResult_t init = ncclCommInitRankConfig(&group->ranks_[static_cast<size_t>(r)]->comm_, n, id, r, &config);
        init != ncclSuccess) {
      ncclGroupEnd();
      return NcclStatus(init, "ncclCommInitRankConfig");
    }
  }
  TANDEM_RETURN_IF_ERROR(NcclStatus(ncclGroupEnd(), "ncclGroupEnd (communicator setup)"));
  return group;
}

NcclCollectiveGroup::~NcclCollectiveGroup() = default;

Collective& NcclCollectiveGroup::rank(int r) { return *ranks_[static_cast<size_t>(r)]; }

void NcclCollectiveGroup::Abort() {
  for (auto& rank : ranks_) {
    std::call_once(rank->aborted_, [&] {
      if (rank->comm_ == nullptr) return;
      cuda::DeviceGuard guard(rank->device_);
      ncclCommAbort(rank->comm_);
      rank->comm_ = nullptr;
    });
  }
}

}  // namespace tandem::backend
