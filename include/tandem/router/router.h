// The router: picks the decode worker (and, when disaggregating, the prefill worker) for a prompt.
//
// Policies (router.policy):
//   round_robin   the next candidate in id order.
//   random        a uniformly random candidate (seeded).
//   least_loaded  fewest active decode blocks, then fewest running requests.
//   kv_aware      least cost = kv_overlap_weight × (prompt blocks the worker has NOT cached)
//                 + active decode blocks; equal costs go to the less loaded worker. Cached blocks
//                 come from the workers' KV events (KvIndex); the prompt's block hashes are
//                 computed with kvcache::HashFullBlocks and the workers' salt, so they match.
// Load is each worker's last report (UpdateLoad) plus the blocks of requests routed to it since,
// minus those of requests finished since (ReleaseRequest); a report replaces the estimate.
//
// Conditional disaggregation (disaggregation.mode): `always` prefills remotely whenever a prefill
// worker exists; `off` never; `conditional` prefills remotely only when the uncached prompt is
// longer than max_local_prefill_tokens and the prefill queue is not longer than max_prefill_queue.
//
// Workers join and leave at any time (AddWorker/RemoveWorker, fed by cluster::Discovery); a removed
// worker is never picked, nor is one whose load reports stopped for down_after (stopped or hung:
// router.load_report_timeout_s) until it reports again. Thread-safe: every method may be called
// from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tandem/cluster/discovery.h"
#include "tandem/core/config.h"
#include "tandem/kvcache/kv_events.h"
#include "tandem/router/kv_index.h"

namespace tandem::router {

struct RouterOptions {
  RouterPolicy policy = RouterPolicy::kKvAware;
  double kv_overlap_weight = 1.0;
  int32_t block_size = 16;  // the workers' KV block size (kv_cache.block_size)
  uint64_t hash_salt = 0;   // kvcache::HashSalt(model) as the workers compute it
  uint64_t seed = 0;        // random policy
  DisaggregationSection disaggregation;
  absl::Duration down_after = absl::Seconds(3);  // a worker silent this long after reporting is skipped

  static RouterOptions FromConfig(const DeploymentConfig& config, uint64_t hash_salt);
};

// What a worker last reported about itself.
struct WorkerLoad {
  int64_t active_decode_blocks = 0;  // KV blocks held by running sequences
  int64_t num_running = 0;
  int64_t num_waiting = 0;  // queued requests (a prefill worker's queue length)
  bool draining = false;    // the worker drains: it takes nothing new (Pick skips it)
};

struct RouteResult {
  std::string worker_id;
  std::string address;
  int64_t prompt_blocks = 0;           // blocks the prompt needs (a partial last block counts)
  int64_t cached_blocks = 0;           // leading prompt blocks the worker holds
  int64_t uncached_prompt_tokens = 0;  // prompt tokens the worker must compute
  int64_t load_blocks = 0;             // the worker's estimated active blocks before this request
  int64_t queue_len = 0;               // the worker's reported waiting requests
  double cost = 0;                     // kv_aware cost (0 for other policies)
};

struct RoutePlan {
  RouteResult decode;
  std::optional<RouteResult> prefill;  // set: prefill remotely on this worker, then decode
};

class Router {
 public:
  explicit Router(RouterOptions options);

  const RouterOptions& options() const { return options_; }

  // Adds a worker or updates its address/role (its cache index and load are kept on update).
  void AddWorker(const cluster::WorkerInfo& worker);
  void RemoveWorker(const std::string& worker_id);
  void ApplyKvEvents(const std::string& worker_id, std::span<const kvcache::KvEvent> events);
  void UpdateLoad(const std::string& worker_id, const WorkerLoad& load);

  // A decode-capable worker (role decode or both) for `prompt`; counts the prompt's blocks into its
  // load. Unavailable when there is none.
  absl::StatusOr<RouteResult> RouteDecode(std::span<const int32_t> prompt);
  // A prefill worker (role prefill) for `prompt`; counts the uncached part into its load.
  absl::StatusOr<RouteResult> RoutePrefill(std::span<const int32_t> prompt);
  // The decode worker, plus a prefill worker when ShouldPrefillRemotely says so for the decode
  // worker's uncached tokens and the chosen prefill worker's queue. `n` > 1 sequences are always
  // prefilled on the decode worker (a remote prefill hands back one sequence; the decode worker
  // prefills once and forks them, sharing the prompt's blocks). Workers in `avoid` are not chosen (a
  // request routed again after one of them failed it).
  absl::StatusOr<RoutePlan> Route(std::span<const int32_t> prompt, int32_t n = 1,
                                  const std::set<std::string>& avoid = {});

  // A request routed to `worker_id` finished: its `blocks` leave the load estimate.
  void ReleaseRequest(const std::string& worker_id, int64_t blocks);

  bool ShouldPrefillRemotely(int64_t uncached_prompt_tokens, int64_t prefill_queue_len) const;

  std::vector<std::string> WorkerIds() const;
  int64_t CachedBlocks(const std::string& worker_id) const;
  // The load estimate (blocks) of `worker_id`, or -1 when unknown.
  int64_t LoadBlocks(const std::string& worker_id) const;

 private:
  struct Worker {
    cluster::WorkerInfo info;
    WorkerLoad load;
    absl::Time last_report = absl::InfinitePast();  // InfinitePast: never reported (not judged)
  };
  enum class Pool { kPrefill, kDecode };

  absl::StatusOr<RouteResult> Pick(Pool pool, std::span<const int32_t> prompt,
                                   const std::set<std::string>& avoid = {});
  static bool InPool(cluster::WorkerRole role, Pool pool);
  // A request routed to `worker_id`: `blocks` and one running request join its load estimate.
  void Charge(const std::string& worker_id, int64_t blocks);

  const RouterOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, Worker> workers_;  // by id: a stable order for round_robin and ties
  KvIndex index_;
  uint64_t round_robin_[2] = {0, 0};
  std::mt19937_64 rng_;
};

}  // namespace tandem::router
