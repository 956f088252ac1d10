// `tandem serve -c FILE`: starts the deployment's worker processes (pools.prefill / pools.decode /
// pools.both replicas, as PlanWorkers assigns them) under the Supervisor, each on a free loopback
// port, and describes them as a static worker list for the frontend's discovery.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "supervisor.h"
#include "tandem/core/config.h"

namespace tandem::cli {

struct LaunchedWorkers {
  std::vector<StaticWorker> workers;  // role + 127.0.0.1:port, in PlanWorkers order
};

// Puts the resolved `config` in an anonymous in-memory file (memfd; nothing on disk to clean up,
// even if this process is killed), then starts one `tandem worker` per planned worker, each reading
// it as `-c /dev/fd/3` (the supervisor passes it to every start and restart).
// `tandem_exe` is this binary. Workers know each other (decode → prefill) through
// discovery.type=static with the launched list.
// The workers' environment is this process's without the API keys (frontend.api_keys_env: only the
// frontend checks them), with discovery.token_env set to `cluster_token` (when both are non-empty).
absl::StatusOr<LaunchedWorkers> LaunchWorkers(const DeploymentConfig& config, const std::string& tandem_exe,
                                              Supervisor& supervisor, const std::string& cluster_token);

// Waits until every worker answers GetInfo, or `timeout` passes (an error naming the late ones).
// Supervisor::Poll runs meanwhile, so a worker that crashes while loading is restarted.
absl::Status WaitForWorkers(const LaunchedWorkers& launched, Supervisor& supervisor,
                            std::chrono::seconds timeout);

}  // namespace tandem::cli
