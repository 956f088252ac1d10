// The prefill side of disaggregation: serves RemotePrefill. Checks the caller's layout and request,
// imports the decode worker's KV pool (once per decode instance, shared by its requests), runs the
// prompt prefill-only, and writes its blocks into the caller's pool: layer by layer while the prompt
// runs (LayerwiseKvSender), or after it; then releases the blocks and replies with the first token.
//
// Imported pools are reference-counted: a pool dropped from the table (LRU eviction, or a failed
// transfer, so that the next request reconnects) stays open until the requests using it are done.
// Only a write that may still be in flight (it timed out) closes the endpoint at once, so it cannot
// land after the source blocks are released; other requests on that endpoint then fail with it.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "layerwise_sender.h"
#include "tandem/backend/kv_pool.h"
#include "tandem/engine/engine_loop.h"
#include "tandem/transfer/block_runs.h"
#include "tandem/transfer/kv_transport.h"
#include "tandem/v1/worker.pb.h"
#include "tandem/worker/worker.h"
#include "worker_counters.h"

namespace tandem::worker {

// This worker's KV memory as the transport sees it.
struct LocalKvRegions {
  backend::KvCacheSpec spec;              // one rank's pool (rank 0's geometry)
  std::vector<transfer::RegionId> layers;  // rank-major: [rank * num_layers + layer]
  transfer::KvRankHeads heads;             // the heads each rank holds
};

class PrefillServer {
 public:
  // `sender`: layer-wise streaming (transfer.layerwise on a tensor_parallel 1 worker), else null.
  // Every reference outlives this.
  PrefillServer(const WorkerOptions& options, const v1::WorkerInfo& info, LocalKvRegions local,
                transfer::KvTransport& transport, engine::EngineLoop& loop, LayerwiseKvSender* sender,
                SharedCounters& counters, const std::atomic<bool>& stopping);

  // One RemotePrefill call: fills `response` (first token, blocks and bytes written, transfer time).
  absl::Status Serve(grpc::ServerContext* context, const v1::RemotePrefillRequest& request,
                     v1::RemotePrefillResponse& response);

 private:
  // A decode worker's KV pool imported into our transport; disconnected when the last user is gone.
  struct ImportedPool {
    ImportedPool(transfer::KvTransport& transport, transfer::PeerId peer) : transport(transport), peer(peer) {}
    ~ImportedPool();
    ImportedPool(const ImportedPool&) = delete;
    ImportedPool& operator=(const ImportedPool&) = delete;
    // Closes the endpoint now (writes on it are cancelled); the destructor then does nothing.
    void Disconnect();

    transfer::KvTransport& transport;
    const transfer::PeerId peer;
    std::vector<transfer::RemoteRegionId> layers;  // rank-major, as the decode worker lists them
    uint64_t last_used = 0;                       // PrefillServer::pool_clock_ at its latest use
    std::atomic<bool> disconnected{false};
  };
  // Decode pools kept imported at once; past it the least recently used one is dropped (decode
  // instances that restarted or left would otherwise keep their endpoints here forever).
  static constexpr size_t kMaxImportedPools = 64;

  absl::StatusOr<std::shared_ptr<ImportedPool>> ImportPool(const v1::WorkerInfo& dest);
  // After a failed transfer: the next request to `instance_id` imports its pool again; `in_flight`
  // (a write timed out) closes this one now.
  void ForgetPool(const std::string& instance_id, const std::shared_ptr<ImportedPool>& pool, const absl::Status& failure);
  KvDestination Destination(const ImportedPool& pool, const transfer::KvRankHeads& heads,
                            const v1::RemotePrefillRequest& request) const;
  // Blocks [num_cached / block_size, end) of every layer into the decode worker's pool, one transfer
  // per layer (coalesced runs), the completion notice riding on the last; waits for all.
  absl::Status WriteBlocks(const ImportedPool& pool, const transfer::KvRankHeads& dest_heads,
                           const std::vector<kvcache::BlockId>& src_blocks, const v1::RemotePrefillRequest& request);

  // disaggregation.kv_transfer_timeout_s: how long one request's KV writes may take to land.
  int TransferTimeoutMs() const {
    return static_cast<int>(options_.disaggregation.kv_transfer_timeout_s * 1000.0);
  }

  const WorkerOptions& options_;
  const v1::WorkerInfo& info_;
  const LocalKvRegions local_;
  transfer::KvTransport& transport_;
  engine::EngineLoop& loop_;
  LayerwiseKvSender* const sender_;
  SharedCounters& counters_;
  const std::atomic<bool>& stopping_;

  std::mutex pools_mu_;
  std::map<std::string, std::shared_ptr<ImportedPool>> pools_;  // by decode instance id
  uint64_t pool_clock_ = 0;                                     // under pools_mu_
};

}  // namespace tandem::worker
