#include "tandem/backend/collective.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "tandem/core/status.h"

namespace tandem::backend {

class HostCollectiveGroup::Rank final : public Collective {
 public:
  Rank(HostCollectiveGroup* group, int rank) : group_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return group_->size(); }

  absl::Status AllReduceSum(void* data, size_t count, DType dtype, void* /*stream*/) override {
    if (dtype != DType::kF32) {
      return absl::InvalidArgumentError(
          absl::StrCat("host collective: all-reduce of ", DTypeName(dtype), ", the CPU backend's is f32"));
    }
    TANDEM_RETURN_IF_ERROR(Publish(data));
    // This rank's share of the elements: [begin, end).
    const size_t n = static_cast<size_t>(size());
    const size_t begin = count * static_cast<size_t>(rank_) / n, end = count * (static_cast<size_t>(rank_) + 1) / n;
    std::vector<float*> bufs(n);
    for (size_t r = 0; r < n; ++r) bufs[r] = static_cast<float*>(group_->slots_[r]);
    for (size_t i = begin; i < end; ++i) {
      float sum = bufs[0][i];
      for (size_t r = 1; r < n; ++r) sum += bufs[r][i];
      for (size_t r = 0; r < n; ++r) bufs[r][i] = sum;
    }
    return group_->Barrier();  // every share written before any rank reads its buffer
  }

  absl::Status AllGather(const void* in, void* out, size_t count, DType dtype, void* /*stream*/) override {
    TANDEM_RETURN_IF_ERROR(Publish(const_cast<void*>(in)));
    const size_t bytes = count * DTypeSize(dtype);
    for (int r = 0; r < size(); ++r) {
      std::memcpy(static_cast<uint8_t*>(out) + static_cast<size_t>(r) * bytes, group_->slots_[static_cast<size_t>(r)],
                  bytes);
    }
    return group_->Barrier();  // no rank reuses its input while another still reads it
  }

  absl::Status Broadcast(void* data, size_t bytes, int root, void* /*stream*/) override {
    if (root < 0 || root >= size()) {
      return absl::InvalidArgumentError(absl::StrCat("host collective: broadcast root ", root, " of ", size()));
    }
    TANDEM_RETURN_IF_ERROR(Publish(data));
    if (rank_ != root) std::memcpy(data, group_->slots_[static_cast<size_t>(root)], bytes);
    return group_->Barrier();
  }

 private:
  // Puts this rank's buffer in its slot and waits for every rank's.
  absl::Status Publish(void* data) {
    {
      std::lock_guard<std::mutex> lock(group_->mu_);
      group_->slots_[static_cast<size_t>(rank_)] = data;
    }
    return group_->Barrier();
  }

  HostCollectiveGroup* group_;
  int rank_;
};

HostCollectiveGroup::HostCollectiveGroup(int size) : slots_(static_cast<size_t>(std::max(size, 1)), nullptr) {
  for (int r = 0; r < std::max(size, 1); ++r) ranks_.push_back(std::make_unique<Rank>(this, r));
}

HostCollectiveGroup::~HostCollectiveGroup() = default;

Collective& HostCollectiveGroup::rank(int r) { return *ranks_[static_cast<size_t>(r)]; }

void HostCollectiveGroup::Abort(const absl::Status& why) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (aborted_.ok()) aborted_ = why.ok() ? absl::AbortedError("host collective: aborted") : why;
  }
  cv_.notify_all();
}

absl::Status HostCollectiveGroup::Barrier() {
  std::unique_lock<std::mutex> lock(mu_);
  if (!aborted_.ok()) return aborted_;
  if (++arrived_ == size()) {
    arrived_ = 0;
    ++generation_;
    lock.unlock();
    cv_.notify_all();
    return absl::OkStatus();
  }
  const uint64_t gen = generation_;
  cv_.wait(lock, [&] { return generation_ != gen || !aborted_.ok(); });
  return generation_ != gen ? absl::OkStatus() : aborted_;
}

}  // namespace tandem::backend
