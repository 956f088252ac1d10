// The worker's load stream (worker.proto StreamLoad): what the engine holds in its prefix cache, as
// its KV events say, and the StreamLoad calls that carry those events with the worker's load and
// counters to each router. Also answers how much of a prompt the cache already holds (the decode
// side's conditional disaggregation).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/sync_stream.h"
#include "tandem/kvcache/block_hash.h"
#include "tandem/kvcache/kv_events.h"
#include "tandem/v1/worker.pb.h"
#include "tandem/wire/worker_report.h"

namespace tandem::worker {

class LoadStream {
 public:
  // `block_size` and `salt`: the engine's, to hash prompts as its prefix cache does.
  LoadStream(int32_t block_size, uint64_t salt) : block_size_(block_size), salt_(salt) {}

  // The engine's KV events since the last call: applied to the cached set and queued for every
  // subscriber.
  void Publish(const std::vector<kvcache::KvEvent>& events);

  // Prompt tokens not covered by the prefix cache (as last reported by the engine's KV events).
  int64_t UncachedTokens(const std::vector<int32_t>& prompt) const;

  // Serves one StreamLoad call: a report every `interval` (`snapshot` gives its load and counters;
  // the events are the subscriber's), the first one starting with what is cached now (ALL_CLEARED,
  // then every held block as STORED) so a late or restarted router routes prefix hits at once.
  // Returns when the client cancels, a write fails or Stop() is called.
  void Serve(grpc::ServerContext* context, std::chrono::milliseconds interval,
             const std::function<wire::WorkerReport()>& snapshot, grpc::ServerWriter<v1::LoadReport>* writer);

  // Ends every Serve() now and every later one at once.
  void Stop();

 private:
  struct Subscriber {
    std::vector<kvcache::KvEvent> events;  // under LoadStream::mu_
  };

  const int32_t block_size_;
  const uint64_t salt_;
  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopped_ = false;
  absl::flat_hash_set<kvcache::BlockHash> cached_;
  std::list<std::shared_ptr<Subscriber>> subscribers_;
};

}  // namespace tandem::worker
