#include "transport_kv_memory.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "tandem/backend/buffer.h"
#include "tandem/core/logging.h"

namespace tandem::worker {
namespace {

// Host memory owned by a transport; freed (after its registrations are gone) on destruction.
class TransportBuffer final : public backend::Buffer {
 public:
  TransportBuffer(std::shared_ptr<transfer::KvTransport> transport, void* data, size_t size)
      : transport_(std::move(transport)), data_(data), size_(size) {}
  ~TransportBuffer() override {
    if (absl::Status s = transport_->FreeMemory(data_); !s.ok()) {
      TLOG_WARN("kv pool: freeing {} bytes of {} memory: {}", size_, transport_->name(), std::string(s.message()));
    }
  }
  TransportBuffer(const TransportBuffer&) = delete;
  TransportBuffer& operator=(const TransportBuffer&) = delete;

  void* data() override { return data_; }
  const void* data() const override { return data_; }
  size_t size() const override { return size_; }
  backend::MemoryKind memory_kind() const override { return backend::MemoryKind::kHost; }

 private:
  std::shared_ptr<transfer::KvTransport> transport_;
  void* data_;
  size_t size_;
};

}  // namespace

backend::KvPoolAllocator TransportKvAllocator(std::shared_ptr<transfer::KvTransport> transport) {
  // Ask once with a small size: a transport without memory of its own says Unimplemented.
  absl::StatusOr<void*> probe = transport->AllocateMemory(4096, backend::MemoryKind::kHost);
  if (!probe.ok()) {
    TLOG_DEBUG("kv pool: backend memory ({})", std::string(probe.status().message()));
    return {};
  }
  (void)transport->FreeMemory(*probe);
  return [transport](size_t bytes) -> absl::StatusOr<std::unique_ptr<backend::Buffer>> {
    absl::StatusOr<void*> data = transport->AllocateMemory(bytes, backend::MemoryKind::kHost);
    if (!data.ok()) {
      return absl::Status(data.status().code(), absl::StrCat("kv pool from the ", transport->name(),
                                                             " transport: ", data.status().message()));
    }
    return std::unique_ptr<backend::Buffer>(std::make_unique<TransportBuffer>(transport, *data, bytes));
  };
}

}  // namespace tandem::worker
