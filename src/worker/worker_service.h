// The worker's gRPC service (worker.proto's tandem.v1.Worker): every call authenticated by the
// cluster token, then handed to the part of the worker that does the work — Generate to the engine
// loop (through the decode side's RemotePrefiller when the prompt is prefilled elsewhere),
// RemotePrefill to the PrefillServer, StreamLoad to the LoadStream.
#pragma once

#include <atomic>
#include <cstdint>

#include "grpcpp/grpcpp.h"
#include "load_stream.h"
#include "prefill_server.h"
#include "remote_prefiller.h"
#include "tandem/engine/engine_loop.h"
#include "tandem/v1/worker.grpc.pb.h"
#include "tandem/worker/worker.h"
#include "worker_counters.h"

namespace tandem::worker {

// What the service calls into; every reference outlives the service.
struct WorkerParts {
  const WorkerOptions& options;
  const v1::WorkerInfo& info;
  engine::EngineLoop& loop;
  RemotePrefiller& remote_prefiller;
  PrefillServer& prefill_server;
  LoadStream& load_stream;
  SharedCounters& counters;
  const std::atomic<bool>& stopping;
  const std::atomic<bool>& draining;    // new Generate and RemotePrefill calls are refused
  std::atomic<int64_t>& calls_in_flight;  // Generate and RemotePrefill calls running
};

class WorkerService final : public v1::Worker::Service {
 public:
  explicit WorkerService(WorkerParts parts) : parts_(parts) {}

  grpc::Status GetInfo(grpc::ServerContext* context, const v1::WorkerInfoRequest* request,
                       v1::WorkerInfo* info) override;
  grpc::Status Generate(grpc::ServerContext* context, const v1::WorkerGenerateRequest* request,
                        grpc::ServerWriter<v1::WorkerGenerateResponse>* writer) override;
  grpc::Status RemotePrefill(grpc::ServerContext* context, const v1::RemotePrefillRequest* request,
                             v1::RemotePrefillResponse* response) override;
  grpc::Status StreamLoad(grpc::ServerContext* context, const v1::LoadRequest* request,
                          grpc::ServerWriter<v1::LoadReport>* writer) override;

  // The report StreamLoad sends now, without its KV events.
  wire::WorkerReport Report() const;

 private:
  // Every RPC first: the caller presents the cluster token (cluster_token.h), compared in constant
  // time; without one configured, everyone is let in.
  grpc::Status Authenticate(const grpc::ServerContext* context) const;
  // Client gone or shutdown: abort the request now, or (its remote prefill out) once the call returns.
  void Cancel(const std::string& request_id);

  WorkerParts parts_;
  std::atomic<uint64_t> next_request_{1};
};

}  // namespace tandem::worker
