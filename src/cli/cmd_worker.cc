// `tandem worker --role prefill|decode|both -c CONFIG`: one worker process of a deployment (the
// engine, the gRPC worker service and the KV transport), for clusters and for `tandem serve`'s
// launcher. Prints "tandem worker ROLE listening on HOST:PORT" once it serves, then runs until
// SIGINT/SIGTERM.
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "commands.h"
#include "flags.h"
#include "tandem/core/config.h"
#include "tandem/core/logging.h"
#include "tandem/worker/worker.h"

namespace tandem::cli {

int RunWorker(const Args& args) {
  const std::vector<FlagSpec> specs = {
      {"role", "prefill | decode | both", true, false, ""},
      {"config", "deployment YAML file", true, false, "c"},
      {"listen", "HOST:PORT of the worker's gRPC server (port 0 picks a free one; default 127.0.0.1:0)", true,
       false, ""},
      {"prefill", "decode: a prefill worker's HOST:PORT; default: discovery.workers with role prefill", true,
       true, ""},
      {"set", "override a key: --set kv_cache.block_size=32 (value in YAML syntax)", true, true, ""},
  };
  const std::string usage =
      "tandem worker --role prefill|decode|both -c FILE [--listen HOST:PORT] [--prefill HOST:PORT ...] "
      "[--set K=V ...]";
  if (WantsHelp(args)) {
    std::printf("%s", FormatHelp(usage,
                                 "Run one worker of a deployment: the engine on this machine's devices and "
                                 "the gRPC worker service; decode workers pull prompt KV from prefill "
                                 "workers over the configured KV transport.",
                                 specs)
                          .c_str());
    return 0;
  }
  auto flags = Flags::Parse(args, specs);
  if (!flags.ok()) {
    std::fprintf(stderr, "tandem worker: %s\n", std::string(flags.status().message()).c_str());
    return 2;
  }
  if (!flags->positional().empty() || !flags->Has("role") || !flags->Has("config")) {
    std::fprintf(stderr, "Usage: %s\n", usage.c_str());
    return 2;
  }
  auto role = worker::ParseRole(flags->Get("role"));
  if (!role.ok()) {
    std::fprintf(stderr, "tandem worker: %s\n", std::string(role.status().message()).c_str());
    return 2;
  }
  auto config = LoadDeploymentConfig(flags->Get("config"), flags->All("set"));
  if (!config.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  if (absl::Status s = InitLogging(config->logging.level, absl::StrCat("worker-", flags->Get("role")));
      !s.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  worker::WorkerOptions options;
  options.role = *role;
  options.listen = flags->Get("listen", "127.0.0.1:0");
  options.prefill_workers = flags->All("prefill");
  if (options.prefill_workers.empty()) {
    for (const StaticWorker& w : config->discovery.static_workers) {
      if (w.role == "prefill") options.prefill_workers.push_back(w.address);
    }
  }
  // Block the signals before any thread starts so every thread inherits the mask and sigwait sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  auto w = worker::Worker::CreateFromDeployment(*config, options);
  if (!w.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(w.status().message()).c_str());
    return 1;
  }
  std::printf("tandem worker %s listening on %s\n", worker::RoleName(*role), (*w)->address().c_str());
  std::fflush(stdout);
  int signal = 0;
  sigwait(&signals, &signal);
  TLOG_INFO("worker: signal {}, shutting down", signal);
  (*w)->Shutdown();
  return 0;
}

}  // namespace tandem::cli
