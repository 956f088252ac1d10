// `tandem worker --role prefill|decode|both -c CONFIG`: one worker process of a deployment (the
// engine, the gRPC worker service and the KV transport), for clusters and for `tandem serve`'s
// launcher. Prints "tandem worker ROLE listening on HOST:PORT" once it serves, then runs until
// SIGINT/SIGTERM, which drain it (shutdown.drain_timeout_s: it leaves discovery, refuses new calls,
// finishes those in flight, then exits). With discovery.type etcd it registers itself (id, role,
// advertised address, model and KV metadata) under a lease for as long as it runs, so frontends
// route to it at once.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "commands.h"
#include "flags.h"
#include "shutdown_signals.h"
#include "tandem/cluster/cluster_token.h"
#include "tandem/cluster/discovery.h"
#include "tandem/core/config.h"
#include "tandem/core/logging.h"
#include "tandem/worker/worker.h"

namespace tandem::cli {
namespace {

// The least time a draining worker keeps refusing before it exits (see RunWorker).
constexpr std::chrono::milliseconds kDrainGrace{1000};

// The address other processes use: --advertise HOST[:PORT] (HOST alone takes the listening port), else
// the listening address (0.0.0.0 becomes 127.0.0.1, which only suits one host).
absl::StatusOr<std::string> AdvertisedAddress(const std::string& advertise, const worker::Worker& w) {
  if (advertise.empty()) return w.address();
  const size_t colon = advertise.rfind(':');
  const bool has_port = colon != std::string::npos && advertise.find(']', colon) == std::string::npos;
  if (!has_port) return absl::StrCat(advertise, ":", w.port());
  if (colon == 0 || colon + 1 == advertise.size()) {
    return absl::InvalidArgumentError(absl::StrCat("--advertise ", advertise, ": expected HOST or HOST:PORT"));
  }
  return advertise;
}

// The record frontends route by: WorkerInfo.model is the model name the worker salts its block hashes
// with, so a frontend's router hashes prompts the same way without asking the worker.
cluster::WorkerInfo Registration(const std::string& id, cluster::WorkerRole role, const std::string& address,
                                 const v1::WorkerInfo& info) {
  cluster::WorkerInfo out;
  out.id = id;
  out.role = role;
  out.address = address;
  out.model = info.layout().model();
  out.metadata = {{"instance_id", info.instance_id()},
                  {"transport", info.transport()},
                  {"block_size", absl::StrCat(info.layout().block_size())},
                  {"num_kv_blocks", absl::StrCat(info.num_kv_blocks())}};
  return out;
}

std::string DefaultWorkerId(cluster::WorkerRole role) {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrCat(cluster::WorkerRoleName(role), "-", host[0] ? host : "host", "-", getpid());
}

}  // namespace

int RunWorker(const Args& args) {
  const std::vector<FlagSpec> specs = {
      {"role", "prefill | decode | both", true, false, ""},
      {"config", "deployment YAML file", true, false, "c"},
      {"listen", "HOST:PORT of the worker's gRPC server (port 0 picks a free one; default 127.0.0.1:0)", true,
       false, ""},
      {"prefill", "decode: a prefill worker's HOST:PORT; default: discovery.workers with role prefill", true,
       true, ""},
      {"advertise", "HOST[:PORT] others reach this worker at (default: the --listen address)", true, false, ""},
      {"id", "worker id in discovery (default: ROLE-HOSTNAME-PID)", true, false, ""},
      {"device", "backend cuda: the GPU ordinal (default: the pool's first device, else 0)", true, false, ""},
      {"set", "override a key: --set kv_cache.block_size=32 (value in YAML syntax)", true, true, ""},
  };
  const std::string usage =
      "tandem worker --role prefill|decode|both -c FILE [--listen HOST:PORT] [--advertise HOST[:PORT]] "
      "[--prefill HOST:PORT ...] [--set K=V ...]";
  if (WantsHelp(args)) {
    std::printf("%s", FormatHelp(usage,
                                 "Run one worker of a deployment: the engine on this machine's devices and "
                                 "the gRPC worker service; decode workers pull prompt KV from prefill "
                                 "workers over the configured KV transport. With discovery.type etcd the "
                                 "worker registers itself under a lease until it exits.",
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
  auto role = cluster::ParseWorkerRole(flags->Get("role"));
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
  // Calls to this worker must present the cluster token, and it presents it to prefill workers.
  options.cluster_token = cluster::ClusterTokenFromEnv(config->discovery.token_env);
  cluster::SetClusterToken(options.cluster_token);
  options.listen = flags->Get("listen", "127.0.0.1:0");
  auto device = flags->GetInt("device", -1);
  if (!device.ok() || *device < -1) {
    std::fprintf(stderr, "tandem worker: --device: expected a GPU ordinal >= 0, found '%s'\n",
                 flags->Get("device").c_str());
    return 2;
  }
  options.device = static_cast<int>(*device);
  options.prefill_workers = flags->All("prefill");
  if (options.prefill_workers.empty()) {
    for (const StaticWorker& w : config->discovery.static_workers) {
      if (w.role == "prefill") options.prefill_workers.push_back(w.address);
    }
  }
  // Checked before the model loads: a wildcard listen address would register as 127.0.0.1.
  const std::string listen_host = options.listen.substr(0, options.listen.rfind(':'));
  if (config->discovery.type == DiscoveryType::kEtcd && !flags->Has("advertise") &&
      (listen_host == "0.0.0.0" || listen_host == "[::]")) {
    std::fprintf(stderr,
                 "error: --listen %s is a wildcard address: with etcd discovery give --advertise HOST, the "
                 "address other hosts reach this worker at (else it would register 127.0.0.1)\n",
                 options.listen.c_str());
    return 2;
  }
  // The KV transport listens where the worker is reached: the advertised host when it listens on a
  // wildcard (else the listen host).
  const bool wildcard = listen_host == "0.0.0.0" || listen_host == "[::]";
  if (wildcard && flags->Has("advertise")) {
    const std::string advertise = flags->Get("advertise");
    const size_t colon = advertise.rfind(':');
    const bool has_port = colon != std::string::npos && advertise.find(']', colon) == std::string::npos;
    options.transfer_host = has_port ? advertise.substr(0, colon) : advertise;
  }
  const sigset_t signals = BlockShutdownSignals();
  auto w = worker::Worker::CreateFromDeployment(*config, options);
  if (!w.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(w.status().message()).c_str());
    return 1;
  }
  auto address = AdvertisedAddress(flags->Get("advertise"), **w);
  if (!address.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(address.status().message()).c_str());
    return 2;
  }
  // A cluster worker announces itself; `tandem serve`'s workers (embedded/static) are known already.
  std::unique_ptr<cluster::Discovery> discovery;
  const std::string id = flags->Get("id", DefaultWorkerId(*role));
  if (config->discovery.type == DiscoveryType::kEtcd) {
    auto made = cluster::MakeDiscovery(config->discovery);
    if (!made.ok()) {
      std::fprintf(stderr, "error: discovery: %s\n", std::string(made.status().message()).c_str());
      return 1;
    }
    discovery = std::move(*made);
    if (absl::Status s = discovery->Register(Registration(id, *role, *address, (*w)->info())); !s.ok()) {
      std::fprintf(stderr, "error: registering %s in etcd: %s\n", id.c_str(), std::string(s.message()).c_str());
      return 1;
    }
  }
  std::printf("tandem worker %s listening on %s%s%s\n", cluster::WorkerRoleName(*role), address->c_str(),
              discovery ? ", registered as " : "", discovery ? id.c_str() : "");
  std::fflush(stdout);
  int signal = 0;
  sigwait(&signals, &signal);
  // Graceful drain (shutdown.drain_timeout_s): leave routing first, so the frontends send nothing
  // new; refuse whatever still arrives (the frontend routes it again) and turn readiness off; let
  // the calls in flight finish; then stop. A second signal stops at once.
  const auto drain_start = std::chrono::steady_clock::now();
  TLOG_INFO("worker: signal {}, draining {} call(s) for up to {} s", signal, (*w)->calls_in_flight(),
            config->shutdown.drain_timeout_s);
  if (discovery) {
    if (absl::Status s = discovery->Deregister(id); !s.ok()) {
      TLOG_WARN("worker: deregister {}: {}", id, std::string(s.message()));
    } else {
      // Tests and operators read this line: the worker is out of discovery before it exits.
      std::printf("tandem worker: deregistered %s\n", id.c_str());
      std::fflush(stdout);
    }
  }
  (*w)->BeginDrain();
  const auto deadline =
      drain_start + std::chrono::milliseconds(static_cast<int64_t>(config->shutdown.drain_timeout_s * 1000));
  // Even when idle, stay (refusing) a moment: a request routed here just before the frontends saw
  // the worker leave (etcd watch) or drain (the next load report, 100 ms) is still on its way, and
  // a refusal makes the frontend route it again where a closed port would fail it.
  const auto grace = std::min(deadline, drain_start + kDrainGrace);
  bool forced = false;
  while (((*w)->calls_in_flight() > 0 || std::chrono::steady_clock::now() < grace) &&
         std::chrono::steady_clock::now() < deadline) {
    const timespec tick{0, 50 * 1000 * 1000};
    if (sigtimedwait(&signals, nullptr, &tick) > 0) {
      forced = true;
      break;
    }
  }
  const int64_t left = (*w)->calls_in_flight();
  const double drained_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - drain_start).count();
  if (left > 0) {
    TLOG_WARN("worker: {} call(s) still in flight after {:.1f} s ({}); they end with an error", left, drained_s,
              forced ? "a second signal" : "shutdown.drain_timeout_s");
  } else {
    TLOG_INFO("worker: drained in {:.1f} s", drained_s);
  }
  (*w)->Shutdown();
  if (absl::Status fatal = (*w)->fatal(); !fatal.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(fatal.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace tandem::cli
