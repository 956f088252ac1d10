// Prefill side of layer-wise KV streaming (docs/architecture.md "One request, end to end", step 4).
// While a prefill-only sequence runs its chunks, the executor's layer callback (engine thread) posts,
// as soon as layer L's K/V of the step is in the KV cache, the write of layer L for the blocks this
// step completed: the full blocks the chunk filled (and blocks already present from the prefill
// worker's own prefix cache), and on the final chunk the last, partial one, coalesced into block
// runs. Blocks of the decode worker's cached prefix are never sent. The completion notice rides on
// the final chunk's last layer, so it arrives after all data of all layers (transports order a
// notification after every earlier write to the same peer). Posting is asynchronous; the request's
// handler thread waits for the writes once the engine reports the hand-off (Finish).
//
//   handler: Start(id, destination) → submit → ... final output → Finish(id) → release blocks, reply
//   engine:  per step, layer 0: plan every streamed sequence's runs and writes for all layers
//            per layer L: PostWrite(writes of L) (+ notification on the final chunk's last layer)
//
// A sequence whose chunks stop following each other (preempted and recomputed into other blocks) is
// no longer streamed: Finish then reports it incomplete and the caller sends everything after the step.
#pragma once

#include <chrono>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "tandem/engine/model_executor.h"
#include "tandem/transfer/block_runs.h"
#include "tandem/transfer/kv_transport.h"

namespace tandem::worker {

// Where one request's KV goes.
struct KvDestination {
  transfer::PeerId peer = 0;
  // The decode worker's pools: one region per layer of each of its ranks, rank-major, holding the
  // heads `heads` lists (its ranks may split the heads differently from this worker: the writes are
  // then head slabs, transfer::HeadWrites).
  std::vector<transfer::RemoteRegionId> layers;
  transfer::KvRankHeads heads;
  std::vector<int64_t> dst_blocks;               // one per block of the prompt
  int64_t num_tokens = 0;                        // prompt length
  int64_t first_block = 0;   // blocks below it hold the decode worker's cached prefix: never sent
  std::string notification;  // delivered to the decode worker after the last layer's data
};

class LayerwiseKvSender {
 public:
  // `local_layers`: this worker's KV pool registered with `transport`, one region per layer, holding
  // the heads `local_heads` lists (one rank: the sender runs on tensor_parallel 1 workers).
  LayerwiseKvSender(transfer::KvTransport* transport, std::vector<transfer::RegionId> local_layers,
                    transfer::KvRankHeads local_heads, int32_t block_size);

  // Handler thread, before the request is submitted to the engine. AlreadyExists for a live id,
  // InvalidArgument for a destination that does not match the pool.
  absl::Status Start(const std::string& request_id, KvDestination destination);

  // Engine thread: the executor's layer callback, for the steps Wants.
  void OnLayerDone(const engine::StepPlan& plan, int32_t layer);
  // Engine thread: whether `plan` runs a prefill-only sequence while a stream is live (other steps,
  // e.g. an aggregated worker's decode steps, run without layer callbacks: on the GPU, from their
  // CUDA graphs).
  bool Wants(const engine::StepPlan& plan) const;

  struct Result {
    absl::Status status;    // a post or a write failed
    bool complete = false;  // every block of every layer and the notification were posted and landed
    // When the first write was posted (default-constructed when none was): the transfer spans from
    // there to Finish's return, overlapping the prefill's compute.
    std::chrono::steady_clock::time_point first_post;
  };
  // Handler thread, once the request produced its final output (no step runs it any more): forgets
  // it, then waits for its posted writes (up to `timeout_ms` for all of them) and releases them.
  // !complete with an OK status: nothing or only part was streamed (preemption, no final chunk);
  // send it all now.
  Result Finish(const std::string& request_id, int timeout_ms);

 private:
  struct Stream;
  // One streamed sequence's writes in the running step: ops_[begin + layer * per_layer, + per_layer).
  struct StepWork {
    std::shared_ptr<Stream> stream;
    std::size_t begin = 0;
    std::size_t per_layer = 0;
    bool final = false;
  };

  void PlanStep(const engine::StepPlan& plan);
  // Adds `seq`'s newly completed blocks to the step, or marks the stream fallen back / failed.
  void PlanSequence(const std::shared_ptr<Stream>& stream, const engine::ExecSequence& seq);

  transfer::KvTransport* const transport_;
  const std::vector<transfer::RegionId> local_layers_;
  const transfer::KvRankHeads local_heads_;
  const int32_t num_layers_;
  const int32_t block_size_;

  std::mutex mu_;  // streams_ and the shared fields of every Stream
  absl::flat_hash_map<std::string, std::shared_ptr<Stream>> streams_;
  std::atomic<int> live_{0};  // streams_.size(), read without the lock on every step

  // Engine thread only: the running step's plan.
  std::vector<StepWork> step_;
  std::vector<transfer::WriteOp> ops_;  // [work][layer][write]
};

}  // namespace tandem::worker
