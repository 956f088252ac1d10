#include "load_stream.h"

#include <algorithm>

#include "tandem/wire/convert.h"

namespace tandem::worker {

void LoadStream::Publish(const std::vector<kvcache::KvEvent>& events) {
  if (events.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (const kvcache::KvEvent& e : events) {
    switch (e.type) {
      case kvcache::KvEventType::kBlockStored:
        cached_.insert(e.block_hashes.begin(), e.block_hashes.end());
        break;
      case kvcache::KvEventType::kBlockRemoved:
        for (kvcache::BlockHash h : e.block_hashes) cached_.erase(h);
        break;
      case kvcache::KvEventType::kAllCleared:
        cached_.clear();
        break;
    }
  }
  for (const std::shared_ptr<Subscriber>& s : subscribers_) s->events.insert(s->events.end(), events.begin(), events.end());
}

int64_t LoadStream::UncachedTokens(const std::vector<int32_t>& prompt) const {
  const std::vector<kvcache::BlockHash> hashes = kvcache::HashFullBlocks(prompt, block_size_, salt_);
  std::lock_guard<std::mutex> lock(mu_);
  int64_t hit = 0;
  for (kvcache::BlockHash h : hashes) {
    if (!cached_.contains(h)) break;
    ++hit;
  }
  return static_cast<int64_t>(prompt.size()) - hit * block_size_;
}

void LoadStream::Serve(grpc::ServerContext* context, std::chrono::milliseconds interval,
                       const std::function<wire::WorkerReport()>& snapshot,
                       grpc::ServerWriter<v1::LoadReport>* writer) {
  using Clock = std::chrono::steady_clock;
  auto subscriber = std::make_shared<Subscriber>();
  {
    // Events published after this may repeat part of the snapshot; applying them twice changes nothing.
    std::lock_guard<std::mutex> lock(mu_);
    subscriber->events.push_back(kvcache::KvEvent{.type = kvcache::KvEventType::kAllCleared});
    if (!cached_.empty()) {
      subscriber->events.push_back(kvcache::KvEvent{.type = kvcache::KvEventType::kBlockStored,
                                                    .block_hashes = {cached_.begin(), cached_.end()},
                                                    .block_size = block_size_});
    }
    subscribers_.push_back(subscriber);
  }
  // gRPC's synchronous API tells of a cancelled call only when asked: checked once per report, and
  // at least every 100 ms.
  const auto check_every = std::min(interval, std::chrono::milliseconds(100));
  auto next = Clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopped_ && !context->IsCancelled()) {
    if (Clock::now() >= next) {
      std::vector<kvcache::KvEvent> events;
      events.swap(subscriber->events);
      lock.unlock();  // the snapshot takes the engine's and the counters' locks; Publish must not wait
      wire::WorkerReport report = snapshot();
      report.events = std::move(events);
      const bool written = writer->Write(wire::ToProto(report));
      lock.lock();
      if (!written) break;
      next += interval;
    }
    stop_cv_.wait_until(lock, std::min(next, Clock::now() + check_every), [&] { return stopped_; });
  }
  subscribers_.remove(subscriber);
}

void LoadStream::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
  }
  stop_cv_.notify_all();
}

}  // namespace tandem::worker
