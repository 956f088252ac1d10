#include "tandem/bench/runner.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"

namespace tandem::bench {
namespace {

using json = nlohmann::json;

StreamRequest MakeRequest(const RunOptions& options, const BenchPrompt& prompt) {
  StreamRequest r;
  r.path = options.chat ? "/v1/chat/completions" : "/v1/completions";
  r.body = RequestBody(options, prompt);
  r.api_key = options.api_key;
  r.timeout_s = options.timeout_s;
  return r;
}

// At most `limit` holders at once (0: no limit).
class Slots {
 public:
  explicit Slots(int64_t limit) : free_(limit), limited_(limit > 0) {}
  void Acquire() {
    if (!limited_) return;
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return free_ > 0; });
    --free_;
  }
  void Release() {
    if (!limited_) return;
    std::lock_guard<std::mutex> lock(mu_);
    ++free_;
    cv_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t free_;
  const bool limited_;
};

// The progress line on stderr: done / total, failures, in flight, elapsed.
class Progress {
 public:
  Progress(bool enabled, int64_t total, Clock::time_point t0) : enabled_(enabled), total_(total), t0_(t0) {
    if (enabled_) thread_ = std::thread([this] { Loop(); });
  }
  ~Progress() {
    if (!enabled_) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    Draw();
    std::fprintf(stderr, "\n");
  }
  void Started() { ++in_flight_; }
  void Finished(bool ok) {
    --in_flight_;
    ++done_;
    if (!ok) ++failed_;
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stop_; })) Draw();
  }
  void Draw() {
    constexpr int kWidth = 30;
    const int64_t done = done_.load();
    const int filled = total_ == 0 ? kWidth : static_cast<int>(kWidth * done / total_);
    const double elapsed = std::chrono::duration<double>(Clock::now() - t0_).count();
    std::fprintf(stderr, "\r[%s%s] %lld/%lld done, %lld failed, %lld in flight, %.1f s ",
                 std::string(filled, '#').c_str(), std::string(kWidth - filled, '.').c_str(),
                 static_cast<long long>(done), static_cast<long long>(total_),
                 static_cast<long long>(failed_.load()), static_cast<long long>(in_flight_.load()), elapsed);
    std::fflush(stderr);
  }

  const bool enabled_;
  const int64_t total_;
  const Clock::time_point t0_;
  std::atomic<int64_t> done_{0}, failed_{0}, in_flight_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

const char* ArrivalName(Arrival arrival) {
  switch (arrival) {
    case Arrival::kPoisson:
      return "poisson";
    case Arrival::kConcurrency:
      return "concurrency";
    case Arrival::kBurst:
      return "burst";
  }
  return "?";
}

std::string RequestBody(const RunOptions& options, const BenchPrompt& prompt) {
  json body = json::object();
  body["model"] = options.model;
  if (options.chat) {
    body["messages"] = json::array({json{{"role", "user"}, {"content", prompt.prompt}}});
  } else {
    body["prompt"] = prompt.prompt;
  }
  body["max_tokens"] = prompt.output_tokens;
  body["stream"] = true;
  body["stream_options"] = json{{"include_usage", true}};
  body["temperature"] = options.temperature;
  if (options.ignore_eos) {
    // vLLM's, SGLang's and tandem's extension; min_tokens holds other servers to the length too.
    body["ignore_eos"] = true;
    body["min_tokens"] = prompt.output_tokens;
  }
  for (const auto& [key, value] : options.extra_body.items()) body[key] = value;
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

absl::Status WarmUp(const RunOptions& options, const std::vector<BenchPrompt>& warmup) {
  const Clock::time_point t0 = Clock::now();
  for (size_t i = 0; i < warmup.size(); ++i) {
    StreamResult r = SendStreaming(options.endpoint, MakeRequest(options, warmup[i]), t0);
    if (!r.ok) {
      return absl::UnavailableError(
          absl::StrCat("warm-up request ", i + 1, " of ", warmup.size(), " to http://", options.endpoint.host,
                       ":", options.endpoint.port, options.endpoint.prefix, " failed: ", r.error));
    }
  }
  return absl::OkStatus();
}

RunRecord Run(const RunOptions& options, const std::vector<BenchPrompt>& prompts) {
  RunRecord record;
  record.requests.resize(prompts.size());
  const Clock::time_point t0 = Clock::now();
  Progress progress(options.progress, static_cast<int64_t>(prompts.size()), t0);
  auto send = [&](size_t i, double scheduled_s) {
    progress.Started();
    RequestRecord& r = record.requests[i];
    r.index = static_cast<int64_t>(i);
    r.scheduled_s = scheduled_s;
    r.prompt = prompts[i];
    r.prompt.prompt.clear();
    r.result = SendStreaming(options.endpoint, MakeRequest(options, prompts[i]), t0);
    progress.Finished(r.result.ok);
  };

  if (options.arrival == Arrival::kConcurrency) {
    std::atomic<size_t> next{0};
    std::vector<std::thread> loops;
    for (int64_t c = 0; c < options.concurrency; ++c) {
      loops.emplace_back([&] {
        for (size_t i = next++; i < prompts.size(); i = next++) {
          send(i, std::chrono::duration<double>(Clock::now() - t0).count());
        }
      });
    }
    for (std::thread& t : loops) t.join();
  } else {
    std::mt19937_64 rng(options.seed ^
                        0x9e3779b97f4a7c15ULL);  // its own stream: the workload's draws stay put
    std::exponential_distribution<double> gap(options.arrival == Arrival::kPoisson ? options.rate : 1.0);
    Slots slots(options.max_concurrency);
    // One detached thread per request (a long run must not keep thousands of finished threads
    // around until a final join); Run waits until the last one has left.
    std::mutex mu;
    std::condition_variable all_done;
    size_t pending = prompts.size();
    double at = 0;
    for (size_t i = 0; i < prompts.size(); ++i) {
      if (options.arrival == Arrival::kPoisson && i > 0) at += gap(rng);
      std::this_thread::sleep_until(
          t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(at)));
      slots.Acquire();
      std::thread([&, i, at] {
        send(i, at);
        slots.Release();
        std::lock_guard<std::mutex> lock(mu);
        if (--pending == 0) all_done.notify_all();
      }).detach();
    }
    std::unique_lock<std::mutex> lock(mu);
    all_done.wait(lock, [&] { return pending == 0; });
  }
  double first = 1e300, last = 0;
  for (const RequestRecord& r : record.requests) {
    first = std::min(first, r.result.start_s);
    last = std::max(last, r.result.end_s);
  }
  record.duration_s = record.requests.empty() ? 0 : std::max(0.0, last - first);
  return record;
}

}  // namespace tandem::bench
