// The deployment file: typed structs with documented defaults (docs/architecture.md "The deployment file").
// Rule: a missing value takes the default below; a present but invalid value is an error naming the
// file, line and key path. Unknown keys are errors (they are almost always typos).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tandem {

enum class LoadFormat { kAuto, kSafetensors, kGguf, kDummy };
enum class ComputeDType { kBFloat16, kFloat16, kFloat32 };
enum class Quantization { kNone, kNvfp4, kFp8 };
enum class BackendKind { kCuda, kCpu };
enum class RouterPolicy { kKvAware, kLeastLoaded, kRoundRobin, kRandom };
enum class DisaggregationMode { kAlways, kConditional, kOff };
enum class PrefillFailurePolicy { kFail, kRecompute };
enum class TransferBackend { kAuto, kUcx, kNccl, kLocal };
enum class DiscoveryType { kEmbedded, kStatic, kEtcd };

struct ModelSection {
  std::string path;                         // HF directory, .gguf file or ModelOpt dir; "" only with dummy
  LoadFormat load_format = LoadFormat::kAuto;
  std::string dummy_config;                 // dummy weights: config.json path or preset name
  ComputeDType dtype = ComputeDType::kBFloat16;  // GPU compute dtype; the CPU computes in fp32
  // nvfp4: linear weights quantized at load (lm_head excluded); an NVFP4 checkpoint loads as NVFP4
  // whatever this says. fp8 weights: not implemented (an error at load).
  Quantization quantization = Quantization::kNone;
  int64_t max_model_len = 8192;
  uint64_t seed = 0;                        // dummy weights and default sampling seed
};

struct Endpoint {
  std::string host;
  int port = 0;
};

struct FrontendSection {
  Endpoint http{"0.0.0.0", 8000};
  Endpoint grpc{"0.0.0.0", 8001};
  std::string api_keys_env = "TANDEM_API_KEYS";  // comma-separated keys; unset or empty = no auth
  int64_t max_request_bytes = 8 << 20;
  int64_t max_queued_requests = 4096;
  // Open HTTP connections; one more is answered 503 and closed. Lowered to what the descriptor
  // limit allows (keeping some for workers and files) when that is less.
  int64_t max_connections = 4096;
  // Admission control: a request that would wait longer than this to start (its first token) is
  // refused with 429 and Retry-After; 0 turns it off. See frontend/admission.h for the estimate.
  double max_queue_wait_s = 30;
  // Per-API-key rate limits (frontend/rate_limiter.h); 0 = off. Over a limit: 429 with Retry-After.
  struct RateLimit {
    double requests_per_minute = 0;
    double tokens_per_minute = 0;  // prompt tokens + max_tokens x n, charged when a request starts
  } rate_limit;
};

struct RouterSection {
  RouterPolicy policy = RouterPolicy::kKvAware;
  double kv_overlap_weight = 1.0;
  // A worker whose load stream sends no report for this long (stopped, hung) is down: not routed
  // to, not counted by /health, and the frontend fails its requests in flight.
  double load_report_timeout_s = 3;
};

struct DisaggregationSection {
  DisaggregationMode mode = DisaggregationMode::kConditional;
  int64_t max_local_prefill_tokens = 512;
  int64_t max_prefill_queue = 32;  // conditional: prefill locally when the prefill queue is longer
  // Decode: how long a remote prefill (the prompt computed and its KV written) may take before the
  // request fails.
  double remote_prefill_timeout_s = 30;
  // Prefill: how long the KV writes of one request may take to land on the decode worker before
  // the prefill fails (its blocks are freed and the endpoint closed).
  double kv_transfer_timeout_s = 60;
  // A remote prefill that fails (its prefill worker died, hung past the timeout, or the KV transfer
  // failed): fail ends the request with an error; recompute prefills it on the decode worker instead
  // (its prompt blocks freed and taken again, as a preemption by recompute does), so the client sees
  // only the delay.
  PrefillFailurePolicy on_prefill_failure = PrefillFailurePolicy::kFail;
};

struct PoolSection {
  int replicas = 1;
  int tensor_parallel = 1;
  std::vector<int> devices;  // GPU ordinals, replicas * tensor_parallel of them; empty = assign in order
  int64_t max_num_batched_tokens = 8192;
  int64_t max_num_seqs = 256;
};

struct PoolsSection {
  PoolSection prefill;
  PoolSection decode;
  PoolSection both{0, 1, {}, 8192, 256};  // aggregated workers (role both); 0 unless disaggregation is off
};

struct KvCacheSection {
  int block_size = 16;
  double gpu_memory_utilization = 0.90;
  int64_t cpu_memory_mib = 1024;  // KV pool size per worker on the CPU backend
  bool prefix_caching = true;
};

struct EngineSection {
  // Every step's kernels split their work the same way whatever else is in the batch (one GEMM
  // algorithm per shape, one attention kernel, no split-K or split-KV chosen by size), so a sequence's
  // logits are bitwise the same in any batch: disaggregated output equals aggregated output on the
  // GPU as it does on the CPU (which is so always). Costs decode speed (no CUDA graphs, no GEMV).
  bool batch_invariant = false;
};

struct TransferSection {
  TransferBackend backend = TransferBackend::kAuto;
  bool layerwise = true;
};

struct StaticWorker {
  std::string role;     // prefill | decode | both
  std::string address;  // host:port of its gRPC server
};

struct DiscoverySection {
  DiscoveryType type = DiscoveryType::kEmbedded;
  std::vector<std::string> etcd_endpoints{"http://127.0.0.1:2379"};
  // The environment variable holding the cluster token every worker RPC presents (workers refuse
  // calls without it); unset or empty: no token. `tandem serve` generates one for its own workers.
  std::string token_env = "TANDEM_CLUSTER_TOKEN";
  int lease_ttl_s = 10;
  std::string etcd_prefix = "/tandem";
  std::vector<StaticWorker> static_workers;
};

struct LoggingSection {
  std::string level = "info";
};

// SIGTERM (or SIGINT) drains a process before it exits. A worker refuses new calls, its readiness
// (gRPC health) turns NOT_SERVING, it leaves discovery, and it exits once its calls in flight have
// finished or after drain_timeout_s (what is left then is ended with an error). A frontend answers
// new requests 503, /health turns 503 ("draining"), and it exits once its streams have finished or
// after drain_timeout_s. A second signal ends the wait at once. Kubernetes'
// terminationGracePeriodSeconds must exceed it (deploy/k8s/).
struct ShutdownSection {
  double drain_timeout_s = 30;
};

struct DeploymentConfig {
  std::string source;  // file the config came from ("<defaults>" when none)
  ModelSection model;
  BackendKind backend = BackendKind::kCuda;
  FrontendSection frontend;
  RouterSection router;
  DisaggregationSection disaggregation;
  PoolsSection pools;
  KvCacheSection kv_cache;
  EngineSection engine;
  TransferSection transfer;
  DiscoverySection discovery;
  LoggingSection logging;
  ShutdownSection shutdown;
};

// One worker process of the resolved deployment: its role, replica index and devices.
struct WorkerPlan {
  std::string role;  // prefill | decode | both
  int replica = 0;
  std::vector<int> devices;  // empty on the cpu backend
};

// Parses `yaml_text` (named `source` in errors), applying `overrides` ("a.b.c=value", value in YAML
// syntax) before validation.
absl::StatusOr<DeploymentConfig> ParseDeploymentConfig(const std::string& yaml_text, const std::string& source,
                                                       const std::vector<std::string>& overrides = {});

// Reads and parses a deployment file.
absl::StatusOr<DeploymentConfig> LoadDeploymentConfig(const std::string& path,
                                                      const std::vector<std::string>& overrides = {});

// The worker processes this deployment runs, with devices assigned.
std::vector<WorkerPlan> PlanWorkers(const DeploymentConfig& config);

// A human-readable resolved deployment (YAML with every default filled in, then the worker plan).
std::string DescribeDeployment(const DeploymentConfig& config);

const char* Name(LoadFormat v);
const char* Name(ComputeDType v);
const char* Name(Quantization v);
const char* Name(BackendKind v);
const char* Name(RouterPolicy v);
const char* Name(DisaggregationMode v);
const char* Name(PrefillFailurePolicy v);
const char* Name(TransferBackend v);
const char* Name(DiscoveryType v);

}  // namespace tandem
