// `tandem frontend -c FILE`: the OpenAI HTTP API and the gRPC API of a cluster deployment, routing
// to the workers that discovery lists (discovery.type etcd: workers register themselves with
// `tandem worker`; static: the addresses in discovery.workers). The router follows workers joining
// and leaving while it runs.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "flags.h"
#include "serve_frontend.h"
#include "tandem/cluster/cluster_token.h"
#include "tandem/cluster/discovery.h"
#include "tandem/core/config.h"
#include "tandem/core/logging.h"
#include "tandem/frontend/remote_generator.h"

namespace tandem::cli {
namespace {

enum class WaitResult { kWorker, kTimeout, kSignal };

// Waits until discovery lists a worker, for at most `timeout`, or until a signal of `signals` comes.
WaitResult WaitForFirstWorker(const cluster::Discovery& discovery, absl::Duration timeout,
                              const sigset_t& signals) {
  const absl::Time deadline = absl::Now() + timeout;
  cluster::WorkerSnapshot snapshot = discovery.Snapshot();
  while (snapshot.workers.empty()) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return WaitResult::kTimeout;
    const timespec poll{0, 0};
    if (sigtimedwait(&signals, nullptr, &poll) > 0) return WaitResult::kSignal;
    discovery.WaitForChange(snapshot.version, std::min(left, absl::Milliseconds(200)));
    snapshot = discovery.Snapshot();
  }
  return WaitResult::kWorker;
}

}  // namespace

int RunFrontend(const Args& args) {
  const std::vector<FlagSpec> specs = {
      {"config", "deployment YAML file (discovery.type etcd or static)", true, false, "c"},
      {"set", "override a key: --set frontend.http.port=9000 (value in YAML syntax)", true, true, ""},
      {"served-model-name", "the model id clients pass (default: the model file's name)", true, false, ""},
      {"http-threads", "HTTP I/O threads (default 2)", true, false, ""},
      {"wait-workers", "seconds to wait for the first worker to appear in discovery (default 300)", true, false,
       ""},
      {"no-grpc", "don't start the gRPC API", false, false, ""},
  };
  const std::string usage = "tandem frontend -c FILE [--set KEY=VALUE ...]";
  if (WantsHelp(args)) {
    std::printf("%s", FormatHelp(usage,
                                 "Serve the OpenAI-compatible HTTP API and the gRPC API for a cluster: the "
                                 "router sends each request to the workers discovery lists (etcd: the "
                                 "workers `tandem worker` registered; static: discovery.workers). The model "
                                 "path is read for its tokenizer only.",
                                 specs)
                          .c_str());
    return 0;
  }
  auto flags = Flags::Parse(args, specs);
  if (!flags.ok() || !flags->positional().empty() || (flags.ok() && !flags->Has("config"))) {
    std::fprintf(stderr, "tandem frontend: %s\nUsage: %s\n",
                 !flags.ok() ? std::string(flags.status().message()).c_str()
                             : (flags->Has("config") ? "unexpected argument" : "-c FILE is required"),
                 usage.c_str());
    return 2;
  }
  auto config = LoadDeploymentConfig(flags->Get("config"), flags->All("set"));
  if (!config.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  if (config->discovery.type == DiscoveryType::kEmbedded) {
    std::fprintf(stderr,
                 "error: %s: discovery.type is embedded, which exists only inside `tandem serve`; a "
                 "standalone frontend needs discovery.type etcd (workers register themselves) or static "
                 "(discovery.workers lists them)\n",
                 config->source.c_str());
    return 1;
  }
  auto http_threads = flags->GetInt("http-threads", 2);
  auto wait_workers = flags->GetInt("wait-workers", 300);
  if (!http_threads.ok() || !wait_workers.ok() || *http_threads < 1 || *wait_workers < 0) {
    std::fprintf(stderr, "error: --http-threads takes a positive integer, --wait-workers seconds >= 0\n");
    return 2;
  }
  if (absl::Status s = InitLogging(config->logging.level, "frontend"); !s.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  const sigset_t signals = BlockShutdownSignals();
  cluster::SetClusterToken(cluster::ClusterTokenFromEnv(config->discovery.token_env));  // for worker RPCs

  auto discovery = cluster::MakeDiscovery(config->discovery);
  if (!discovery.ok()) {
    std::fprintf(stderr, "error: discovery: %s\n", std::string(discovery.status().message()).c_str());
    return 1;
  }
  switch (WaitForFirstWorker(**discovery, absl::Seconds(*wait_workers), signals)) {
    case WaitResult::kWorker:
      break;
    case WaitResult::kTimeout:
      std::fprintf(stderr, "error: no worker appeared in %s discovery within %lld s\n",
                   Name(config->discovery.type), static_cast<long long>(*wait_workers));
      return 1;
    case WaitResult::kSignal:
      return 0;  // stopped before serving
  }
  frontend::RemoteGeneratorOptions remote_options;
  remote_options.model_name = flags->Get("served-model-name");
  auto remote = frontend::RemoteGenerator::Create(*config, discovery->get(), remote_options);
  if (!remote.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(remote.status().message()).c_str());
    return 1;
  }
  FrontendRun run;
  run.command = "frontend";
  run.http_threads = static_cast<int>(*http_threads);
  run.grpc = !flags->Has("no-grpc");
  run.max_model_len = (*remote)->ListModels().front().max_model_len;
  const int code = ServeFrontend(*config, remote->get(), &(*remote)->tokenizer(), run, signals);
  (*remote)->Shutdown();
  return code;
}

}  // namespace tandem::cli
