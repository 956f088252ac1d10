// What `tandem serve` and `tandem frontend` share: the OpenAI HTTP server and the gRPC API over a
// Generator, run until SIGINT/SIGTERM.
#pragma once

#include <csignal>
#include <cstdint>
#include <functional>
#include <string>

#include "shutdown_signals.h"
#include "tandem/core/config.h"

namespace tandem::frontend {
class Generator;
}  // namespace tandem::frontend
namespace tandem::tokenizer {
class Tokenizer;
}  // namespace tandem::tokenizer

namespace tandem::cli {

struct FrontendRun {
  const char* command = "serve";  // prefix of the banner line: "tandem <command>: model ..."
  int http_threads = 2;
  bool grpc = true;
  int64_t max_model_len = 0;
  // Called every 200 ms on the waiting thread (the launcher reaps and restarts workers there).
  std::function<void()> on_tick;
  // Before opening its ports, wait this long at most for the generator to be ready (the workers'
  // load streams report), so /health answers 200 from the start when it can.
  int ready_timeout_s = 15;
};

// Starts the HTTP server (frontend.http) and, with run.grpc, the gRPC API (frontend.grpc) over
// `generator`, prints "tandem <command>: model M, http port P, grpc port G, api keys on|off", then
// waits for a signal of `signals`, drains (prints "tandem <command>: draining"; new requests get
// 503, the ones in flight finish, for at most shutdown.drain_timeout_s) and stops both servers. Returns the process exit code (1 if a
// server could not start). API keys come from the environment variable frontend.api_keys_env names.
int ServeFrontend(const DeploymentConfig& config, frontend::Generator* generator,
                  const tokenizer::Tokenizer* tokenizer, const FrontendRun& run, const sigset_t& signals);

}  // namespace tandem::cli
