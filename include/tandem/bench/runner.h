// Sends a workload to a server and records what each request did. Arrivals:
//  - poisson: request i is sent at the i-th event of a Poisson process of `rate` per second (seeded),
//    each on its own thread, optionally capped at `max_concurrency` in flight;
//  - concurrency: `concurrency` client loops, each sending its next request when the last ended;
//  - burst: every request at t = 0 (capped by `max_concurrency` when given).
// Warm-up requests go first, one at a time, and are not recorded; the clock of the record starts
// after them. A progress line is drawn on stderr when asked (a terminal).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "tandem/bench/stream_client.h"
#include "tandem/bench/workload.h"

namespace tandem::bench {

enum class Arrival { kPoisson, kConcurrency, kBurst };
const char* ArrivalName(Arrival arrival);

struct RunOptions {
  Endpoint endpoint;
  bool chat = false;  // /v1/chat/completions (the prompt as one user message), else /v1/completions
  std::string model;
  Arrival arrival = Arrival::kPoisson;
  double rate = 1;              // poisson: requests per second
  int64_t concurrency = 1;      // concurrency: client loops
  int64_t max_concurrency = 0;  // poisson, burst: requests in flight at most (0: no cap)
  bool ignore_eos = true;       // so each request generates exactly max_tokens
  double temperature = 0;
  double timeout_s = 600;
  std::string api_key;
  uint64_t seed = 0;
  bool progress = false;
  nlohmann::json extra_body = nlohmann::json::object();  // merged into every request body
};

struct RequestRecord {
  int64_t index = 0;
  double scheduled_s = 0;  // when the arrival process wanted it sent
  BenchPrompt prompt;      // without its text in the JSON record
  StreamResult result;
};

struct RunRecord {
  std::vector<RequestRecord> requests;
  double duration_s = 0;  // from the first arrival to the last request's end
};

// The request body for one prompt (stream, usage, max_tokens, ignore_eos, ...).
std::string RequestBody(const RunOptions& options, const BenchPrompt& prompt);

// Warm-up: sends each prompt of `warmup` in turn; the first failure is an error (a wrong URL,
// model name or API key shows up here, before any figure is taken).
absl::Status WarmUp(const RunOptions& options, const std::vector<BenchPrompt>& warmup);

RunRecord Run(const RunOptions& options, const std::vector<BenchPrompt>& prompts);

}  // namespace tandem::bench
