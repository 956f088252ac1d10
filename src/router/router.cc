#include "tandem/router/router.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tandem/kvcache/block_hash.h"

namespace tandem::router {

RouterOptions RouterOptions::FromConfig(const DeploymentConfig& config, uint64_t hash_salt) {
  RouterOptions options;
  options.policy = config.router.policy;
  options.kv_overlap_weight = config.router.kv_overlap_weight;
  options.block_size = config.kv_cache.block_size;
  options.hash_salt = hash_salt;
  options.seed = config.model.seed;
  options.disaggregation = config.disaggregation;
  options.down_after = absl::Seconds(config.router.load_report_timeout_s);
  return options;
}

Router::Router(RouterOptions options) : options_(std::move(options)), rng_(options_.seed) {}

bool Router::InPool(cluster::WorkerRole role, Pool pool) {
  switch (role) {
    case cluster::WorkerRole::kPrefill:
      return pool == Pool::kPrefill;
    case cluster::WorkerRole::kDecode:
    case cluster::WorkerRole::kBoth:
      return pool == Pool::kDecode;
  }
  return false;
}

void Router::AddWorker(const cluster::WorkerInfo& worker) {
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = workers_.try_emplace(worker.id);
  it->second.info = worker;
  if (inserted) index_.AddWorker(worker.id);
}

void Router::RemoveWorker(const std::string& worker_id) {
  std::lock_guard<std::mutex> lock(mu_);
  workers_.erase(worker_id);
  index_.RemoveWorker(worker_id);
}

void Router::ApplyKvEvents(const std::string& worker_id, std::span<const kvcache::KvEvent> events) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const kvcache::KvEvent& event : events) index_.Apply(worker_id, event);
}

void Router::UpdateLoad(const std::string& worker_id, const WorkerLoad& load) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = workers_.find(worker_id);
  if (it != workers_.end()) {
    it->second.load = load;
    it->second.last_report = absl::Now();
  }
}

void Router::ReleaseRequest(const std::string& worker_id, int64_t blocks) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  WorkerLoad& load = it->second.load;
  load.active_decode_blocks = std::max<int64_t>(0, load.active_decode_blocks - blocks);
  load.num_running = std::max<int64_t>(0, load.num_running - 1);
}

bool Router::ShouldPrefillRemotely(int64_t uncached_prompt_tokens, int64_t prefill_queue_len) const {
  const DisaggregationSection& d = options_.disaggregation;
  switch (d.mode) {
    case DisaggregationMode::kAlways:
      return true;
    case DisaggregationMode::kOff:
      return false;
    case DisaggregationMode::kConditional:
      return uncached_prompt_tokens > d.max_local_prefill_tokens && prefill_queue_len <= d.max_prefill_queue;
  }
  return false;
}

absl::StatusOr<RouteResult> Router::Pick(Pool pool, std::span<const int32_t> prompt,
                                         const std::set<std::string>& avoid) {
  const int64_t block_size = options_.block_size;
  const std::vector<kvcache::BlockHash> hashes =
      kvcache::HashFullBlocks(prompt, options_.block_size, options_.hash_salt);
  const int64_t prompt_len = static_cast<int64_t>(prompt.size());
  const int64_t prompt_blocks = (prompt_len + block_size - 1) / block_size;

  const absl::Time now = absl::Now();
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<const Worker*> candidates;
  candidates.reserve(workers_.size());
  int silent = 0;
  int draining = 0;
  int avoided = 0;
  for (const auto& [id, worker] : workers_) {
    if (!InPool(worker.info.role, pool)) continue;
    if (avoid.contains(id)) {
      ++avoided;  // it failed this request
      continue;
    }
    if (worker.load.draining) {
      ++draining;  // it would refuse the request
      continue;
    }
    if (worker.last_report != absl::InfinitePast() && now - worker.last_report > options_.down_after) {
      ++silent;  // stopped or hung: its requests would wait for nothing
      continue;
    }
    candidates.push_back(&worker);
  }
  if (candidates.empty()) {
    return absl::UnavailableError(absl::StrCat("router: no ", pool == Pool::kPrefill ? "prefill" : "decode",
                                               "-capable worker is available (", workers_.size(),
                                               " workers known, ", silent, " of them not reporting, ", draining,
                                               " draining, ", avoided, " failed this request)"));
  }

  const Worker* chosen = nullptr;
  double chosen_cost = 0;
  switch (options_.policy) {
    case RouterPolicy::kRoundRobin: {
      uint64_t& next = round_robin_[pool == Pool::kPrefill ? 0 : 1];
      chosen = candidates[next++ % candidates.size()];
      break;
    }
    case RouterPolicy::kRandom: {
      std::uniform_int_distribution<size_t> dist(0, candidates.size() - 1);
      chosen = candidates[dist(rng_)];
      break;
    }
    case RouterPolicy::kLeastLoaded: {
      for (const Worker* w : candidates) {
        if (chosen == nullptr || w->load.active_decode_blocks < chosen->load.active_decode_blocks ||
            (w->load.active_decode_blocks == chosen->load.active_decode_blocks &&
             w->load.num_running < chosen->load.num_running)) {
          chosen = w;
        }
      }
      break;
    }
    case RouterPolicy::kKvAware: {
      for (const Worker* w : candidates) {
        const int64_t matched = index_.MatchedPrefixBlocks(w->info.id, hashes);
        const double cost = options_.kv_overlap_weight * static_cast<double>(prompt_blocks - matched) +
                            static_cast<double>(w->load.active_decode_blocks);
        if (chosen == nullptr || cost < chosen_cost ||
            (cost == chosen_cost && w->load.active_decode_blocks < chosen->load.active_decode_blocks)) {
          chosen = w;
          chosen_cost = cost;
        }
      }
      break;
    }
  }

  RouteResult result;
  result.worker_id = chosen->info.id;
  result.address = chosen->info.address;
  result.prompt_blocks = prompt_blocks;
  result.cached_blocks = index_.MatchedPrefixBlocks(chosen->info.id, hashes);
  result.uncached_prompt_tokens = std::max<int64_t>(0, prompt_len - result.cached_blocks * block_size);
  result.load_blocks = chosen->load.active_decode_blocks;
  result.queue_len = chosen->load.num_waiting;
  result.cost = chosen_cost;
  return result;
}

void Router::Charge(const std::string& worker_id, int64_t blocks) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  it->second.load.active_decode_blocks += blocks;
  it->second.load.num_running += 1;
}

absl::StatusOr<RouteResult> Router::RouteDecode(std::span<const int32_t> prompt) {
  absl::StatusOr<RouteResult> result = Pick(Pool::kDecode, prompt);
  if (result.ok()) Charge(result->worker_id, result->prompt_blocks);
  return result;
}

absl::StatusOr<RouteResult> Router::RoutePrefill(std::span<const int32_t> prompt) {
  absl::StatusOr<RouteResult> result = Pick(Pool::kPrefill, prompt);
  if (result.ok()) Charge(result->worker_id, result->prompt_blocks - result->cached_blocks);
  return result;
}

absl::StatusOr<RoutePlan> Router::Route(std::span<const int32_t> prompt, int32_t n,
                                        const std::set<std::string>& avoid) {
  RoutePlan plan;
  absl::StatusOr<RouteResult> decode = Pick(Pool::kDecode, prompt, avoid);
  if (!decode.ok()) return decode.status();
  Charge(decode->worker_id, decode->prompt_blocks);
  plan.decode = *std::move(decode);
  if (options_.disaggregation.mode == DisaggregationMode::kOff || n > 1) return plan;
  absl::StatusOr<RouteResult> prefill = Pick(Pool::kPrefill, prompt, avoid);
  if (!prefill.ok()) return plan;  // no prefill worker right now: the decode worker prefills locally
  if (!ShouldPrefillRemotely(plan.decode.uncached_prompt_tokens, prefill->queue_len)) return plan;
  Charge(prefill->worker_id, prefill->prompt_blocks - prefill->cached_blocks);
  plan.prefill = *std::move(prefill);
  return plan;
}

std::vector<std::string> Router::WorkerIds() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> ids;
  for (const auto& [id, worker] : workers_) ids.push_back(id);
  return ids;
}

int64_t Router::CachedBlocks(const std::string& worker_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return index_.NumBlocks(worker_id);
}

int64_t Router::LoadBlocks(const std::string& worker_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = workers_.find(worker_id);
  return it == workers_.end() ? -1 : it->second.load.active_decode_blocks;
}

}  // namespace tandem::router
