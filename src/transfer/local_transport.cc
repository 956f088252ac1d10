#include "tandem/transfer/local_transport.h"

#include <atomic>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tandem::transfer {
namespace {

// Process-wide registry of live local transports, by address.
std::mutex& RegistryMutex() {
  static std::mutex mu;
  return mu;
}
std::map<std::string, LocalTransport*>& Registry() {
  static std::map<std::string, LocalTransport*> registry;
  return registry;
}

}  // namespace

LocalTransport::LocalTransport() {
  static std::atomic<uint64_t> counter{0};
  address_ = absl::StrCat("local:", counter.fetch_add(1) + 1);
  std::lock_guard<std::mutex> lock(RegistryMutex());
  Registry()[address_] = this;
}

LocalTransport::~LocalTransport() {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  Registry().erase(address_);
}

absl::StatusOr<std::string> LocalTransport::LocalAddress() { return address_; }

absl::StatusOr<RegionId> LocalTransport::RegisterMemory(const MemoryRegion& region) {
  if (region.base == nullptr || region.bytes == 0) {
    return absl::InvalidArgumentError("RegisterMemory: expected a non-null base and a non-zero size");
  }
  switch (region.kind) {
    case backend::MemoryKind::kHost:
      break;
    case backend::MemoryKind::kDevice:
      return absl::UnimplementedError(
          "local transport: only host memory in this build (CUDA copies come with the cuda backend)");
  }
  std::lock_guard<std::mutex> lock(mu_);
  const RegionId id = next_id_++;
  regions_[id] = region;
  return id;
}

absl::Status LocalTransport::DeregisterMemory(RegionId region) {
  std::lock_guard<std::mutex> lock(mu_);
  if (regions_.erase(region) == 0) return absl::NotFoundError(absl::StrCat("no registered region ", region));
  return absl::OkStatus();
}

bool LocalTransport::HasRegion(RegionId id) const { return regions_.count(id) > 0; }

absl::StatusOr<std::string> LocalTransport::ExportRegion(RegionId region) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = regions_.find(region);
  if (it == regions_.end()) return absl::NotFoundError(absl::StrCat("no registered region ", region));
  return absl::StrCat(address_, "|", region, "|", reinterpret_cast<uintptr_t>(it->second.base), "|",
                      it->second.bytes);
}

absl::StatusOr<PeerId> LocalTransport::Connect(const std::string& peer_address) {
  {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    if (Registry().count(peer_address) == 0) {
      return absl::UnavailableError(absl::StrCat("local transport: no transport at '", peer_address,
                                                 "' in this process"));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  const PeerId id = next_id_++;
  peers_[id] = peer_address;
  return id;
}

absl::Status LocalTransport::Disconnect(PeerId peer) {
  std::lock_guard<std::mutex> lock(mu_);
  if (peers_.erase(peer) == 0) return absl::NotFoundError(absl::StrCat("no peer ", peer));
  for (auto it = remotes_.begin(); it != remotes_.end();) {
    it = it->second.peer == peer ? remotes_.erase(it) : std::next(it);
  }
  return absl::OkStatus();
}

absl::StatusOr<RemoteRegionId> LocalTransport::ImportRegion(PeerId peer, const std::string& descriptor) {
  std::vector<std::string> parts = absl::StrSplit(descriptor, '|');
  uint64_t owner_region = 0, base = 0, bytes = 0;
  if (parts.size() != 4 || !absl::SimpleAtoi(parts[1], &owner_region) || !absl::SimpleAtoi(parts[2], &base) ||
      !absl::SimpleAtoi(parts[3], &bytes)) {
    return absl::InvalidArgumentError("local transport: malformed region descriptor");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto peer_it = peers_.find(peer);
  if (peer_it == peers_.end()) return absl::NotFoundError(absl::StrCat("no peer ", peer));
  if (peer_it->second != parts[0]) {
    return absl::InvalidArgumentError(absl::StrCat("region descriptor belongs to ", parts[0], ", not to peer ",
                                                   peer_it->second));
  }
  const RemoteRegionId id = next_id_++;
  remotes_[id] = {peer, reinterpret_cast<char*>(base), bytes, owner_region};
  return id;
}

absl::StatusOr<TransferId> LocalTransport::PostWrite(PeerId peer, std::span<const WriteOp> ops,
                                                     std::string notification) {
  if (notification.size() > kMaxNotificationBytes) {
    return absl::InvalidArgumentError(absl::StrCat("notification of ", notification.size(), " bytes exceeds ",
                                                   kMaxNotificationBytes));
  }
  std::string peer_address;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto peer_it = peers_.find(peer);
    if (peer_it == peers_.end()) return absl::NotFoundError(absl::StrCat("no peer ", peer));
    peer_address = peer_it->second;
    // Validate every op before copying anything: a bad list moves no bytes.
    for (const WriteOp& op : ops) {
      auto local = regions_.find(op.local_region);
      auto remote = remotes_.find(op.remote_region);
      if (local == regions_.end()) return absl::NotFoundError(absl::StrCat("no registered region ", op.local_region));
      if (remote == remotes_.end() || remote->second.peer != peer) {
        return absl::NotFoundError(absl::StrCat("no imported region ", op.remote_region, " for peer ", peer));
      }
      if (op.local_offset + op.bytes > local->second.bytes || op.remote_offset + op.bytes > remote->second.bytes) {
        return absl::OutOfRangeError(absl::StrCat("write of ", op.bytes, " bytes at local offset ", op.local_offset,
                                                  " / remote offset ", op.remote_offset, " exceeds the region"));
      }
    }
    for (const WriteOp& op : ops) {
      std::memcpy(remotes_[op.remote_region].base + op.remote_offset,
                  static_cast<char*>(regions_[op.local_region].base) + op.local_offset, op.bytes);
    }
  }
  if (!notification.empty()) {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    auto it = Registry().find(peer_address);
    if (it == Registry().end()) return absl::UnavailableError(absl::StrCat("peer ", peer_address, " is gone"));
    it->second->Deliver(std::move(notification));
  }
  std::lock_guard<std::mutex> lock(mu_);
  const TransferId id = next_id_++;
  transfers_[id] = TransferState::kDone;
  return id;
}

void LocalTransport::Deliver(std::string notification) {
  std::lock_guard<std::mutex> lock(mu_);
  inbox_.push_back(std::move(notification));
}

absl::StatusOr<TransferState> LocalTransport::Poll(TransferId transfer) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = transfers_.find(transfer);
  if (it == transfers_.end()) return absl::NotFoundError(absl::StrCat("no transfer ", transfer));
  return it->second;
}

void LocalTransport::Release(TransferId transfer) {
  std::lock_guard<std::mutex> lock(mu_);
  transfers_.erase(transfer);
}

std::vector<std::string> LocalTransport::TakeNotifications() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  out.swap(inbox_);
  return out;
}

}  // namespace tandem::transfer
