// A worker process's core: the engine on its own thread (EngineLoop), the gRPC worker service
// (proto/tandem/v1/worker.proto), and the KV hand-off over a KvTransport. Its parts, one job each
// (src/worker/): worker_service (the gRPC calls), remote_prefiller (decode side: runs a prompt's
// remote prefill), prefill_server (prefill side: serves RemotePrefill, imports decode pools, writes
// blocks), layerwise_sender (prefill side: writes while the prompt runs), load_stream (KV events,
// load and counters to the routers); worker.cc builds and stops them. Roles:
//   prefill  serves RemotePrefill: computes a prompt (KvRole kPrefillOnly), writes its KV blocks
//            layer by layer into the caller's registered pool, returns the first token.
//   decode   serves Generate; with disaggregation (mode always, or conditional when the uncached
//            prompt is longer than max_local_prefill_tokens) it allocates the prompt's blocks
//            (KvRole kRemotePrefill), asks a prefill worker to fill them, then decodes.
//   both     aggregated: serves Generate with local prefill (and RemotePrefill too).
// Decode-first hand-off (docs/architecture.md "One request, end to end"):
//   decode: Generate → engine allocates blocks → RemotePrefill(prompt, num_cached, block ids,
//           own layout + transport address + per-layer region descriptors) ─▶ prefill
//   prefill: compatibility check → import the decode pool once per decode instance → prefill-only
//           → per layer: coalesced block runs → PostWrite (notification on the last layer) → wait
//           for every write → ReleaseTransfer → reply with the first token. With `layerwise`, the
//           writes of layer L leave from the engine's layer callback as soon as each chunk has
//           computed it (layerwise_sender.h), so they overlap the remaining layers/chunks.
//   decode: reply + notification seen → CompleteRemotePrefill → stream tokens. Any failure ends the
//           request with kError and frees its blocks on both sides.
// Both sides keep their transport progressing on a background thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tandem/cluster/discovery.h"
#include "tandem/core/config.h"
#include "tandem/engine/engine.h"
#include "tandem/engine/engine_loop.h"
#include "tandem/transfer/kv_transport.h"
#include "tandem/v1/worker.pb.h"
#include "tandem/wire/worker_report.h"

namespace tandem::worker {

// The role discovery lists (cluster::WorkerRoleName / ParseWorkerRole name and parse it).
using WorkerRole = cluster::WorkerRole;

struct WorkerOptions {
  WorkerRole role = WorkerRole::kBoth;
  std::string listen = "127.0.0.1:0";  // host:port of the gRPC server; port 0 picks a free one
  // The address the KV transport (ucx) listens on; empty: the listen host (a wildcard there: every
  // interface). `tandem worker` sets the --advertise host when it listens on a wildcard.
  std::string transfer_host;
  // The deployment's cluster token (cluster_token.h): every RPC must present it, and this worker
  // presents it to prefill workers. Empty: no check.
  std::string cluster_token;
  TransferBackend transfer = TransferBackend::kAuto;
  // transfer.layerwise: a prefill worker posts each layer's KV blocks while the prompt still runs
  // (as soon as the layer is computed); false: every layer after the prefill finished.
  bool layerwise = true;
  DisaggregationSection disaggregation;
  // Decode: prefill workers (host:port) used when a request names none, in round-robin order.
  std::vector<std::string> prefill_workers;
  // Decode: a remote prefill failing after this long (CreateFromDeployment: the config's
  // disaggregation.remote_prefill_timeout_s).
  int64_t remote_prefill_timeout_ms = 30000;
  // The layout's model field; empty: the model config's name.
  std::string model_name;
  // The KV transport; null: one made from `transfer`. CreateFromDeployment makes it first, so the
  // KV pools can live in its memory (transport_kv_memory.h).
  std::shared_ptr<transfer::KvTransport> transport;
  // CreateFromDeployment on backend: cuda: the GPU this worker runs on; -1: its pool's first device
  // (0 when the pool names none). `tandem serve` passes each worker its planned device.
  int device = -1;
};

class Worker {
 public:
  // Builds the engine for `options.role`'s pool from the deployment (engine_factory.h), then starts.
  static absl::StatusOr<std::unique_ptr<Worker>> CreateFromDeployment(const DeploymentConfig& config,
                                                                      WorkerOptions options);
  // Starts a worker over an existing engine whose executor is a BackendModelExecutor.
  static absl::StatusOr<std::unique_ptr<Worker>> Create(std::unique_ptr<engine::Engine> engine,
                                                        WorkerOptions options);
  ~Worker();  // Shutdown()
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // host:port the gRPC server listens on (the chosen port when options.listen had port 0).
  std::string address() const;
  int port() const;
  const v1::WorkerInfo& info() const;
  // Counters since start (sent to the router in every load report, wire/worker_report.h).
  wire::WorkerCounters stats() const;
  engine::SchedulerStats engine_stats() const;

  // A graceful drain's first step: new Generate and RemotePrefill calls are refused with
  // UNAVAILABLE and cluster::kWorkerDrainingMessage, and the gRPC health service reports
  // NOT_SERVING for readiness ("" and "tandem.v1.Worker"; "liveness" stays SERVING), while calls
  // in flight go on. Then wait for
  // calls_in_flight() to reach 0 (or a deadline) and call Shutdown(). Idempotent.
  void BeginDrain();
  // Generate and RemotePrefill calls running now (a decode worker's Generate lasts until its request
  // has finished, remote prefill included).
  int64_t calls_in_flight() const;
  // Ends in-flight calls (their requests end with an error and free their blocks), stops the
  // server, the hand-off threads and the engine loop. Idempotent.
  void Shutdown();
  // Blocks until Shutdown() (from another thread or a signal handler's helper).
  void Wait();
  // Not OK when the worker stopped itself (its executor broke: a tensor-parallel rank failed); it
  // sent itself SIGTERM, and `tandem worker` exits non-zero with this error after the drain.
  absl::Status fatal() const;

  class Impl;

 private:
  explicit Worker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::worker
