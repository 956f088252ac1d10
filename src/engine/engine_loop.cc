#include "tandem/engine/engine_loop.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "tandem/core/logging.h"

namespace tandem::engine {

void OutputStream::Push(RequestOutput output) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(output));
  }
  cv_.notify_all();
}

void OutputStream::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

std::optional<RequestOutput> OutputStream::Next() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !queue_.empty() || closed_; });
  if (queue_.empty()) return std::nullopt;
  RequestOutput out = std::move(queue_.front());
  queue_.pop_front();
  return out;
}

std::optional<RequestOutput> OutputStream::NextFor(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return !queue_.empty() || closed_; }) || queue_.empty()) return std::nullopt;
  RequestOutput out = std::move(queue_.front());
  queue_.pop_front();
  return out;
}

std::optional<RequestOutput> OutputStream::TryNext() {
  std::lock_guard<std::mutex> lock(mu_);
  if (queue_.empty()) return std::nullopt;
  RequestOutput out = std::move(queue_.front());
  queue_.pop_front();
  return out;
}

bool OutputStream::closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

EngineLoop::EngineLoop(std::unique_ptr<Engine> engine)
    : engine_(std::move(engine)), validator_(engine_.get()) {}

EngineLoop::~EngineLoop() { Stop(); }

void EngineLoop::Start() {
  if (thread_.joinable()) return;
  Publish();  // metrics() shows the pool (kv_blocks_total) before the first step
  thread_ = std::thread([this] { Run(); });
}

void EngineLoop::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void EngineLoop::Post(Command command) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    inbox_.push_back(std::move(command));
  }
  cv_.notify_all();
}

absl::Status EngineLoop::Submit(EngineRequest request, OutputCallback on_output) {
  if (absl::Status s = validator_->Validate(request); !s.ok()) return s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return absl::UnavailableError("engine loop is stopped");
  }
  auto shared = std::make_shared<EngineRequest>(std::move(request));
  Post([this, shared, cb = std::move(on_output)]() mutable {
    const std::string id = shared->request_id;
    const int32_t n = shared->params.n;
    if (pending_.contains(id)) {
      RequestOutput o;
      o.request_id = id;
      o.finished = true;
      o.finish_reason = FinishReason::kError;
      o.status = absl::AlreadyExistsError(absl::StrCat("request ", id, " is already live"));
      o.request_finished = true;
      cb(std::move(o));
      return;
    }
    const absl::Status added = engine_->AddRequest(std::move(*shared));
    if (!added.ok()) {
      RequestOutput o;
      o.request_id = id;
      o.finished = true;
      o.finish_reason = FinishReason::kError;
      o.status = added;
      o.request_finished = true;
      cb(std::move(o));
      return;
    }
    pending_.emplace(id, Pending{std::move(cb), n});
  });
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<OutputStream>> EngineLoop::Submit(EngineRequest request) {
  auto stream = std::make_shared<OutputStream>();
  const int32_t n = request.params.n;
  auto remaining = std::make_shared<int32_t>(n);
  absl::Status s = Submit(std::move(request), [stream, remaining](RequestOutput o) {
    const bool last =
        o.finished && (--*remaining == 0 || o.status.code() == absl::StatusCode::kAlreadyExists);
    stream->Push(std::move(o));
    if (last) stream->Close();
  });
  if (!s.ok()) return s;
  return stream;
}

void EngineLoop::Abort(const std::string& request_id) {
  Post([this, request_id] { engine_->AbortRequest(request_id); });
}

void EngineLoop::CompleteRemotePrefill(const std::string& request_id, int32_t first_token,
                                       absl::Status transfer, std::optional<SampleResult> first_logprobs) {
  Post([this, request_id, first_token, transfer, first_logprobs] {
    const absl::Status s = engine_->CompleteRemotePrefill(request_id, first_token, transfer, first_logprobs);
    if (!s.ok()) {
      TLOG_WARN("request {}: remote prefill completion rejected: {}", request_id, std::string(s.message()));
      engine_->AbortRequest(request_id, FinishReason::kError, s);
    }
  });
}

void EngineLoop::ReleaseTransfer(const std::string& request_id) {
  Post([this, request_id] {
    const absl::Status s = engine_->ReleaseTransfer(request_id);
    if (!s.ok()) TLOG_WARN("request {}: transfer release rejected: {}", request_id, std::string(s.message()));
  });
}

SchedulerStats EngineLoop::metrics() const {
  std::lock_guard<std::mutex> lock(mu_);
  return metrics_;
}

std::vector<kvcache::KvEvent> EngineLoop::TakeKvEvents() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<kvcache::KvEvent> out = std::move(kv_events_);
  kv_events_.clear();
  return out;
}

std::vector<RemoteKvRequest> EngineLoop::TakeRemoteKvRequests() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<RemoteKvRequest> out = std::move(remote_kv_);
  remote_kv_.clear();
  return out;
}

void EngineLoop::Deliver() {
  for (RequestOutput& o : engine_->TakeOutputs()) {
    auto it = pending_.find(o.request_id);
    if (it == pending_.end()) continue;
    const bool last = o.finished && --it->second.remaining == 0;
    o.request_finished = last;
    it->second.callback(std::move(o));
    if (last) pending_.erase(it);
  }
}

void EngineLoop::Publish() {
  SchedulerStats stats = engine_->metrics();
  std::vector<kvcache::KvEvent> events = engine_->TakeKvEvents();
  std::vector<RemoteKvRequest> remote = engine_->TakeRemoteKvRequests();
  std::lock_guard<std::mutex> lock(mu_);
  metrics_ = stats;
  for (auto& e : events) kv_events_.push_back(std::move(e));
  for (auto& r : remote) remote_kv_.push_back(std::move(r));
}

void EngineLoop::Run() {
  bool idle = false;  // the last step scheduled nothing: only a command can change that
  while (true) {
    std::deque<Command> commands;
    bool stopping = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !inbox_.empty() || (engine_->has_work() && !idle); });
      commands.swap(inbox_);
      stopping = stop_;
    }
    for (Command& c : commands) c();
    if (!commands.empty()) idle = false;
    if (stopping) {
      std::vector<std::string> live;
      for (const auto& [id, p] : pending_) live.push_back(id);
      for (const std::string& id : live) {
        engine_->AbortRequest(id, FinishReason::kAborted, absl::CancelledError("engine loop stopped"));
      }
      Deliver();
      Publish();
      return;
    }
    if (engine_->has_work() && !idle) {
      absl::StatusOr<bool> stepped = engine_->Step();
      idle = stepped.ok() && !*stepped;
    }
    Deliver();
    Publish();
  }
}

}  // namespace tandem::engine
