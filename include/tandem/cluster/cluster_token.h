// The cluster token: a secret shared by a deployment's frontends and workers, presented on every
// worker RPC (metadata kClusterTokenHeader) and checked by the worker in constant time. It is read
// from the environment variable discovery.token_env names; `tandem serve` generates one for the
// workers it launches. No token (the variable unset or empty): nothing is presented or checked.
//
// The KV transfer needs no check of its own: a peer can write into a worker's KV memory only with
// the worker's transport address and region keys, which it hands out over these authenticated RPCs
// (GetInfo, RemotePrefill) only.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tandem::cluster {

inline constexpr char kClusterTokenHeader[] = "x-tandem-cluster-token";

// The token this process presents (WorkerClient's default); set once at start-up.
void SetClusterToken(std::string token);
const std::string& ClusterToken();

// The value of environment variable `env_name` ("" when unset; "" env_name: no token).
std::string ClusterTokenFromEnv(const std::string& env_name);

// 32 random bytes as 64 hex characters (getrandom).
absl::StatusOr<std::string> GenerateClusterToken();

// Whether `presented` equals `expected`, in time independent of where they differ. An empty
// `expected` accepts anything (no token configured).
bool ClusterTokenMatches(std::string_view expected, std::string_view presented);

}  // namespace tandem::cluster
