#include "serve_frontend.h"

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tandem/core/logging.h"
#include "tandem/frontend/generator.h"
#include "tandem/frontend/grpc_server.h"
#include "tandem/frontend/http_server.h"
#include "tandem/frontend/openai_service.h"

namespace tandem::cli {
namespace {

std::vector<std::string> ApiKeysFromEnv(const std::string& env_name) {
  std::vector<std::string> keys;
  if (env_name.empty()) return keys;
  const char* value = std::getenv(env_name.c_str());
  if (value == nullptr) return keys;
  for (absl::string_view key : absl::StrSplit(value, ',')) {
    key = absl::StripAsciiWhitespace(key);
    if (!key.empty()) keys.emplace_back(key);
  }
  return keys;
}

// Each HTTP connection is a descriptor: raise the soft limit to the hard one (commonly 1024 of
// 524288), as servers do, so frontend.max_connections is what bounds connections.
void RaiseDescriptorLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  const rlim_t soft = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) == 0) {
    TLOG_INFO("frontend: descriptor limit raised from {} to {}", soft, limit.rlim_cur);
  }
}

}  // namespace

int ServeFrontend(const DeploymentConfig& config, frontend::Generator* generator,
                  const tokenizer::Tokenizer* tokenizer, const FrontendRun& run, const sigset_t& signals) {
  frontend::ServiceOptions service_options;
  service_options.model_name = generator->ListModels().front().id;
  service_options.max_model_len = run.max_model_len;
  service_options.max_queued_requests = config.frontend.max_queued_requests;
  service_options.max_queue_wait_s = config.frontend.max_queue_wait_s;
  service_options.api_keys = ApiKeysFromEnv(config.frontend.api_keys_env);
  service_options.rate_limit_requests_per_minute = config.frontend.rate_limit.requests_per_minute;
  service_options.rate_limit_tokens_per_minute = config.frontend.rate_limit.tokens_per_minute;
  frontend::OpenAiService service(generator, tokenizer, service_options);

  frontend::HttpServerOptions http_options;
  http_options.host = config.frontend.http.host;
  http_options.port = config.frontend.http.port;
  http_options.num_threads = run.http_threads;
  http_options.max_request_bytes = config.frontend.max_request_bytes;
  http_options.max_connections = config.frontend.max_connections;
  RaiseDescriptorLimit();
  for (int waited_ms = 0; !generator->Health().ready && waited_ms < run.ready_timeout_s * 1000; waited_ms += 100) {
    const timespec tick{0, 100 * 1000 * 1000};
    if (sigtimedwait(&signals, nullptr, &tick) > 0) return 0;  // stopped before serving
    if (run.on_tick) run.on_tick();
  }
  if (const frontend::GeneratorHealth health = generator->Health(); !health.ready) {
    TLOG_WARN("{}: not ready after {} s ({}); serving anyway, /health says 503 until it is", run.command,
              run.ready_timeout_s, health.detail);
  }
  frontend::HttpServer http(&service, http_options);
  if (absl::Status s = http.Start(); !s.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::unique_ptr<frontend::GrpcServer> grpc;
  if (run.grpc) {
    frontend::GrpcServerOptions grpc_options;
    grpc_options.host = config.frontend.grpc.host;
    grpc_options.port = config.frontend.grpc.port;
    grpc_options.max_request_bytes = config.frontend.max_request_bytes;
    grpc = std::make_unique<frontend::GrpcServer>(&service, grpc_options);
    if (absl::Status s = grpc->Start(); !s.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
      http.Stop();
      return 1;
    }
  }
  std::printf("tandem %s: model %s, http port %d, grpc port %d, api keys %s\n", run.command,
              service_options.model_name.c_str(), http.port(), grpc ? grpc->port() : 0,
              service_options.api_keys.empty() ? "off" : "on");
  std::fflush(stdout);

  int signal = 0;
  while (true) {
    const timespec tick{0, 200 * 1000 * 1000};
    signal = sigtimedwait(&signals, nullptr, &tick);
    if (signal > 0) break;
    if (run.on_tick) run.on_tick();
  }
  // Graceful drain (shutdown.drain_timeout_s): readiness turns 503 and new requests are refused
  // (503, Connection: close), while the requests in flight stream to their end. A second signal,
  // or the deadline, stops at once; what is still open then is cut.
  service.BeginDrain();
  if (grpc) grpc->BeginDrain();
  TLOG_INFO("{}: signal {}, draining {} request(s) for up to {} s", run.command, signal,
            service.metrics().in_flight(), config.shutdown.drain_timeout_s);
  std::printf("tandem %s: draining\n", run.command);
  std::fflush(stdout);
  const double drain_start = frontend::NowSeconds();
  bool forced = false;
  auto busy = [&] { return service.metrics().in_flight() > 0 || http.exchanges_in_progress() > 0; };
  while (busy() && frontend::NowSeconds() - drain_start < config.shutdown.drain_timeout_s) {
    const timespec tick{0, 50 * 1000 * 1000};
    if (sigtimedwait(&signals, nullptr, &tick) > 0) {
      forced = true;
      break;
    }
    if (run.on_tick) run.on_tick();
  }
  if (busy()) {
    TLOG_WARN("{}: {} request(s) still in flight after {:.1f} s ({}); they are cut", run.command,
              service.metrics().in_flight(), frontend::NowSeconds() - drain_start,
              forced ? "a second signal" : "shutdown.drain_timeout_s");
  } else {
    TLOG_INFO("{}: drained in {:.1f} s", run.command, frontend::NowSeconds() - drain_start);
  }
  http.Stop();
  if (grpc) grpc->Stop();
  return 0;
}

}  // namespace tandem::cli
