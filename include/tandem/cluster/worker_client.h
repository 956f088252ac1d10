// A C++ client for one worker's gRPC service (proto/tandem/v1/worker.proto), for the router, the
// frontend and decode workers (which call prefill workers). Thread-safe: one channel, any number of
// concurrent calls. gRPC errors come back as absl::Status with the same code and message.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tandem/cluster/cluster_token.h"
#include "tandem/v1/worker.grpc.pb.h"
#include "tandem/v1/worker.pb.h"

namespace tandem::cluster {

// The message of the UNAVAILABLE status a draining worker (worker::Worker::BeginDrain) refuses new
// Generate and RemotePrefill calls with. Such a call never started, so the frontend routes its
// request again.
inline constexpr char kWorkerDrainingMessage[] = "worker is draining";

// A call in flight that another thread may cancel (e.g. on client disconnect).
class CallHandle {
 public:
  void Cancel();
  bool cancelled() const;

 private:
  friend class WorkerClient;
  void Attach(grpc::ClientContext* context);
  void Detach();

  mutable std::mutex mu_;
  grpc::ClientContext* context_ = nullptr;
  bool cancelled_ = false;
};

// HTTP/2 keep-alive on the connections to workers: a ping every kWorkerKeepAliveMs, and a connection
// whose peer does not answer one within kWorkerKeepAliveTimeoutMs fails its calls (UNAVAILABLE). A
// worker whose network is cut sends no TCP reset, so without this a stream from it (a generation, a
// remote prefill) would wait for the kernel's TCP timeouts, hours; with it, ~10 s. Workers accept
// pings this often (their gRPC server's arguments, worker.cc); the frontend's watchdog (router.load_report_timeout_s)
// usually fails such requests first, unless the worker also left discovery.
inline constexpr int kWorkerKeepAliveMs = 5000;
inline constexpr int kWorkerKeepAliveTimeoutMs = 5000;

class WorkerClient {
 public:
  // `address` is host:port. Connects lazily; a call to an unreachable worker fails fast (UNAVAILABLE).
  // Every call presents `token` (default: this process's ClusterToken(); "" presents none).
  explicit WorkerClient(std::string address, std::string token = ClusterToken());

  const std::string& address() const { return address_; }

  absl::StatusOr<v1::WorkerInfo> GetInfo(std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Streams the request's outputs to `on_response` (on the calling thread) until the last one.
  // Returns the stream's final status. `handle`, if given, can cancel the call.
  absl::Status Generate(const v1::WorkerGenerateRequest& request,
                        const std::function<void(const v1::WorkerGenerateResponse&)>& on_response,
                        CallHandle* handle = nullptr);

  absl::StatusOr<v1::RemotePrefillResponse> RemotePrefill(const v1::RemotePrefillRequest& request,
                                                          std::chrono::milliseconds timeout,
                                                          CallHandle* handle = nullptr);

  // Calls `on_report` for each report until it returns false, the handle cancels or the stream
  // ends; returns the stream's status (CANCELLED after a stop is OK).
  absl::Status StreamLoad(int interval_ms, const std::function<bool(const v1::LoadReport&)>& on_report,
                          CallHandle* handle = nullptr);

 private:
  void Prepare(grpc::ClientContext* context) const;  // adds the token

  std::string address_;
  std::string token_;
  std::unique_ptr<v1::Worker::Stub> stub_;
};

// grpc::Status -> absl::Status (same code and message) and back.
absl::Status FromGrpc(const grpc::Status& status);
grpc::Status ToGrpc(const absl::Status& status);

}  // namespace tandem::cluster
