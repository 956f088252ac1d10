#include "tandem/frontend/remote_generator.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <ctime>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tandem/cluster/worker_client.h"
#include "tandem/frontend/api_error.h"
#include "tandem/frontend/choice_text.h"
#include "tandem/core/logging.h"
#include "tandem/core/status.h"
#include "tandem/kvcache/block_hash.h"
#include "tandem/router/load_feeds.h"
#include "tandem/router/router.h"
#include "tandem/tokenizer/detokenizer.h"
#include "tandem/tokenizer/tokenizer.h"
#include "tandem/wire/convert.h"

namespace tandem::frontend {

struct RemoteGenerator::InFlight {
  GenerateRequest request;
  StreamCallback on_event;
  cluster::CallHandle handle;
  std::atomic<bool> cancelled{false};
  // Set under mu_ once routed: the workers the request waits on ("" prefill: prefilled locally).
  std::string decode_id;
  std::string prefill_id;
  std::atomic<bool> got_token{false};  // the prefill is behind it
  std::atomic<bool> worker_down{false};  // failed by FailRequestsOnSilentWorkers ...
  const char* down_role = "";            // ... because this one ("decode", "prefill") went silent
};

namespace {

v1::WorkerGenerateRequest ToWorkerRequest(const GenerateRequest& r) {
  v1::WorkerGenerateRequest out;
  out.set_request_id(r.request_id);
  out.mutable_prompt_token_ids()->Add(r.prompt_token_ids.begin(), r.prompt_token_ids.end());
  *out.mutable_sampling() = wire::ToProto(SamplingParamsOf(r));
  return out;
}

// The client's error for a stream to a worker that broke (`stream`, not OK): no worker addresses.
absl::Status LostWorker(const absl::Status& stream) {
  return absl::Status(stream.code(), absl::StrCat("Lost the worker serving the request: ",
                                                  WithoutWorkerAddresses(std::string(stream.message()))));
}

}  // namespace

absl::StatusOr<std::unique_ptr<RemoteGenerator>> RemoteGenerator::Create(const DeploymentConfig& config,
                                                                         cluster::Discovery* discovery,
                                                                         const RemoteGeneratorOptions& options) {
  auto gen = std::unique_ptr<RemoteGenerator>(new RemoteGenerator());
  TANDEM_ASSIGN_OR_RETURN(gen->tokenizer_, tokenizer::Tokenizer::FromModelPath(config.model.path));
  gen->card_.id = options.model_name.empty() ? DefaultModelName(config.model.path) : options.model_name;
  gen->card_.created = static_cast<int64_t>(std::time(nullptr));
  gen->card_.max_model_len = options.max_model_len > 0 ? options.max_model_len : config.model.max_model_len;
  gen->card_.vocab_size = static_cast<int32_t>(gen->tokenizer_->vocab_size());
  // The workers salt their block hashes with their model's name (GetInfo's layout.model, which they
  // also register in discovery as WorkerInfo.model); the router must hash prompts alike or kv_aware
  // routing would never see a prefix hit.
  std::string worker_model;
  const std::vector<cluster::WorkerInfo> workers = discovery->Snapshot().workers;
  for (const cluster::WorkerInfo& w : workers) {
    if (!w.model.empty()) {
      worker_model = w.model;
      break;
    }
  }
  for (const cluster::WorkerInfo& w : workers) {
    if (!worker_model.empty()) break;
    cluster::WorkerClient client(w.address);
    if (auto info = client.GetInfo(std::chrono::seconds(10)); info.ok()) {
      worker_model = info->layout().model();
      break;
    }
  }
  if (worker_model.empty()) {
    return absl::UnavailableError(
        "no worker answered GetInfo: the router needs the workers' model name to hash prompts as they do");
  }
  router::RouterOptions router_options = router::RouterOptions::FromConfig(config, kvcache::HashSalt(worker_model));
  gen->router_ = std::make_unique<router::Router>(router_options);
  gen->discovery_ = discovery;
  gen->mode_ = config.disaggregation.mode;
  router::LoadFeedOptions feed_options;
  feed_options.down_after = absl::Seconds(config.router.load_report_timeout_s);
  gen->down_after_s_ = config.router.load_report_timeout_s;
  gen->decode_recomputes_prefill_ = config.disaggregation.on_prefill_failure == PrefillFailurePolicy::kRecompute;
  gen->feeds_ = std::make_unique<router::LoadFeeds>(*gen->router_, *discovery, feed_options);
  RemoteGenerator* raw = gen.get();
  gen->watchdog_ = std::thread([raw] { raw->WatchWorkers(); });
  return gen;
}

// Every 250 ms: requests waiting on a worker that went silent (its load reports stopped for
// router.load_report_timeout_s: stopped, hung) are failed instead of hanging until a deadline.
void RemoteGenerator::WatchWorkers() {
  std::unique_lock<std::mutex> lock(watch_mu_);
  while (!watch_cv_.wait_for(lock, std::chrono::milliseconds(250), [&] { return watch_stop_; })) {
    lock.unlock();
    FailRequestsOnSilentWorkers();
    lock.lock();
  }
}

void RemoteGenerator::FailRequestsOnSilentWorkers() {
  std::map<std::string, std::string> down;  // id -> address, of workers that reported and went silent
  for (const router::WorkerFeedStatus& status : feeds_->Statuses()) {
    if (status.reports > 0 && !status.live) down.emplace(status.worker.id, status.worker.address);
  }
  if (down.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, call] : in_flight_) {
    std::string silent;
    const char* role = "";
    if (down.contains(call->decode_id)) {
      silent = call->decode_id;
      role = "decode";
    } else if (!decode_recomputes_prefill_ && !call->prefill_id.empty() && !call->got_token &&
               down.contains(call->prefill_id)) {
      silent = call->prefill_id;
      role = "prefill";
    }
    if (silent.empty() || call->worker_down.load()) continue;
    call->down_role = role;  // written before worker_down is, read after it was seen set
    call->worker_down.store(true);
    TLOG_WARN("request {}: worker {} ({}) sent no load report for {} s; failing the request", id, silent,
              down[silent], down_after_s_);
    call->handle.Cancel();
  }
}

RemoteGenerator::~RemoteGenerator() { Shutdown(); }

void RemoteGenerator::Shutdown() {
  if (stopped_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> lock(watch_mu_);
    watch_stop_ = true;
  }
  watch_cv_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, call] : in_flight_) {
      call->cancelled = true;
      call->handle.Cancel();
    }
  }
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [&] { return active_threads_ == 0; });
  lock.unlock();
  feeds_.reset();
}

absl::Status RemoteGenerator::Generate(GenerateRequest request, StreamCallback on_event) {
  if (stopped_) return absl::UnavailableError("the frontend is shutting down");
  auto call = std::make_shared<InFlight>();
  call->request = std::move(request);
  call->on_event = std::move(on_event);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (in_flight_.count(call->request.request_id) > 0) {
      return absl::AlreadyExistsError(absl::StrCat("request ", call->request.request_id, " is already running"));
    }
    in_flight_[call->request.request_id] = call;
    ++active_threads_;
  }
  std::thread([this, call] { Run(call); }).detach();
  return absl::OkStatus();
}

void RemoteGenerator::Run(std::shared_ptr<InFlight> call) {
  const GenerateRequest& req = call->request;
  auto finish = [&](GenerateEvent event) {
    call->on_event(std::move(event));
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_.erase(req.request_id);
    --active_threads_;
    idle_.notify_all();
  };

  // A worker that drains refuses requests routed to it just before it left discovery (and a decode
  // worker fails a prompt whose prefill worker drains); such a request never started, so it is
  // routed again, after discovery has had a moment to drop the worker. A request whose decode worker
  // could not be reached, or whose remote prefill failed (both Unavailable: a dead or unreachable
  // worker, a broken transfer), before anything reached the client is routed again away from that
  // worker: another decode worker, or another prefill worker (never to a local prefill, which is
  // disaggregation.on_prefill_failure's choice); with none left it fails with the first error. The
  // router only notices a dead worker once its load reports stop (router.load_report_timeout_s).
  constexpr int kMaxDrainingRetries = 5;
  std::set<std::string> avoid;  // workers that failed this request
  absl::Status first_failure;   // the error reported when routing again finds no worker
  struct Choice {
    ChoiceText text;
    bool finished = false;
    int32_t tokens = 0;  // delivered to the client
  };
  std::vector<Choice> choices;
  int num_finished = 0;
  int32_t cached_tokens = 0;
  absl::Status worker_error;
  std::optional<GenerateEvent> last;  // the event that finished the last choice: sent as the final one
  absl::Status stream;
  std::optional<router::RoutePlan> plan;
  for (int attempt = 0;; ++attempt) {
    auto routed = router_->Route(req.prompt_token_ids, req.n, avoid);
    // The last attempt's prefill worker failed it: another one, or none.
    const bool needs_prefill_worker =
        plan.has_value() && plan->prefill.has_value() && avoid.contains(plan->prefill->worker_id);
    if (routed.ok() && needs_prefill_worker && !routed->prefill.has_value()) {  // would prefill locally
      router_->ReleaseRequest(routed->decode.worker_id, routed->decode.prompt_blocks);
      routed = absl::UnavailableError("no other prefill worker");
    }
    if (!routed.ok()) {
      GenerateEvent event;
      TLOG_WARN("[{}] not routed: {}", req.request_id, std::string(routed.status().message()));
      event.status = first_failure.ok() ? absl::UnavailableError("No worker can serve the request now; retry later.")
                                        : first_failure;
      event.final = true;
      finish(std::move(event));
      return;
    }
    plan = *std::move(routed);
    {
      std::lock_guard<std::mutex> lock(mu_);
      call->decode_id = plan->decode.worker_id;
      if (plan->prefill.has_value()) call->prefill_id = plan->prefill->worker_id;
    }
    v1::WorkerGenerateRequest wreq = ToWorkerRequest(req);
    // A request routed again gets its own id on the workers: a prefill worker may still be computing
    // the failed attempt's prompt under the first id (its decode worker died), and refuses a second one.
    if (attempt > 0) wreq.set_request_id(absl::StrCat(req.request_id, "-retry", attempt));
    if (plan->prefill.has_value()) {
      wreq.set_prefill_mode(v1::PREFILL_MODE_REMOTE);
      wreq.set_prefill_worker(plan->prefill->address);
    } else {
      wreq.set_prefill_mode(v1::PREFILL_MODE_LOCAL);
    }
    TLOG_DEBUG("[{}] routed to decode {} (cached blocks {}), prefill {}", req.request_id, plan->decode.worker_id,
               plan->decode.cached_blocks, plan->prefill ? plan->prefill->worker_id : std::string("local"));

    choices.clear();
    for (int32_t i = 0; i < std::max(1, req.n); ++i) choices.push_back(Choice{ChoiceText(*tokenizer_, req)});
    num_finished = 0;
    cached_tokens = 0;
    worker_error = absl::OkStatus();
    last.reset();
    bool delivered = false;  // an event reached the client: the request can't be routed again

    cluster::WorkerClient client(plan->decode.address);
    if (call->cancelled) call->handle.Cancel();
    stream = client.Generate(
        wreq,
        [&](const v1::WorkerGenerateResponse& r) {
          if (!worker_error.ok() || last.has_value()) return;
          if (r.finish_reason() == v1::WORKER_FINISH_ERROR) {
            const auto code =
                r.error_code() == 0 ? absl::StatusCode::kInternal : static_cast<absl::StatusCode>(r.error_code());
            TLOG_WARN("[{}] worker {} ({}) failed the request: {}", req.request_id, plan->decode.worker_id,
                      plan->decode.address, r.error());
            worker_error = absl::Status(code, WithoutWorkerAddresses(r.error()));
            return;
          }
          if (r.index() < 0 || r.index() >= static_cast<int>(choices.size())) return;
          if (r.token_ids_size() > 0) call->got_token = true;
          Choice& choice = choices[static_cast<size_t>(r.index())];
          if (choice.finished) return;
          ChoiceDelta delta;
          delta.index = r.index();
          for (int i = 0; i < r.token_ids_size() && !choice.text.stopped(); ++i) {
            const int32_t token = r.token_ids(i);
            delta.token_ids.push_back(token);
            ++choice.tokens;
            choice.text.Push(token);
            if (i < r.logprobs_size()) delta.logprobs.push_back(ApiLogprob(*tokenizer_, wire::FromProto(r.logprobs(i), token)));
          }
          const bool stop_string = choice.text.stopped();
          const bool last_of_choice = r.finished() || stop_string;
          delta.text = choice.text.Take(last_of_choice);
          if (last_of_choice) {
            delta.finish_reason =
                stop_string ? FinishReason::kStop : ApiFinishReason(wire::FromProto(r.finish_reason()));
            choice.finished = true;
            ++num_finished;
            cached_tokens = std::max(cached_tokens, r.num_cached_tokens());
          }
          GenerateEvent event;
          event.choices.push_back(std::move(delta));
          if (num_finished == static_cast<int>(choices.size())) {
            last = std::move(event);
            if (stop_string) call->handle.Cancel();  // the worker need not go on
          } else {
            delivered = true;
            call->on_event(std::move(event));
          }
        },
        &call->handle);

    router_->ReleaseRequest(plan->decode.worker_id, plan->decode.prompt_blocks);
    if (plan->prefill.has_value()) {
      router_->ReleaseRequest(plan->prefill->worker_id, plan->prefill->prompt_blocks - plan->prefill->cached_blocks);
    }
    const bool refused_draining =
        (!stream.ok() && stream.code() == absl::StatusCode::kUnavailable &&
         absl::StrContains(stream.message(), cluster::kWorkerDrainingMessage)) ||
        absl::StrContains(worker_error.message(), cluster::kWorkerDrainingMessage);
    const bool decode_unreachable = !stream.ok() && stream.code() == absl::StatusCode::kUnavailable;
    const bool prefill_failed = plan->prefill.has_value() && worker_error.code() == absl::StatusCode::kUnavailable;
    const bool failed_elsewhere = !refused_draining && (decode_unreachable || prefill_failed);
    if ((!refused_draining && !failed_elsewhere) || delivered || last.has_value() || call->cancelled ||
        call->worker_down || attempt == kMaxDrainingRetries) {
      break;
    }
    if (failed_elsewhere) {
      const std::string& failed = decode_unreachable ? plan->decode.worker_id : plan->prefill->worker_id;
      TLOG_WARN("[{}] {} worker {} failed the request before its first token ({}); routing it again", req.request_id,
                decode_unreachable ? "decode" : "prefill", failed,
                std::string((decode_unreachable ? stream : worker_error).message()));
      if (first_failure.ok()) first_failure = decode_unreachable ? LostWorker(stream) : worker_error;
      avoid.insert(failed);
      continue;
    }
    TLOG_INFO("[{}] worker {} is draining; routing the request again", req.request_id, plan->decode.worker_id);
    std::this_thread::sleep_for(std::chrono::milliseconds(50 << std::min(attempt, 3)));
  }
  ++(plan->prefill.has_value() ? remote_prefills_ : local_prefills_);  // the route that served it

  GenerateEvent final_event;
  if (call->worker_down) {
    final_event.status = absl::UnavailableError(absl::StrCat(
        "The ", call->down_role, " worker serving this request stopped responding (no load report for ", down_after_s_,
        " s), so the request was failed; retry it."));
  } else if (!worker_error.ok()) {
    final_event.status = worker_error;
  } else if (last.has_value()) {
    final_event = std::move(*last);
  } else if (call->cancelled) {
    for (size_t i = 0; i < choices.size(); ++i) {
      if (choices[i].finished) continue;
      ChoiceDelta delta;
      delta.index = static_cast<int32_t>(i);
      delta.finish_reason = FinishReason::kAborted;
      final_event.choices.push_back(std::move(delta));
    }
  } else {
    TLOG_WARN("[{}] stream from worker {} ({}) ended early: {}", req.request_id, plan->decode.worker_id,
              plan->decode.address, stream.ok() ? std::string("OK") : stream.ToString());
    final_event.status =
        stream.ok() ? absl::InternalError("The worker serving the request ended its stream before the request finished.")
                    : LostWorker(stream);
  }
  final_event.final = true;
  if (final_event.status.ok()) {
    final_event.usage.prompt_tokens = static_cast<int32_t>(req.prompt_token_ids.size());
    for (const Choice& c : choices) final_event.usage.completion_tokens += c.tokens;
    final_event.usage.cached_prompt_tokens = cached_tokens;
  }
  finish(std::move(final_event));
}

void RemoteGenerator::Cancel(const std::string& request_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = in_flight_.find(request_id);
  if (it == in_flight_.end()) return;
  it->second->cancelled = true;
  it->second->handle.Cancel();
}

std::vector<ModelCard> RemoteGenerator::ListModels() const { return {card_}; }

// Ready when a request could be served now: a live decode-capable worker (its load stream reports),
// and with disaggregation.mode always a live prefill worker too. Listed but silent workers (dead,
// restarting, stopped) don't count.
GeneratorHealth RemoteGenerator::Health() const {
  GeneratorHealth health;
  if (stopped_ || feeds_ == nullptr) {
    health.detail = "shutting down";
    return health;
  }
  int listed = 0;
  int decode_live = 0;
  int prefill_live = 0;
  for (const router::WorkerFeedStatus& status : feeds_->Statuses()) {
    ++listed;
    if (!status.live || (status.last.has_value() && status.last->load.draining)) continue;
    if (status.worker.role == cluster::WorkerRole::kPrefill) {
      ++prefill_live;
    } else {
      ++decode_live;
    }
  }
  const bool needs_prefill = mode_ == DisaggregationMode::kAlways;
  health.ready = decode_live > 0 && (!needs_prefill || prefill_live > 0);
  health.detail = absl::StrCat(listed, " worker(s) listed, ", decode_live, " decode-capable and ", prefill_live,
                               " prefill worker(s) live");
  if (needs_prefill && prefill_live == 0) absl::StrAppend(&health.detail, "; every prompt needs a prefill worker");
  return health;
}

namespace {

WorkerMetrics ToWorkerMetrics(const router::WorkerFeedStatus& status) {
  WorkerMetrics w;
  w.id = status.worker.id;
  w.role = cluster::WorkerRoleName(status.worker.role);
  w.address = status.worker.address;
  w.up = status.live && status.last.has_value();
  if (!w.up) return w;
  w.load = status.last->load;
  w.counters = status.last->counters;
  return w;
}

}  // namespace

GeneratorStats RemoteGenerator::Stats() const {
  GeneratorStats stats;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats.num_running = static_cast<int64_t>(in_flight_.size());
  }
  stats.routed_remote_prefills = remote_prefills_.load();
  stats.routed_local_prefills = local_prefills_.load();
  if (feeds_ == nullptr) return stats;  // shut down
  // The deployment's totals are the sums of what the live workers last reported.
  for (const router::WorkerFeedStatus& status : feeds_->Statuses()) {
    WorkerMetrics w = ToWorkerMetrics(status);
    stats.num_waiting += w.load.num_waiting;
    stats.kv_blocks_used += w.load.kv_blocks_used;
    stats.kv_blocks_total += w.load.kv_blocks_total;
    stats.transfer_bytes += static_cast<int64_t>(w.counters.kv_bytes_sent);
    stats.workers.push_back(std::move(w));
  }
  return stats;
}

}  // namespace tandem::frontend
