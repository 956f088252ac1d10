#include "tandem/core/config.h"

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tandem/core/status.h"
#include "yaml_reader.h"

namespace tandem {
namespace {

using config_internal::EnumTable;
using config_internal::MapReader;
using config_internal::YamlError;
using config_internal::YamlSource;

constexpr int64_t kMaxInt = int64_t{1} << 40;

const EnumTable<LoadFormat> kLoadFormats = {{"auto", LoadFormat::kAuto},
                                            {"safetensors", LoadFormat::kSafetensors},
                                            {"gguf", LoadFormat::kGguf},
                                            {"dummy", LoadFormat::kDummy}};
const EnumTable<ComputeDType> kDTypes = {
    {"bfloat16", ComputeDType::kBFloat16}, {"float16", ComputeDType::kFloat16}, {"float32", ComputeDType::kFloat32}};
const EnumTable<Quantization> kQuantizations = {
    {"none", Quantization::kNone}, {"nvfp4", Quantization::kNvfp4}, {"fp8", Quantization::kFp8}};
const EnumTable<BackendKind> kBackends = {{"cuda", BackendKind::kCuda}, {"cpu", BackendKind::kCpu}};
const EnumTable<RouterPolicy> kPolicies = {{"kv_aware", RouterPolicy::kKvAware},
                                           {"least_loaded", RouterPolicy::kLeastLoaded},
                                           {"round_robin", RouterPolicy::kRoundRobin},
                                           {"random", RouterPolicy::kRandom}};
const EnumTable<DisaggregationMode> kModes = {{"always", DisaggregationMode::kAlways},
                                              {"conditional", DisaggregationMode::kConditional},
                                              {"off", DisaggregationMode::kOff}};
const EnumTable<PrefillFailurePolicy> kPrefillFailures = {{"fail", PrefillFailurePolicy::kFail},
                                                          {"recompute", PrefillFailurePolicy::kRecompute}};
const EnumTable<TransferBackend> kTransfers = {{"auto", TransferBackend::kAuto},
                                               {"ucx", TransferBackend::kUcx},
                                               {"nccl", TransferBackend::kNccl},
                                               {"local", TransferBackend::kLocal}};
const EnumTable<DiscoveryType> kDiscoveries = {
    {"embedded", DiscoveryType::kEmbedded}, {"static", DiscoveryType::kStatic}, {"etcd", DiscoveryType::kEtcd}};

template <typename E>
const char* LookupName(const EnumTable<E>& table, E value) {
  for (const auto& [name, v] : table) {
    if (v == value) return name;
  }
  return "?";
}

absl::Status ReadEndpoint(MapReader reader, Endpoint* out) {
  TANDEM_RETURN_IF_ERROR(reader.Validate());
  TANDEM_RETURN_IF_ERROR(reader.String("host", &out->host, false));
  TANDEM_RETURN_IF_ERROR(reader.Int("port", &out->port, 0, 65535));
  return reader.Finish();
}

// Expands a leading `~` and `${VAR}` references, so shipped configs can point into the user's cache.
absl::StatusOr<std::string> ExpandPath(const std::string& path) {
  std::string out;
  std::size_t i = 0;
  if (!path.empty() && path[0] == '~' && (path.size() == 1 || path[1] == '/')) {
    const char* home = std::getenv("HOME");
    if (home == nullptr) return absl::InvalidArgumentError("'~' used but HOME is not set");
    out = home;
    i = 1;
  }
  while (i < path.size()) {
    if (path.compare(i, 2, "${") == 0) {
      const std::size_t end = path.find('}', i);
      if (end == std::string::npos) return absl::InvalidArgumentError("unterminated ${ in path");
      const std::string name = path.substr(i + 2, end - i - 2);
      const char* value = std::getenv(name.c_str());
      if (value == nullptr) return absl::InvalidArgumentError(absl::StrCat("environment variable ", name, " is not set"));
      out += value;
      i = end + 1;
    } else {
      out += path[i++];
    }
  }
  return out;
}

absl::Status ReadModel(MapReader reader, ModelSection* out) {
  TANDEM_RETURN_IF_ERROR(reader.Validate());
  TANDEM_RETURN_IF_ERROR(reader.String("path", &out->path, false));
  if (!out->path.empty()) {
    auto expanded = ExpandPath(out->path);
    if (!expanded.ok()) {
      return YamlError(reader.source(), reader.node()["path"], reader.Join("path"),
                       std::string(expanded.status().message()));
    }
    out->path = *expanded;
  }
  TANDEM_RETURN_IF_ERROR(reader.Enum("load_format", &out->load_format, kLoadFormats));
  TANDEM_RETURN_IF_ERROR(reader.String("dummy_config", &out->dummy_config, false));
  TANDEM_RETURN_IF_ERROR(reader.Enum("dtype", &out->dtype, kDTypes));
  TANDEM_RETURN_IF_ERROR(reader.Enum("quantization", &out->quantization, kQuantizations));
  TANDEM_RETURN_IF_ERROR(reader.Int("max_model_len", &out->max_model_len, 1, int64_t{1} << 24));
  int64_t seed = 0;
  TANDEM_RETURN_IF_ERROR(reader.Int("seed", &seed, 0, kMaxInt));
  out->seed = static_cast<uint64_t>(seed);
  TANDEM_RETURN_IF_ERROR(reader.Finish());
  if (out->path.empty() && out->load_format != LoadFormat::kDummy) {
    return YamlError(reader.source(), reader.node(), reader.Join("path"),
                     "missing: a model path (HF directory or .gguf file) is required unless load_format is dummy");
  }
  if (out->load_format == LoadFormat::kDummy && out->path.empty() && out->dummy_config.empty()) {
    return YamlError(reader.source(), reader.node(), reader.Join("dummy_config"),
                     "missing: dummy weights need a config (model.path to a config.json directory, or "
                     "model.dummy_config: a config.json path or preset name)");
  }
  return absl::OkStatus();
}

absl::Status ReadPool(MapReader reader, PoolSection* out) {
  TANDEM_RETURN_IF_ERROR(reader.Validate());
  TANDEM_RETURN_IF_ERROR(reader.Int("replicas", &out->replicas, 0, 1024));
  TANDEM_RETURN_IF_ERROR(reader.Int("tensor_parallel", &out->tensor_parallel, 1, 64));
  TANDEM_RETURN_IF_ERROR(reader.IntList("devices", &out->devices, 0, 1023));
  TANDEM_RETURN_IF_ERROR(reader.Int("max_num_batched_tokens", &out->max_num_batched_tokens, 1, int64_t{1} << 22));
  TANDEM_RETURN_IF_ERROR(reader.Int("max_num_seqs", &out->max_num_seqs, 1, 1 << 16));
  TANDEM_RETURN_IF_ERROR(reader.Finish());
  std::set<int> seen;
  for (int device : out->devices) {
    if (!seen.insert(device).second) {
      return YamlError(reader.source(), reader.node()["devices"], reader.Join("devices"),
                       absl::StrCat("device ", device, " is listed twice"));
    }
  }
  if (!out->devices.empty() &&
      static_cast<int64_t>(out->devices.size()) != int64_t{out->replicas} * out->tensor_parallel) {
    return YamlError(reader.source(), reader.node()["devices"], reader.Join("devices"),
                     absl::StrCat("expected replicas x tensor_parallel = ", out->replicas, " x ",
                                  out->tensor_parallel, " = ", out->replicas * out->tensor_parallel,
                                  " devices, found ", out->devices.size()));
  }
  return absl::OkStatus();
}

absl::Status ReadDiscovery(MapReader reader, DiscoverySection* out) {
  TANDEM_RETURN_IF_ERROR(reader.Validate());
  TANDEM_RETURN_IF_ERROR(reader.Enum("type", &out->type, kDiscoveries));
  TANDEM_RETURN_IF_ERROR(reader.String("token_env", &out->token_env, true));
  MapReader etcd = reader.Child("etcd");
  TANDEM_RETURN_IF_ERROR(etcd.Validate());
  TANDEM_RETURN_IF_ERROR(etcd.StringList("endpoints", &out->etcd_endpoints));
  TANDEM_RETURN_IF_ERROR(etcd.Int("lease_ttl_s", &out->lease_ttl_s, 1, 3600));
  TANDEM_RETURN_IF_ERROR(etcd.String("prefix", &out->etcd_prefix, false));
  TANDEM_RETURN_IF_ERROR(etcd.Finish());
  std::vector<MapReader> workers;
  TANDEM_RETURN_IF_ERROR(reader.ChildList("workers", &workers));
  for (MapReader& worker : workers) {
    StaticWorker entry;
    TANDEM_RETURN_IF_ERROR(worker.String("role", &entry.role, false));
    TANDEM_RETURN_IF_ERROR(worker.String("address", &entry.address, false));
    TANDEM_RETURN_IF_ERROR(worker.Finish());
    if (entry.role != "prefill" && entry.role != "decode" && entry.role != "both") {
      return YamlError(reader.source(), worker.node()["role"], worker.Join("role"),
                       absl::StrCat("expected one of prefill, decode, both, found '", entry.role, "'"));
    }
    if (entry.address.find(':') == std::string::npos) {
      return YamlError(reader.source(), worker.node()["address"], worker.Join("address"),
                       absl::StrCat("expected host:port, found '", entry.address, "'"));
    }
    out->static_workers.push_back(entry);
  }
  TANDEM_RETURN_IF_ERROR(reader.Finish());
  if (out->type == DiscoveryType::kStatic && out->static_workers.empty()) {
    return YamlError(reader.source(), reader.node(), reader.Join("workers"),
                     "missing: static discovery needs a list of workers (role, address)");
  }
  return absl::OkStatus();
}

// Checks that span sections: pools against the backend and the disaggregation mode.
absl::Status ValidateWhole(const DeploymentConfig& config, const YamlSource& source, const YAML::Node& root) {
  const YAML::Node pools = root["pools"];
  auto pool_error = [&](const std::string& pool, const std::string& key, const std::string& message) {
    YAML::Node node = pools.IsMap() && pools[pool].IsMap() ? pools[pool][key] : YAML::Node();
    if (!node.IsDefined() && pools.IsMap()) node = pools[pool];
    return YamlError(source, node, absl::StrCat("pools.", pool, ".", key), message);
  };
  const DisaggregationMode mode = config.disaggregation.mode;
  if (mode == DisaggregationMode::kOff) {
    if (config.pools.both.replicas + config.pools.decode.replicas < 1) {
      return pool_error("both", "replicas", "disaggregation is off: expected at least one decode or both worker");
    }
  } else {
    if (config.pools.prefill.replicas < 1) {
      return pool_error("prefill", "replicas",
                        absl::StrCat("disaggregation mode ", Name(mode),
                                     " needs at least 1 prefill replica, found ", config.pools.prefill.replicas));
    }
    if (config.pools.decode.replicas < 1) {
      return pool_error("decode", "replicas",
                        absl::StrCat("disaggregation mode ", Name(mode),
                                     " needs at least 1 decode replica, found ", config.pools.decode.replicas));
    }
  }
  const std::pair<const char*, const PoolSection*> all_pools[] = {
      {"prefill", &config.pools.prefill}, {"decode", &config.pools.decode}, {"both", &config.pools.both}};
  // Workers may share a GPU (two pools on one device), each taking kv_cache.gpu_memory_utilization
  // of it: the shares on any one device must add up to at most 1.
  std::map<int, std::vector<std::string>> users;
  for (const auto& [name, pool] : all_pools) {
    if (config.backend == BackendKind::kCpu && !pool->devices.empty()) {
      return pool_error(name, "devices", "the cpu backend has no devices; remove this list or use backend: cuda");
    }
    for (int device : pool->devices) {
      std::vector<std::string>& on_device = users[device];
      on_device.push_back(name);
      const double share = static_cast<double>(on_device.size()) * config.kv_cache.gpu_memory_utilization;
      if (share > 1.0 + 1e-9) {
        return pool_error(name, "devices",
                          absl::StrCat("device ", device, " would hold ", on_device.size(), " workers (pools ",
                                       absl::StrJoin(on_device, ", "), ") at kv_cache.gpu_memory_utilization ",
                                       config.kv_cache.gpu_memory_utilization, " each: expected a total of at most 1, found ",
                                       share, "; lower gpu_memory_utilization or give the pools their own devices"));
      }
    }
  }
  if (config.transfer.backend == TransferBackend::kNccl && config.backend == BackendKind::kCpu) {
    return YamlError(source, root["transfer"].IsMap() ? root["transfer"]["backend"] : YAML::Node(),
                     "transfer.backend", "nccl moves GPU memory; the cpu backend needs ucx, local or auto");
  }
  if (config.pools.prefill.max_num_batched_tokens < config.kv_cache.block_size) {
    return pool_error("prefill", "max_num_batched_tokens", "must be at least kv_cache.block_size");
  }
  return absl::OkStatus();
}

absl::StatusOr<DeploymentConfig> ParseTree(YAML::Node root, YamlSource& source) {
  DeploymentConfig config;
  config.source = source.name;
  MapReader top(&source, root, "");
  TANDEM_RETURN_IF_ERROR(top.Validate());
  TANDEM_RETURN_IF_ERROR(ReadModel(top.Child("model"), &config.model));
  TANDEM_RETURN_IF_ERROR(top.Enum("backend", &config.backend, kBackends));

  MapReader frontend = top.Child("frontend");
  TANDEM_RETURN_IF_ERROR(frontend.Validate());
  TANDEM_RETURN_IF_ERROR(ReadEndpoint(frontend.Child("http"), &config.frontend.http));
  TANDEM_RETURN_IF_ERROR(ReadEndpoint(frontend.Child("grpc"), &config.frontend.grpc));
  TANDEM_RETURN_IF_ERROR(frontend.String("api_keys_env", &config.frontend.api_keys_env, false));
  TANDEM_RETURN_IF_ERROR(frontend.Int("max_request_bytes", &config.frontend.max_request_bytes, 1024, int64_t{1} << 30));
  TANDEM_RETURN_IF_ERROR(frontend.Int("max_queued_requests", &config.frontend.max_queued_requests, 1, 1 << 24));
  TANDEM_RETURN_IF_ERROR(frontend.Int("max_connections", &config.frontend.max_connections, 1, 1 << 24));
  TANDEM_RETURN_IF_ERROR(frontend.Double("max_queue_wait_s", &config.frontend.max_queue_wait_s, 0.0, 3600.0));
  {
    MapReader rate = frontend.Child("rate_limit");
    FrontendSection::RateLimit& limit = config.frontend.rate_limit;
    TANDEM_RETURN_IF_ERROR(rate.Validate());
    TANDEM_RETURN_IF_ERROR(rate.Double("requests_per_minute", &limit.requests_per_minute, 0.0, 1e9));
    TANDEM_RETURN_IF_ERROR(rate.Double("tokens_per_minute", &limit.tokens_per_minute, 0.0, 1e12));
    TANDEM_RETURN_IF_ERROR(rate.Finish());
    if (limit.requests_per_minute > 0 && limit.requests_per_minute < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          config.source, ": frontend.rate_limit.requests_per_minute: expected 0 (off) or at least 1, found ",
          limit.requests_per_minute));
    }
  }
  TANDEM_RETURN_IF_ERROR(frontend.Finish());

  MapReader router = top.Child("router");
  TANDEM_RETURN_IF_ERROR(router.Validate());
  TANDEM_RETURN_IF_ERROR(router.Enum("policy", &config.router.policy, kPolicies));
  TANDEM_RETURN_IF_ERROR(router.Double("kv_overlap_weight", &config.router.kv_overlap_weight, 0.0, 1e6));
  TANDEM_RETURN_IF_ERROR(router.Double("load_report_timeout_s", &config.router.load_report_timeout_s, 0.2, 600.0));
  TANDEM_RETURN_IF_ERROR(router.Finish());

  MapReader disagg = top.Child("disaggregation");
  TANDEM_RETURN_IF_ERROR(disagg.Validate());
  TANDEM_RETURN_IF_ERROR(disagg.Enum("mode", &config.disaggregation.mode, kModes));
  TANDEM_RETURN_IF_ERROR(
      disagg.Int("max_local_prefill_tokens", &config.disaggregation.max_local_prefill_tokens, 0, int64_t{1} << 24));
  TANDEM_RETURN_IF_ERROR(disagg.Int("max_prefill_queue", &config.disaggregation.max_prefill_queue, 0, 1 << 20));
  TANDEM_RETURN_IF_ERROR(disagg.Double("remote_prefill_timeout_s", &config.disaggregation.remote_prefill_timeout_s,
                                      0.1, 3600.0));
  TANDEM_RETURN_IF_ERROR(
      disagg.Double("kv_transfer_timeout_s", &config.disaggregation.kv_transfer_timeout_s, 0.1, 3600.0));
  TANDEM_RETURN_IF_ERROR(
      disagg.Enum("on_prefill_failure", &config.disaggregation.on_prefill_failure, kPrefillFailures));
  TANDEM_RETURN_IF_ERROR(disagg.Finish());

  MapReader pools = top.Child("pools");
  TANDEM_RETURN_IF_ERROR(pools.Validate());
  if (config.disaggregation.mode == DisaggregationMode::kOff) {
    // Aggregated: workers run role both; `decode` is accepted as their pool name too. A file that
    // names `both` means that pool alone (one replica unless it says), not both plus a decode pool.
    const bool both_named = root["pools"].IsMap() && root["pools"]["both"].IsDefined();
    config.pools.both.replicas = both_named ? 1 : 0;
    if (both_named) config.pools.decode.replicas = 0;
    config.pools.prefill.replicas = 0;
  }
  TANDEM_RETURN_IF_ERROR(ReadPool(pools.Child("prefill"), &config.pools.prefill));
  TANDEM_RETURN_IF_ERROR(ReadPool(pools.Child("decode"), &config.pools.decode));
  TANDEM_RETURN_IF_ERROR(ReadPool(pools.Child("both"), &config.pools.both));
  TANDEM_RETURN_IF_ERROR(pools.Finish());

  MapReader kv = top.Child("kv_cache");
  TANDEM_RETURN_IF_ERROR(kv.Validate());
  TANDEM_RETURN_IF_ERROR(kv.Int("block_size", &config.kv_cache.block_size, 1, 1024));
  TANDEM_RETURN_IF_ERROR(kv.Double("gpu_memory_utilization", &config.kv_cache.gpu_memory_utilization, 0.01, 1.0));
  TANDEM_RETURN_IF_ERROR(kv.Int("cpu_memory_mib", &config.kv_cache.cpu_memory_mib, 1, int64_t{1} << 22));
  TANDEM_RETURN_IF_ERROR(kv.Bool("prefix_caching", &config.kv_cache.prefix_caching));
  TANDEM_RETURN_IF_ERROR(kv.Finish());
  const int bs = config.kv_cache.block_size;
  if ((bs & (bs - 1)) != 0) {
    return YamlError(source, root["kv_cache"]["block_size"], "kv_cache.block_size",
                     absl::StrCat("expected a power of two, found ", bs));
  }

  MapReader engine = top.Child("engine");
  TANDEM_RETURN_IF_ERROR(engine.Validate());
  TANDEM_RETURN_IF_ERROR(engine.Bool("batch_invariant", &config.engine.batch_invariant));
  TANDEM_RETURN_IF_ERROR(engine.Finish());

  MapReader transfer = top.Child("transfer");
  TANDEM_RETURN_IF_ERROR(transfer.Validate());
  TANDEM_RETURN_IF_ERROR(transfer.Enum("backend", &config.transfer.backend, kTransfers));
  TANDEM_RETURN_IF_ERROR(transfer.Bool("layerwise", &config.transfer.layerwise));
  TANDEM_RETURN_IF_ERROR(transfer.Finish());

  TANDEM_RETURN_IF_ERROR(ReadDiscovery(top.Child("discovery"), &config.discovery));

  MapReader logging = top.Child("logging");
  TANDEM_RETURN_IF_ERROR(logging.Validate());
  TANDEM_RETURN_IF_ERROR(logging.Enum<std::string>(
      "level", &config.logging.level,
      {{"trace", "trace"}, {"debug", "debug"}, {"info", "info"}, {"warn", "warn"}, {"error", "error"}, {"off", "off"}}));
  TANDEM_RETURN_IF_ERROR(logging.Finish());

  MapReader shutdown = top.Child("shutdown");
  TANDEM_RETURN_IF_ERROR(shutdown.Validate());
  TANDEM_RETURN_IF_ERROR(shutdown.Double("drain_timeout_s", &config.shutdown.drain_timeout_s, 0.0, 3600.0));
  TANDEM_RETURN_IF_ERROR(shutdown.Finish());

  TANDEM_RETURN_IF_ERROR(top.Finish());
  TANDEM_RETURN_IF_ERROR(ValidateWhole(config, source, root));
  return config;
}

}  // namespace

absl::StatusOr<DeploymentConfig> ParseDeploymentConfig(const std::string& yaml_text, const std::string& source_name,
                                                       const std::vector<std::string>& overrides) {
  YamlSource source{source_name, {}};
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source_name, ":", e.mark.line + 1, ": not valid YAML: ", e.msg));
  }
  if (!root.IsDefined() || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(source_name, ": expected a mapping at the top level"));
  }
  TANDEM_RETURN_IF_ERROR(config_internal::ApplyOverrides(root, overrides, &source));
  try {
    return ParseTree(root, source);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source_name, ":", e.mark.line + 1, ": ", e.msg));
  }
}

absl::StatusOr<DeploymentConfig> LoadDeploymentConfig(const std::string& path,
                                                      const std::vector<std::string>& overrides) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot open the deployment file"));
  std::stringstream text;
  text << file.rdbuf();
  return ParseDeploymentConfig(text.str(), path, overrides);
}

std::vector<WorkerPlan> PlanWorkers(const DeploymentConfig& config) {
  std::vector<WorkerPlan> plan;
  int next_device = 0;
  auto add_pool = [&](const char* role, const PoolSection& pool) {
    for (int r = 0; r < pool.replicas; ++r) {
      WorkerPlan worker{role, r, {}};
      if (config.backend == BackendKind::kCuda) {
        for (int t = 0; t < pool.tensor_parallel; ++t) {
          worker.devices.push_back(pool.devices.empty() ? next_device++ : pool.devices[r * pool.tensor_parallel + t]);
        }
      }
      plan.push_back(worker);
    }
  };
  add_pool("prefill", config.pools.prefill);
  add_pool("decode", config.pools.decode);
  add_pool("both", config.pools.both);
  return plan;
}

std::string DescribeDeployment(const DeploymentConfig& c) {
  auto pool = [](const PoolSection& p) {
    return absl::StrCat("{replicas: ", p.replicas, ", tensor_parallel: ", p.tensor_parallel, ", devices: [",
                        absl::StrJoin(p.devices, ", "), "], max_num_batched_tokens: ", p.max_num_batched_tokens,
                        ", max_num_seqs: ", p.max_num_seqs, "}");
  };
  std::string out = absl::StrCat("# resolved from ", c.source, "\n");
  absl::StrAppend(&out, "model:\n  path: ", c.model.path.empty() ? "\"\"" : c.model.path,
                  "\n  load_format: ", Name(c.model.load_format), "\n");
  if (!c.model.dummy_config.empty()) absl::StrAppend(&out, "  dummy_config: ", c.model.dummy_config, "\n");
  absl::StrAppend(&out, "  dtype: ", Name(c.model.dtype), "\n  quantization: ", Name(c.model.quantization),
                  "\n  max_model_len: ", c.model.max_model_len, "\n  seed: ", c.model.seed, "\n");
  absl::StrAppend(&out, "backend: ", Name(c.backend), "\n");
  absl::StrAppend(&out, "frontend:\n  http: {host: ", c.frontend.http.host, ", port: ", c.frontend.http.port,
                  "}\n  grpc: {host: ", c.frontend.grpc.host, ", port: ", c.frontend.grpc.port,
                  "}\n  api_keys_env: ", c.frontend.api_keys_env, "\n  max_request_bytes: ",
                  c.frontend.max_request_bytes, "\n  max_queued_requests: ", c.frontend.max_queued_requests,
                  "\n  max_connections: ", c.frontend.max_connections,
                  "\n  max_queue_wait_s: ", c.frontend.max_queue_wait_s,
                  "\n  rate_limit: {requests_per_minute: ", c.frontend.rate_limit.requests_per_minute,
                  ", tokens_per_minute: ", c.frontend.rate_limit.tokens_per_minute, "}\n");
  absl::StrAppend(&out, "router:\n  policy: ", Name(c.router.policy), "\n  kv_overlap_weight: ",
                  c.router.kv_overlap_weight, "\n  load_report_timeout_s: ", c.router.load_report_timeout_s, "\n");
  absl::StrAppend(&out, "disaggregation:\n  mode: ", Name(c.disaggregation.mode), "\n  max_local_prefill_tokens: ",
                  c.disaggregation.max_local_prefill_tokens, "\n  max_prefill_queue: ",
                  c.disaggregation.max_prefill_queue, "\n  remote_prefill_timeout_s: ",
                  c.disaggregation.remote_prefill_timeout_s, "\n  kv_transfer_timeout_s: ",
                  c.disaggregation.kv_transfer_timeout_s, "\n  on_prefill_failure: ",
                  Name(c.disaggregation.on_prefill_failure), "\n");
  absl::StrAppend(&out, "pools:\n  prefill: ", pool(c.pools.prefill), "\n  decode: ", pool(c.pools.decode),
                  "\n  both: ", pool(c.pools.both), "\n");
  absl::StrAppend(&out, "kv_cache: {block_size: ", c.kv_cache.block_size, ", gpu_memory_utilization: ",
                  c.kv_cache.gpu_memory_utilization, ", cpu_memory_mib: ", c.kv_cache.cpu_memory_mib,
                  ", prefix_caching: ", c.kv_cache.prefix_caching ? "true" : "false", "}\n");
  absl::StrAppend(&out, "engine: {batch_invariant: ", c.engine.batch_invariant ? "true" : "false", "}\n");
  absl::StrAppend(&out, "transfer: {backend: ", Name(c.transfer.backend),
                  ", layerwise: ", c.transfer.layerwise ? "true" : "false", "}\n");
  absl::StrAppend(&out, "discovery:\n  type: ", Name(c.discovery.type), "\n  token_env: \"", c.discovery.token_env,
                  "\"\n  etcd: {endpoints: [",
                  absl::StrJoin(c.discovery.etcd_endpoints, ", "), "], lease_ttl_s: ", c.discovery.lease_ttl_s,
                  ", prefix: ", c.discovery.etcd_prefix, "}\n");
  for (const StaticWorker& w : c.discovery.static_workers) {
    absl::StrAppend(&out, "  - {role: ", w.role, ", address: ", w.address, "}\n");
  }
  absl::StrAppend(&out, "logging: {level: ", c.logging.level, "}\n");
  absl::StrAppend(&out, "shutdown: {drain_timeout_s: ", c.shutdown.drain_timeout_s, "}\n");
  absl::StrAppend(&out, "# workers\n");
  for (const WorkerPlan& w : PlanWorkers(c)) {
    absl::StrAppend(&out, "#   ", w.role, "[", w.replica, "]: ",
                    w.devices.empty() ? std::string("cpu") : absl::StrCat("cuda devices [", absl::StrJoin(w.devices, ", "), "]"),
                    "\n");
  }
  return out;
}

const char* Name(LoadFormat v) { return LookupName(kLoadFormats, v); }
const char* Name(ComputeDType v) { return LookupName(kDTypes, v); }
const char* Name(Quantization v) { return LookupName(kQuantizations, v); }
const char* Name(BackendKind v) { return LookupName(kBackends, v); }
const char* Name(RouterPolicy v) { return LookupName(kPolicies, v); }
const char* Name(DisaggregationMode v) { return LookupName(kModes, v); }
const char* Name(PrefillFailurePolicy v) { return LookupName(kPrefillFailures, v); }
const char* Name(TransferBackend v) { return LookupName(kTransfers, v); }
const char* Name(DiscoveryType v) { return LookupName(kDiscoveries, v); }

}  // namespace tandem
