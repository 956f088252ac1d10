#include "launcher.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <utility>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tandem/cluster/worker_client.h"
#include "tandem/core/logging.h"

namespace tandem::cli {
namespace {

// The kernel's ephemeral port range ("LOW HIGH"), where bind(port 0) and outgoing connections
// take their ports; Linux's default when it cannot be read.
std::pair<int, int> EphemeralPortRange() {
  std::ifstream f("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 32768, high = 60999;
  if (!(f >> low >> high) || low > high) return {32768, 60999};
  return {low, high};
}

// Whether 127.0.0.1:`port` can be bound now (0: any ephemeral port; its number goes to `port`).
bool BindLoopback(int& port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  socklen_t len = sizeof(addr);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  close(fd);
  if (ok) port = ntohs(addr.sin_port);
  return ok;
}

// A loopback port that is free now (the worker binds it a moment later). Taken below the
// ephemeral range: a port from bind(0) is released before the worker binds it, and in that gap
// any process binding port 0 (another server, a test's worker) could be handed the same one.
absl::StatusOr<int> FreePort() {
  static std::mt19937 rng(std::random_device{}());
  const auto [low, high] = EphemeralPortRange();
  constexpr int kFirst = 10000;
  if (low - kFirst >= 1000) {
    std::uniform_int_distribution<int> pick(kFirst, low - 1);
    for (int attempt = 0; attempt < 64; ++attempt) {
      int port = pick(rng);
      if (BindLoopback(port)) return port;
    }
  }
  int port = 0;  // the range below is too small (or full): an ephemeral port, as a last resort
  if (BindLoopback(port)) return port;
  return absl::InternalError("could not find a free loopback port for a worker");
}

// The resolved deployment in a sealed memfd (close-on-exec here; the supervisor gives it to each
// worker as descriptor 3).
absl::StatusOr<SharedFd> ConfigMemfd(const std::string& text) {
  const int fd = memfd_create("tandem-serve-config", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return absl::InternalError(absl::StrCat("memfd_create for the workers' config: ", std::strerror(errno)));
  SharedFd shared = ShareFd(fd);
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::InternalError(absl::StrCat("writing the workers' config: ", std::strerror(errno)));
    done += static_cast<size_t>(n);
  }
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    return absl::InternalError(absl::StrCat("sealing the workers' config: ", std::strerror(errno)));
  }
  return shared;
}

}  // namespace

absl::StatusOr<LaunchedWorkers> LaunchWorkers(const DeploymentConfig& config, const std::string& tandem_exe,
                                              Supervisor& supervisor, const std::string& cluster_token) {
  LaunchedWorkers launched;
  const std::vector<WorkerPlan> plan = PlanWorkers(config);
  if (plan.empty()) return absl::InvalidArgumentError("the deployment plans no worker (all pools have 0 replicas)");
  for (const WorkerPlan& w : plan) {
    auto port = FreePort();
    if (!port.ok()) return port.status();
    launched.workers.push_back({w.role, absl::StrCat("127.0.0.1:", *port)});
  }
  auto config_fd = ConfigMemfd(DescribeDeployment(config));
  if (!config_fd.ok()) return config_fd.status();
  std::string workers_yaml = "discovery.workers=[";
  for (size_t i = 0; i < launched.workers.size(); ++i) {
    absl::StrAppend(&workers_yaml, i ? ", " : "", "{role: ", launched.workers[i].role, ", address: '",
                    launched.workers[i].address, "'}");
  }
  workers_yaml += "]";
  std::vector<std::string> add;
  if (!config.discovery.token_env.empty() && !cluster_token.empty()) {
    add.push_back(absl::StrCat(config.discovery.token_env, "=", cluster_token));
  }
  const std::vector<std::string> env = ChildEnvironment({config.frontend.api_keys_env}, add);
  for (size_t i = 0; i < plan.size(); ++i) {
    ProcessSpec spec;
    spec.env = env;
    spec.name = absl::StrCat(plan[i].role, "-", plan[i].replica);
    spec.argv = {tandem_exe, "worker", "--role", plan[i].role, "-c", "/dev/fd/3",
                 "--listen", launched.workers[i].address, "--set", "discovery.type=static", "--set", workers_yaml};
    if (!plan[i].devices.empty()) {  // backend cuda: the worker's first planned GPU
      spec.argv.push_back("--device");
      spec.argv.push_back(absl::StrCat(plan[i].devices.front()));
    }
    spec.fd3 = *config_fd;
    if (absl::Status s = supervisor.Start(spec); !s.ok()) return s;
    TLOG_INFO("serve: started {} on {}", spec.name, launched.workers[i].address);
  }
  return launched;
}

absl::Status WaitForWorkers(const LaunchedWorkers& launched, Supervisor& supervisor, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<bool> ready(launched.workers.size(), false);
  size_t num_ready = 0;
  while (num_ready < ready.size()) {
    for (size_t i = 0; i < ready.size(); ++i) {
      if (ready[i]) continue;
      cluster::WorkerClient client(launched.workers[i].address);
      if (client.GetInfo(std::chrono::milliseconds(500)).ok()) {
        ready[i] = true;
        ++num_ready;
      }
    }
    supervisor.Poll();
    if (num_ready == ready.size()) break;
    if (std::chrono::steady_clock::now() > deadline) {
      std::string late;
      for (size_t i = 0; i < ready.size(); ++i) {
        if (!ready[i]) absl::StrAppend(&late, late.empty() ? "" : ", ", launched.workers[i].role, " at ",
                                       launched.workers[i].address);
      }
      return absl::DeadlineExceededError(
          absl::StrCat("workers not ready after ", timeout.count(), " s: ", late));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return absl::OkStatus();
}

}  // namespace tandem::cli
