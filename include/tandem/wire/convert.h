// The wire format's one home: conversions, both directions, between the worker control plane's
// messages (proto/tandem/v1/worker.proto) and the engine's, KV cache's and transfer's types, and the
// KV layout compatibility check that two workers run before exchanging blocks (docs/architecture.md
// "KV layout and what crosses the wire"), and of the load stream's report (worker_report.h). Below the
// router, the worker and the frontend, so each converts the same way and none includes another.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "tandem/engine/engine.h"
#include "tandem/kvcache/kv_events.h"
#include "tandem/transfer/block_runs.h"
#include "tandem/v1/worker.pb.h"
#include "tandem/wire/worker_report.h"

namespace tandem::wire {

// Bumped whenever the meaning of a block's bytes changes (kv[layer]: [blocks, 2, heads, block, dim]).
inline constexpr int32_t kKvLayoutVersion = 1;

engine::SamplingParams FromProto(const v1::WorkerSamplingParams& p);
v1::WorkerSamplingParams ToProto(const engine::SamplingParams& p);

v1::WorkerFinishReason ToProto(engine::FinishReason reason);
engine::FinishReason FromProto(v1::WorkerFinishReason reason);

// One sampled token's logprobs; FromProto takes the token id the message belongs to.
v1::WorkerLogprobs ToProto(const engine::SampleResult& sample);
engine::SampleResult FromProto(const v1::WorkerLogprobs& logprobs, int32_t token);

// One engine output as a stream message (error status included).
v1::WorkerGenerateResponse ToProto(const engine::RequestOutput& output);

v1::KvCacheEvent ToProto(const kvcache::KvEvent& event);
kvcache::KvEvent FromProto(const v1::KvCacheEvent& event);

// The load stream's report (worker_report.h; defined in worker_report.cc).
v1::LatencyHistogram ToProto(const LatencyHistogram& histogram);
LatencyHistogram FromProto(const v1::LatencyHistogram& histogram);
v1::LoadReport ToProto(const WorkerReport& report);
WorkerReport FromProto(const v1::LoadReport& report);

// OK when blocks written by one side mean the same to the other; otherwise FailedPrecondition naming
// every field that differs, with both values ("here" is `mine`, "there" is `peer_name`'s).
absl::Status CheckLayoutCompatible(const v1::KvLayout& mine, const v1::KvLayout& theirs,
                                   const std::string& peer_name);

// CheckLayoutCompatible for two workers' descriptions, and the same KV transport on both (what a
// prefill worker and a decode worker check of each other before any block moves).
absl::Status CheckPeerCompatible(const v1::WorkerInfo& mine, const v1::WorkerInfo& theirs,
                                 const std::string& peer_name);

// The KV heads each rank of the worker with `layout` holds (one rank of every head at
// tensor_parallel 1), for planning writes between pools of different tensor-parallel widths.
transfer::KvRankHeads KvRankHeadsOf(const v1::KvLayout& layout);

// What a prefill worker (pools of `block_size` tokens, `num_layers` layers, its ranks holding
// `local_heads`) checks of a RemotePrefillRequest before any work, after CheckPeerCompatible: the
// destination block ids cover the prompt and lie in the decode pool, num_cached_tokens is in range,
// the destination lists one KV region per layer and rank of `dest_heads` (KvRankHeadsOf of its
// layout), and this worker's ranks can fill those (transfer::CheckHandOff). InvalidArgument naming
// the field otherwise.
absl::Status CheckRemotePrefillRequest(int block_size, int num_layers, const transfer::KvRankHeads& local_heads,
                                       const v1::RemotePrefillRequest& request,
                                       const transfer::KvRankHeads& dest_heads);

}  // namespace tandem::wire
