// The engine's step loop on its own thread (STYLE.md point 1). HTTP/gRPC threads only post work
// (submit, abort, remote-KV notices) into a thread-safe inbox and read results from per-request
// output streams or callbacks; the loop thread alone touches the Engine:
//
//   loop: drain inbox → Engine::Step() (schedule → execute → update) → deliver outputs
//
// It sleeps when there is nothing it can schedule and wakes on the next posted command.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tandem/engine/engine.h"
#include "tandem/kvcache/kv_events.h"

namespace tandem::engine {

// A request's outputs as a thread-safe queue: the loop pushes, a server thread pops.
class OutputStream {
 public:
  void Push(RequestOutput output);
  // Marks the end (every sequence finished); Next() returns nullopt once drained.
  void Close();
  // Blocks until an output is available or the stream is closed and drained.
  std::optional<RequestOutput> Next();
  // Non-blocking: nullopt when nothing is queued right now.
  std::optional<RequestOutput> TryNext();
  // Waits up to `timeout` for an output (nullopt: none came, or the stream is closed and drained), so
  // a caller can check for cancellation between outputs.
  std::optional<RequestOutput> NextFor(std::chrono::milliseconds timeout);
  bool closed() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<RequestOutput> queue_;
  bool closed_ = false;
};

// Called on the loop thread for each output: keep it short (hand off to your own thread).
using OutputCallback = std::function<void(RequestOutput)>;

class EngineLoop {
 public:
  explicit EngineLoop(std::unique_ptr<Engine> engine);
  ~EngineLoop();  // Stop()
  EngineLoop(const EngineLoop&) = delete;
  EngineLoop& operator=(const EngineLoop&) = delete;

  void Start();
  // Aborts every live request (each gets a final kAborted output) and joins the thread.
  void Stop();

  // Thread-safe. Validates on the caller's thread (errors return here); a duplicate live id is
  // reported through the callback as a final kError output.
  absl::Status Submit(EngineRequest request, OutputCallback on_output);
  absl::StatusOr<std::shared_ptr<OutputStream>> Submit(EngineRequest request);
  void Abort(const std::string& request_id);
  void CompleteRemotePrefill(const std::string& request_id, int32_t first_token,
                             absl::Status transfer = absl::OkStatus(),
                             std::optional<SampleResult> first_logprobs = std::nullopt);
  void ReleaseTransfer(const std::string& request_id);

  // Snapshot after the latest step.
  SchedulerStats metrics() const;
  // KV events since the last call (the router's feed), and remote-KV allocations for the hand-off.
  std::vector<kvcache::KvEvent> TakeKvEvents();
  std::vector<RemoteKvRequest> TakeRemoteKvRequests();

 private:
  using Command = std::function<void()>;
  struct Pending {
    OutputCallback callback;
    int32_t remaining = 0;  // sequences without a final output yet
  };

  void Post(Command command);
  void Run();
  void Deliver();
  void Publish();

  std::unique_ptr<Engine> engine_;
  const Engine* const validator_;  // Validate() is const and thread-safe

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Command> inbox_;
  bool stop_ = false;
  SchedulerStats metrics_;
  std::vector<kvcache::KvEvent> kv_events_;
  std::vector<RemoteKvRequest> remote_kv_;

  absl::flat_hash_map<std::string, Pending> pending_;  // loop thread only
  std::thread thread_;
};

}  // namespace tandem::engine
