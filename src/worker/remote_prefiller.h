// The decode side of disaggregation: for each request the engine holds blocks for (KvRole
// kRemotePrefill), a call to a prefill worker's RemotePrefill that fills them, then the engine told
// (CompleteRemotePrefill) with the first token, or with the error that ends the request.
//
//   Generate → Choose (local or which prefill worker) → Add → engine allocates → Run, on its own
//   thread: PrefillClient (layout checked once per address) → RemotePrefill(prompt, blocks, our
//   layout and pool) → the reply, and the completion notice the transport delivers after the data
//   → CompleteRemotePrefill. A cancel while the call is out waits for it (a prefill worker may still
//   be writing into the blocks) and aborts after.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tandem/cluster/worker_client.h"
#include "tandem/engine/engine.h"
#include "tandem/engine/engine_loop.h"
#include "tandem/v1/worker.pb.h"
#include "tandem/worker/worker.h"
#include "worker_counters.h"

namespace tandem::worker {

// The transport notification a prefill worker sends after a request's last KV write.
std::string KvDoneNotification(const std::string& request_id);

class RemotePrefiller {
 public:
  // `info`: this worker's description, sent as the destination of every call (complete before the
  // first Run). `loop` and `counters` outlive this.
  RemotePrefiller(const WorkerOptions& options, const v1::WorkerInfo& info, engine::EngineLoop& loop,
                  SharedCounters& counters);
  ~RemotePrefiller();  // Stop()

  // "" for a local prefill, else the prefill worker's address. `uncached_tokens` gives the prompt
  // tokens this worker's prefix cache does not hold; called only for conditional disaggregation.
  absl::StatusOr<std::string> Choose(const v1::WorkerGenerateRequest& request,
                                     const std::function<int64_t()>& uncached_tokens);

  // Registers request `id` for a remote prefill at `prefill_worker` before it is submitted.
  // AlreadyExists for a live id.
  absl::Status Add(const std::string& id, const std::string& prefill_worker,
                   const v1::WorkerSamplingParams& sampling);
  // Forgets `id` (its Generate call ended).
  void Erase(const std::string& id);
  // The client went away or the worker stops: true when the caller may abort the request now; false
  // while its RemotePrefill call is out (Run aborts it once the call returns).
  bool Cancel(const std::string& id);

  // Starts the remote prefill of a request the engine allocated blocks for, on its own thread.
  void Run(engine::RemoteKvRequest request);

  // Transport notifications (the progress thread's): wake the calls waiting for them.
  void OnNotifications(std::vector<std::string> notes);

  // Wakes every waiting call and waits for every Run thread to end.
  void Stop();

 private:
  struct Pending {
    std::string prefill_worker;
    v1::WorkerSamplingParams sampling;
    bool in_flight = false;  // the RemotePrefill call is out: blocks may still be written
    bool cancelled = false;
  };

  void Prefill(const engine::RemoteKvRequest& request);
  absl::StatusOr<v1::RemotePrefillResponse> Call(const engine::RemoteKvRequest& request, const Pending& pending);
  bool TakeNotification(const std::string& note, std::chrono::milliseconds timeout);
  absl::StatusOr<std::shared_ptr<cluster::WorkerClient>> PrefillClient(const std::string& address);
  void DropPrefillClient(const std::string& address);

  const WorkerOptions& options_;
  const v1::WorkerInfo& info_;
  engine::EngineLoop& loop_;
  SharedCounters& counters_;
  std::atomic<uint64_t> next_prefill_{0};

  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Pending>> pending_;
  std::map<std::string, std::shared_ptr<cluster::WorkerClient>> clients_;  // by address, layout checked
  int running_ = 0;  // Run threads not yet ended
  std::condition_variable idle_cv_;

  std::mutex notes_mu_;
  std::condition_variable notes_cv_;
  std::set<std::string> notes_;
  bool stopping_ = false;  // under notes_mu_
};

}  // namespace tandem::worker
