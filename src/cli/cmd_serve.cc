// `tandem serve`: the OpenAI-compatible HTTP server and the gRPC API over either the deployment's
// worker pools, launched and supervised as processes (-c FILE; RemoteGenerator routes to them), or
// one engine inside this process (no -c, or --local: LocalGenerator).
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "flags.h"
#include "serve_frontend.h"
#include "tandem/core/config.h"
#include "tandem/core/logging.h"
#include "tandem/frontend/local_generator.h"
#include "tandem/tokenizer/tokenizer.h"
#ifdef TANDEM_HAVE_LAUNCHER
#include "launcher.h"
#include "tandem/cluster/cluster_token.h"
#include "tandem/cluster/discovery.h"
#include "tandem/frontend/remote_generator.h"
#endif

namespace tandem::cli {

int RunServe(const Args& args) {
  const std::vector<FlagSpec> specs = {
      {"config", "deployment YAML file (default: built-in defaults)", true, false, "c"},
      {"model", "model path (.gguf file or HF directory); same as --set model.path=PATH", true, false, ""},
      {"set", "override a key: --set frontend.http.port=9000 (value in YAML syntax)", true, true, ""},
      {"served-model-name", "the model id clients pass (default: the model file's name)", true, false, ""},
      {"http-threads", "HTTP I/O threads (default 2)", true, false, ""},
      {"threads", "CPU backend threads (default: all cores)", true, false, ""},
      {"no-grpc", "don't start the gRPC API", false, false, ""},
      {"local", "with -c: run one engine inside this process instead of the configured worker pools", false,
       false, ""},
  };
  const std::string usage = "tandem serve [-c FILE] [--model PATH] [--set KEY=VALUE ...]";
  if (WantsHelp(args)) {
    std::printf("%s",
                FormatHelp(usage,
                           "Serve the OpenAI-compatible HTTP API and the gRPC API over an engine in "
                           "this process. Without -c, the backend defaults to cpu. API keys come from the "
                           "environment variable named by frontend.api_keys_env (comma separated).",
                           specs)
                    .c_str());
    return 0;
  }
  auto flags = Flags::Parse(args, specs);
  if (!flags.ok() || !flags->positional().empty()) {
    std::fprintf(stderr, "tandem serve: %s\nUsage: %s\n",
                 flags.ok() ? "unexpected argument" : std::string(flags.status().message()).c_str(),
                 usage.c_str());
    return 2;
  }
  std::vector<std::string> overrides;
  if (!flags->Has("config")) overrides.push_back("backend=cpu");
  if (flags->Has("model")) overrides.push_back("model.path=" + flags->Get("model"));
  for (const std::string& s : flags->All("set")) overrides.push_back(s);
  auto config = flags->Has("config") ? LoadDeploymentConfig(flags->Get("config"), overrides)
                                     : ParseDeploymentConfig("{}", "<defaults>", overrides);
  if (!config.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  if (absl::Status s = InitLogging(config->logging.level, "serve"); !s.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  auto http_threads = flags->GetInt("http-threads", 2);
  auto threads = flags->GetInt("threads", 0);
  if (!http_threads.ok() || !threads.ok()) {
    std::fprintf(stderr, "error: --http-threads and --threads take integers\n");
    return 2;
  }

  const sigset_t signals = BlockShutdownSignals();

  // Either the deployment's worker pools as processes (with -c), or one engine in this process.
  frontend::Generator* generator = nullptr;
  const tokenizer::Tokenizer* tokenizer = nullptr;
  int64_t max_model_len = 0;
  std::unique_ptr<frontend::LocalGenerator> local;
#ifdef TANDEM_HAVE_LAUNCHER
  const bool launch = flags->Has("config") && !flags->Has("local");
  Supervisor supervisor([](const std::string& name, int status, int restarts) {
    TLOG_ERROR("serve: {} {} (restart {} follows)", name, DescribeWaitStatus(status), restarts + 1);
  });
  std::unique_ptr<cluster::Discovery> discovery;
  std::unique_ptr<frontend::RemoteGenerator> remote;
  if (launch) {
    // The workers take calls only with the cluster token: the operator's (discovery.token_env), else
    // a fresh one that only this process and its workers know.
    std::string token = cluster::ClusterTokenFromEnv(config->discovery.token_env);
    if (token.empty() && !config->discovery.token_env.empty()) {
      auto generated = cluster::GenerateClusterToken();
      if (!generated.ok()) {
        std::fprintf(stderr, "error: %s\n", std::string(generated.status().message()).c_str());
        return 1;
      }
      token = *std::move(generated);
    }
    cluster::SetClusterToken(token);
    auto launched = LaunchWorkers(*config, "/proc/self/exe", supervisor, token);
    if (!launched.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(launched.status().message()).c_str());
      return 1;
    }
    std::printf("tandem serve: %zu worker(s) starting (", launched->workers.size());
    for (size_t i = 0; i < launched->workers.size(); ++i) {
      std::printf("%s%s %s", i ? ", " : "", launched->workers[i].role.c_str(), launched->workers[i].address.c_str());
    }
    std::printf(")\n");
    std::fflush(stdout);
    if (absl::Status s = WaitForWorkers(*launched, supervisor, std::chrono::seconds(300)); !s.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    DiscoverySection section = config->discovery;
    section.type = DiscoveryType::kStatic;
    section.static_workers = launched->workers;
    auto made = cluster::MakeStaticDiscovery(section);
    if (!made.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(made.status().message()).c_str());
      return 1;
    }
    discovery = std::move(*made);
    frontend::RemoteGeneratorOptions remote_options;
    remote_options.model_name = flags->Get("served-model-name");
    auto created = frontend::RemoteGenerator::Create(*config, discovery.get(), remote_options);
    if (!created.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(created.status().message()).c_str());
      return 1;
    }
    remote = std::move(*created);
    generator = remote.get();
    tokenizer = &remote->tokenizer();
    max_model_len = remote->ListModels().front().max_model_len;
  }
#endif
  if (generator == nullptr) {
    frontend::LocalGeneratorOptions gen_options;
    gen_options.model_name = flags->Get("served-model-name");
    gen_options.num_threads = static_cast<int>(*threads);
    auto created = frontend::LocalGenerator::Create(*config, gen_options);
    if (!created.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(created.status().message()).c_str());
      return 1;
    }
    local = std::move(*created);
    generator = local.get();
    tokenizer = &local->tokenizer();
    max_model_len = local->max_model_len();
  }
  FrontendRun run;
  run.command = "serve";
  run.http_threads = static_cast<int>(*http_threads);
  run.grpc = !flags->Has("no-grpc");
  run.max_model_len = max_model_len;
#ifdef TANDEM_HAVE_LAUNCHER
  if (launch) run.on_tick = [&supervisor] { supervisor.Poll(); };  // reap and restart crashed workers
#endif
  const int code = ServeFrontend(*config, generator, tokenizer, run, signals);
#ifdef TANDEM_HAVE_LAUNCHER
  if (remote) remote->Shutdown();
  supervisor.Shutdown();
#endif
  if (local) local->Shutdown();
  return code;
}

}  // namespace tandem::cli
