// The OpenAI-compatible HTTP/1.1 server on Boost.Beast/Asio: asynchronous (a few I/O threads serve
// any number of keep-alive and streaming connections), request size limits, SSE streaming, and
// cancellation of a request whose client disconnects. Endpoints:
//   POST /v1/chat/completions  POST /v1/completions  GET /v1/models  GET /v1/models/{id}
//   GET /health (readiness)  GET /live (liveness)  GET /metrics  POST /tokenize  POST /detokenize
// All of the Beast code lives in http_server.cc (it compiles slowly).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "tandem/frontend/openai_service.h"

namespace tandem::frontend {

struct HttpServerOptions {
  std::string host = "0.0.0.0";
  int port = 8000;  // 0: pick a free port (see HttpServer::port())
  int num_threads = 2;
  int64_t max_request_bytes = 8 << 20;  // larger bodies get 413
  int idle_timeout_s = 120;             // keep-alive connections idle this long are closed
  // Open connections; more are answered 503 (Retry-After) and closed. Start() lowers it to what
  // RLIMIT_NOFILE allows, keeping a quarter of the descriptors (at most 256) for everything else.
  int64_t max_connections = 4096;
};

class HttpServer {
 public:
  HttpServer(OpenAiService* service, HttpServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the I/O threads.
  absl::Status Start();
  // The bound port (after Start).
  int port() const;
  // Requests read and not yet answered in full (a stream counts until its last chunk is written).
  // A graceful drain waits for this to reach 0 before Stop(); while the service drains, every
  // response closes its connection (Connection: close), so clients reconnect to another replica.
  int64_t exchanges_in_progress() const;
  // Stops accepting and joins the I/O threads; open connections are dropped. Idempotent.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::frontend
