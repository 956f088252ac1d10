// The public gRPC API (proto/tandem/v1/api.proto: tandem.v1.Inference) plus the standard
// grpc.health.v1.Health service, on gRPC's asynchronous callback API (no thread per stream).
// Requests go through the same OpenAiService validation as HTTP, so they fail the same way;
// API errors map to gRPC codes (400 INVALID_ARGUMENT, 401 UNAUTHENTICATED, 404 NOT_FOUND,
// 413/429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "tandem/frontend/openai_service.h"

namespace tandem::frontend {

struct GrpcServerOptions {
  std::string host = "0.0.0.0";
  int port = 8001;  // 0: pick a free port
  int64_t max_request_bytes = 8 << 20;
};

class GrpcServer {
 public:
  GrpcServer(OpenAiService* service, GrpcServerOptions options);
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  absl::Status Start();
  int port() const;
  // Graceful drain: the health service reports NOT_SERVING (new calls are refused by the service,
  // OpenAiService::BeginDrain); calls in flight go on. Idempotent.
  void BeginDrain();
  // Ends open calls and stops the server. Idempotent.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::frontend
