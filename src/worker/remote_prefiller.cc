#include "remote_prefiller.h"

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tandem/core/logging.h"
#include "tandem/core/status.h"
#include "tandem/wire/convert.h"

namespace tandem::worker {
namespace {

using Clock = std::chrono::steady_clock;
// The completion notice follows the data; the reply says the writes completed on the prefill side.
constexpr auto kNotificationTimeout = std::chrono::seconds(30);

}  // namespace

std::string KvDoneNotification(const std::string& request_id) { return absl::StrCat("kv-done:", request_id); }

RemotePrefiller::RemotePrefiller(const WorkerOptions& options, const v1::WorkerInfo& info, engine::EngineLoop& loop,
                                 SharedCounters& counters)
    : options_(options), info_(info), loop_(loop), counters_(counters) {}

RemotePrefiller::~RemotePrefiller() { Stop(); }

absl::StatusOr<std::string> RemotePrefiller::Choose(const v1::WorkerGenerateRequest& request,
                                                    const std::function<int64_t()>& uncached_tokens) {
  bool remote = false;
  const bool explicit_remote = request.prefill_mode() == v1::PREFILL_MODE_REMOTE;
  switch (request.prefill_mode()) {
    case v1::PREFILL_MODE_LOCAL:
      return std::string();
    case v1::PREFILL_MODE_REMOTE:
      remote = true;
      break;
    case v1::PREFILL_MODE_DEFAULT:
      if (options_.role != WorkerRole::kDecode) return std::string();
      switch (options_.disaggregation.mode) {
        case DisaggregationMode::kOff:
          return std::string();
        case DisaggregationMode::kAlways:
          remote = true;
          break;
        case DisaggregationMode::kConditional:
          remote = uncached_tokens() > options_.disaggregation.max_local_prefill_tokens;
          break;
      }
      break;
    case v1::PrefillMode_INT_MIN_SENTINEL_DO_NOT_USE_:
    case v1::PrefillMode_INT_MAX_SENTINEL_DO_NOT_USE_:
      break;
  }
  if (!remote) return std::string();
  // A remote prefill hands back one sequence; n > 1 is prefilled here, once, and forked here
  // (sharing the prompt's blocks), as an aggregated worker does.
  if (request.sampling().n() > 1) {
    if (explicit_remote) {
      return absl::InvalidArgumentError(absl::StrCat("prefill_mode REMOTE takes n = 1, found n = ",
                                                     request.sampling().n(),
                                                     "; prefill a request with n > 1 locally (PREFILL_MODE_LOCAL)"));
    }
    return std::string();
  }
  if (!request.prefill_worker().empty()) return request.prefill_worker();
  if (options_.prefill_workers.empty()) {
    if (explicit_remote) {
      return absl::FailedPreconditionError(
          "prefill_mode REMOTE: the request names no prefill_worker and this worker has none configured");
    }
    return std::string();  // nowhere to send it: prefill here
  }
  const size_t i = next_prefill_.fetch_add(1) % options_.prefill_workers.size();
  return options_.prefill_workers[i];
}

absl::Status RemotePrefiller::Add(const std::string& id, const std::string& prefill_worker,
                                  const v1::WorkerSamplingParams& sampling) {
  auto pending = std::make_shared<Pending>();
  pending->prefill_worker = prefill_worker;
  pending->sampling = sampling;
  std::lock_guard<std::mutex> lock(mu_);
  if (!pending_.emplace(id, std::move(pending)).second) {
    return absl::AlreadyExistsError(absl::StrCat("request ", id, " is already live"));
  }
  return absl::OkStatus();
}

void RemotePrefiller::Erase(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  pending_.erase(id);
}

bool RemotePrefiller::Cancel(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pending_.find(id);
  if (it == pending_.end()) return true;
  it->second->cancelled = true;
  return !it->second->in_flight;
}

void RemotePrefiller::Run(engine::RemoteKvRequest request) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++running_;
  }
  // One thread per call in flight: WorkerClient's RemotePrefill blocks until the prefill worker
  // replies. Stop() waits for every one of them.
  std::thread([this, request = std::move(request)] {
    Prefill(request);
    std::lock_guard<std::mutex> lock(mu_);
    --running_;
    idle_cv_.notify_all();
  }).detach();
}

void RemotePrefiller::OnNotifications(std::vector<std::string> notes) {
  if (notes.empty()) return;
  {
    std::lock_guard<std::mutex> lock(notes_mu_);
    for (std::string& n : notes) {
      if (!n.empty()) notes_.insert(std::move(n));
    }
  }
  notes_cv_.notify_all();
}

void RemotePrefiller::Stop() {
  {
    std::lock_guard<std::mutex> lock(notes_mu_);
    stopping_ = true;
  }
  notes_cv_.notify_all();
  std::unique_lock<std::mutex> lock(mu_);
  idle_cv_.wait(lock, [&] { return running_ == 0; });
}

void RemotePrefiller::Prefill(const engine::RemoteKvRequest& request) {
  std::shared_ptr<Pending> pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(request.request_id);
    if (it == pending_.end() || it->second->cancelled) return;  // already aborted
    pending = it->second;
    pending->in_flight = true;
  }
  const auto start = Clock::now();
  absl::StatusOr<v1::RemotePrefillResponse> first = Call(request, *pending);
  bool cancelled = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending->in_flight = false;
    cancelled = pending->cancelled;
  }
  if (cancelled) {
    loop_.Abort(request.request_id);
    return;
  }
  if (!first.ok()) {
    counters_.Update([](wire::WorkerCounters& c) { ++c.remote_prefill_failures; });
    TLOG_WARN("request {}: remote prefill failed: {}", request.request_id, std::string(first.status().message()));
    loop_.CompleteRemotePrefill(request.request_id, 0, first.status());
    return;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  counters_.Update([&](wire::WorkerCounters& c) {
    c.kv_blocks_received += first->num_blocks_written();
    c.kv_bytes_received += first->bytes_written();
    c.remote_prefill_seconds.Observe(seconds);
  });
  TLOG_DEBUG("request {}: remote prefill of {} tokens done in {:.1f} ms", request.request_id,
             request.prompt_token_ids.size(), seconds * 1000.0);
  std::optional<engine::SampleResult> first_logprobs;
  if (first->has_first_logprobs()) first_logprobs = wire::FromProto(first->first_logprobs(), first->first_token());
  loop_.CompleteRemotePrefill(request.request_id, first->first_token(), absl::OkStatus(), first_logprobs);
}

absl::StatusOr<v1::RemotePrefillResponse> RemotePrefiller::Call(const engine::RemoteKvRequest& request,
                                                                const Pending& pending) {
  TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<cluster::WorkerClient> client, PrefillClient(pending.prefill_worker));
  v1::RemotePrefillRequest call;
  call.set_request_id(request.request_id);
  for (int32_t t : request.prompt_token_ids) call.add_prompt_token_ids(t);
  call.set_num_cached_tokens(request.num_cached_tokens);
  for (kvcache::BlockId b : request.block_ids) call.add_dst_block_ids(static_cast<int32_t>(b));
  *call.mutable_sampling() = pending.sampling;
  *call.mutable_destination() = info_;
  const std::string note = KvDoneNotification(request.request_id);
  absl::StatusOr<v1::RemotePrefillResponse> response =
      client->RemotePrefill(call, std::chrono::milliseconds(options_.remote_prefill_timeout_ms));
  if (!response.ok()) {
    DropPrefillClient(pending.prefill_worker);
    TakeNotification(note, std::chrono::milliseconds(0));
    return response.status();
  }
  // The reply follows the writes' completion on the prefill side; the notification, delivered
  // after the data, confirms it here.
  if (!TakeNotification(note, kNotificationTimeout)) {
    return absl::DeadlineExceededError(absl::StrCat("prefill worker ", pending.prefill_worker,
                                                    " reported the KV written but no completion notice arrived"));
  }
  return *std::move(response);
}

bool RemotePrefiller::TakeNotification(const std::string& note, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(notes_mu_);
  if (!notes_cv_.wait_for(lock, timeout, [&] { return notes_.contains(note) || stopping_; })) return false;
  return notes_.erase(note) > 0;
}

absl::StatusOr<std::shared_ptr<cluster::WorkerClient>> RemotePrefiller::PrefillClient(const std::string& address) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = clients_.find(address);
    if (it != clients_.end()) return it->second;
  }
  auto client = std::make_shared<cluster::WorkerClient>(address, options_.cluster_token);
  absl::StatusOr<v1::WorkerInfo> info = client->GetInfo(std::chrono::seconds(5));
  if (!info.ok()) {
    return absl::Status(info.status().code(),
                        absl::StrCat("prefill worker ", address, " unreachable: ", info.status().message()));
  }
  if (info->role() == "decode") {
    return absl::FailedPreconditionError(
        absl::StrCat("worker ", address, " has role decode; remote prefill needs role prefill or both"));
  }
  TANDEM_RETURN_IF_ERROR(wire::CheckPeerCompatible(info_, *info, address));
  std::lock_guard<std::mutex> lock(mu_);
  clients_[address] = client;
  return client;
}

void RemotePrefiller::DropPrefillClient(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  clients_.erase(address);
}

}  // namespace tandem::worker
