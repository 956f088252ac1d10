// KV pools in a transport's own memory: on the CPU backend with ucx, the pools come from UCX's
// shared-memory allocator, so a prefill worker on the same host writes a decode worker's blocks
// with a memcpy instead of through TCP loopback.
#pragma once

#include <memory>

#include "tandem/backend/kv_pool.h"
#include "tandem/transfer/kv_transport.h"

namespace tandem::worker {

// An allocator for KvPool::Create that takes host memory from `transport` (each buffer keeps the
// transport alive and frees its memory on destruction), or an empty allocator (use the backend's
// memory) when the transport has no memory of its own.
backend::KvPoolAllocator TransportKvAllocator(std::shared_ptr<transfer::KvTransport> transport);

}  // namespace tandem::worker
