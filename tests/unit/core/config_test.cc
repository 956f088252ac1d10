#include "tandem/core/config.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::testing::HasSubstr;

constexpr const char* kGood = R"(model:
  path: /models/SmolLM2-135M-Instruct.Q4_1.gguf
backend: cpu
disaggregation:
  mode: always
pools:
  prefill: {replicas: 2}
  decode: {replicas: 3, max_num_seqs: 64}
)";

TEST(ConfigTest, DefaultsFillEverythingMissing) {
  auto config = ParseDeploymentConfig(kGood, "good.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->backend, BackendKind::kCpu);
  EXPECT_EQ(config->model.load_format, LoadFormat::kAuto);
  EXPECT_EQ(config->model.max_model_len, 8192);
  EXPECT_EQ(config->frontend.http.port, 8000);
  EXPECT_EQ(config->frontend.grpc.port, 8001);
  EXPECT_EQ(config->router.policy, RouterPolicy::kKvAware);
  EXPECT_EQ(config->disaggregation.mode, DisaggregationMode::kAlways);
  EXPECT_EQ(config->disaggregation.max_local_prefill_tokens, 512);
  EXPECT_EQ(config->pools.prefill.replicas, 2);
  EXPECT_EQ(config->pools.decode.replicas, 3);
  EXPECT_EQ(config->pools.decode.max_num_seqs, 64);
  EXPECT_EQ(config->pools.decode.max_num_batched_tokens, 8192);
  EXPECT_EQ(config->kv_cache.block_size, 16);
  EXPECT_TRUE(config->kv_cache.prefix_caching);
  EXPECT_EQ(config->transfer.backend, TransferBackend::kAuto);
  EXPECT_EQ(config->discovery.type, DiscoveryType::kEmbedded);
  EXPECT_EQ(config->logging.level, "info");
  EXPECT_EQ(config->frontend.max_connections, 4096);
  EXPECT_EQ(config->frontend.max_queue_wait_s, 30.0);
  EXPECT_EQ(config->router.load_report_timeout_s, 3.0);
  EXPECT_EQ(config->disaggregation.remote_prefill_timeout_s, 30.0);
  EXPECT_EQ(config->disaggregation.on_prefill_failure, PrefillFailurePolicy::kFail);
  EXPECT_EQ(config->discovery.token_env, "TANDEM_CLUSTER_TOKEN");
  EXPECT_EQ(config->shutdown.drain_timeout_s, 30.0);
  EXPECT_FALSE(config->engine.batch_invariant);
  const auto plan = PlanWorkers(*config);
  ASSERT_EQ(plan.size(), 5u);
  EXPECT_EQ(plan[0].role, "prefill");
  EXPECT_EQ(plan[4].role, "decode");
  EXPECT_EQ(plan[4].replica, 2);
  EXPECT_TRUE(plan[4].devices.empty());
}

TEST(ConfigTest, EmptyFileNeedsAModel) {
  auto config = ParseDeploymentConfig("", "empty.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("empty.yaml: model.path: missing"));
}

TEST(ConfigTest, CudaDevicesAreAssignedPerReplica) {
  auto config = ParseDeploymentConfig(R"(model: {path: /m}
backend: cuda
pools:
  prefill: {replicas: 1, devices: [0]}
  decode: {replicas: 2, devices: [2, 3]}
)", "gpu.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const auto plan = PlanWorkers(*config);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[0].devices, (std::vector<int>{0}));
  EXPECT_EQ(plan[1].devices, (std::vector<int>{2}));
  EXPECT_EQ(plan[2].devices, (std::vector<int>{3}));
  EXPECT_THAT(DescribeDeployment(*config), HasSubstr("decode[1]: cuda devices [3]"));
  // Aggregated tensor-parallel replicas take tensor_parallel devices each, in order.
  auto tp = ParseDeploymentConfig(R"(model: {path: /m}
backend: cuda
disaggregation: {mode: off}
pools:
  decode: {replicas: 2, tensor_parallel: 2}
)", "tp.yaml");
  ASSERT_TRUE(tp.ok()) << tp.status();
  const auto tp_plan = PlanWorkers(*tp);
  ASSERT_EQ(tp_plan.size(), 2u);
  EXPECT_EQ(tp_plan[0].devices, (std::vector<int>{0, 1}));
  EXPECT_EQ(tp_plan[1].devices, (std::vector<int>{2, 3}));
}

TEST(ConfigTest, AggregatedFileNamingBothStartsThatPoolAlone) {
  // configs/dummy-llama3-8b.yaml and configs/aggregated.yaml name `both`: one worker, not a decode
  // worker next to it (which would also share its GPU).
  auto config = ParseDeploymentConfig("model: {path: /m}\nbackend: cpu\ndisaggregation: {mode: off}\n"
                                      "pools:\n  both: {max_num_seqs: 8}\n",
                                      "agg.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const auto plan = PlanWorkers(*config);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].role, "both");
  auto both_and_decode = ParseDeploymentConfig("model: {path: /m}\nbackend: cpu\ndisaggregation: {mode: off}\n"
                                               "pools:\n  both: {replicas: 1}\n  decode: {replicas: 1}\n",
                                               "agg.yaml");
  ASSERT_TRUE(both_and_decode.ok()) << both_and_decode.status();
  EXPECT_EQ(PlanWorkers(*both_and_decode).size(), 2u);  // both named, as asked
}

TEST(ConfigTest, PoolsShareAGpuWhenTheirMemorySharesFit) {
  auto config = ParseDeploymentConfig(R"(model: {path: /m}
backend: cuda
pools:
  prefill: {replicas: 1, devices: [0]}
  decode: {replicas: 1, devices: [0]}
kv_cache: {gpu_memory_utilization: 0.4}
)",
                                      "shared.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const std::vector<WorkerPlan> plan = PlanWorkers(*config);
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].devices, (std::vector<int>{0}));
  EXPECT_EQ(plan[1].devices, (std::vector<int>{0}));
}

TEST(ConfigTest, OverridesApplyBeforeValidation) {
  auto config = ParseDeploymentConfig(kGood, "good.yaml",
                                      {"pools.decode.replicas=5", "frontend.http.port=9000", "router.policy=random"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->pools.decode.replicas, 5);
  EXPECT_EQ(config->frontend.http.port, 9000);
  EXPECT_EQ(config->router.policy, RouterPolicy::kRandom);
}

TEST(ConfigTest, OverrideCreatesMissingSections) {
  auto config = ParseDeploymentConfig("model: {path: /m}\nbackend: cpu\n", "x.yaml", {"kv_cache.block_size=32"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->kv_cache.block_size, 32);
}

TEST(ConfigTest, DrainTimeoutIsReadAndResolved) {
  auto config = ParseDeploymentConfig("model: {path: /m}\nbackend: cpu\nshutdown: {drain_timeout_s: 12.5}\n",
                                      "x.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->shutdown.drain_timeout_s, 12.5);
  EXPECT_THAT(DescribeDeployment(*config), HasSubstr("shutdown: {drain_timeout_s: 12.5}"));
  auto zero = ParseDeploymentConfig("model: {path: /m}\nbackend: cpu\n", "x.yaml", {"shutdown.drain_timeout_s=0"});
  ASSERT_TRUE(zero.ok()) << zero.status();
  EXPECT_EQ(zero->shutdown.drain_timeout_s, 0.0);
}

TEST(ConfigTest, ResolvedDescriptionRoundTrips) {
  auto config = ParseDeploymentConfig(kGood, "good.yaml");
  ASSERT_TRUE(config.ok());
  const std::string text = DescribeDeployment(*config);
  auto again = ParseDeploymentConfig(text, "resolved.yaml");
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << text;
  auto body = [](const std::string& s) { return s.substr(s.find('\n')); };  // skip "# resolved from FILE"
  EXPECT_EQ(body(DescribeDeployment(*again)), body(text));
}

TEST(ConfigTest, PathExpandsHomeAndEnvironment) {
  setenv("TANDEM_TEST_MODELS", "/srv/models", 1);
  auto config = ParseDeploymentConfig("model: {path: '${TANDEM_TEST_MODELS}/x.gguf'}\nbackend: cpu\n", "x.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->model.path, "/srv/models/x.gguf");
  auto home = ParseDeploymentConfig("model: {path: ~/m.gguf}\nbackend: cpu\n", "x.yaml");
  ASSERT_TRUE(home.ok()) << home.status();
  EXPECT_EQ(home->model.path, std::string(getenv("HOME")) + "/m.gguf");
}

TEST(ConfigTest, MissingFileIsNotFound) {
  auto config = LoadDeploymentConfig("/nonexistent/tandem.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(config.status().message(), HasSubstr("/nonexistent/tandem.yaml: cannot open"));
}

struct BadCase {
  const char* name;
  const char* yaml;
  std::vector<std::string> overrides;
  const char* expected;  // exact substring of the error, including file:line and key path
};

class BadConfigTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfigTest, ErrorNamesFileLineAndKey) {
  const BadCase& c = GetParam();
  auto config = ParseDeploymentConfig(c.yaml, "bad.yaml", c.overrides);
  ASSERT_FALSE(config.ok()) << "accepted:\n" << c.yaml;
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()), HasSubstr(c.expected));
}

const BadCase kBadCases[] = {
    {"typo_top_level", "model: {path: /m}\nbackend: cpu\nrouterr: {policy: random}\n", {},
     "bad.yaml:3: routerr: unknown key"},
    {"typo_nested", "model: {path: /m}\nbackend: cpu\npools:\n  decode:\n    replica: 2\n", {},
     "bad.yaml:5: pools.decode.replica: unknown key (valid keys here: devices, max_num_batched_tokens, "
     "max_num_seqs, replicas, tensor_parallel)"},
    {"wrong_type_int", "model: {path: /m}\nbackend: cpu\npools:\n  decode: {replicas: two}\n", {},
     "bad.yaml:4: pools.decode.replicas: expected an integer, found 'two'"},
    {"negative_replicas", "model: {path: /m}\nbackend: cpu\npools:\n  decode: {replicas: -1}\n", {},
     "bad.yaml:4: pools.decode.replicas: expected an integer in [0, 1024], found -1"},
    {"unknown_backend", "model: {path: /m}\nbackend: tpu\n", {},
     "bad.yaml:2: backend: expected one of cuda, cpu, found 'tpu'"},
    {"devices_overlap", "model: {path: /m}\nbackend: cuda\npools:\n  prefill: {devices: [0]}\n  decode: {devices: [0]}\n",
     {}, "pools.decode.devices: device 0 would hold 2 workers (pools prefill, decode) at kv_cache.gpu_memory_utilization "
         "0.9 each: expected a total of at most 1, found 1.8"},
    {"missing_model_path", "backend: cpu\nmodel:\n  load_format: gguf\n", {},
     "bad.yaml:3: model.path: missing: a model path"},
    {"devices_count_mismatch", "model: {path: /m}\nbackend: cuda\npools:\n  decode: {replicas: 2, devices: [1]}\n", {},
     "bad.yaml:4: pools.decode.devices: expected replicas x tensor_parallel = 2 x 1 = 2 devices, found 1"},
    {"devices_on_cpu", "model: {path: /m}\nbackend: cpu\npools:\n  decode: {devices: [0]}\n", {},
     "bad.yaml:4: pools.decode.devices: the cpu backend has no devices"},
    {"port_out_of_range", "model: {path: /m}\nbackend: cpu\nfrontend:\n  http: {port: 70000}\n", {},
     "bad.yaml:4: frontend.http.port: expected an integer in [0, 65535], found 70000"},
    {"bool_wrong", "model: {path: /m}\nbackend: cpu\nkv_cache: {prefix_caching: maybe}\n", {},
     "bad.yaml:3: kv_cache.prefix_caching: expected true or false, found 'maybe'"},
    {"engine_key_typo", "model: {path: /m}\nbackend: cuda\nengine: {batch_invariance: true}\n", {},
     "bad.yaml:3: engine.batch_invariance: unknown key"},
    {"block_size_not_pow2", "model: {path: /m}\nbackend: cpu\nkv_cache: {block_size: 12}\n", {},
     "bad.yaml:3: kv_cache.block_size: expected a power of two, found 12"},
    {"utilization_range", "model: {path: /m}\nbackend: cuda\nkv_cache: {gpu_memory_utilization: 1.5}\n", {},
     "bad.yaml:3: kv_cache.gpu_memory_utilization: expected a number in [0.01, 1], found 1.5"},
    {"section_not_mapping", "model: {path: /m}\nbackend: cpu\nrouter: kv_aware\n", {},
     "bad.yaml:3: router: expected a mapping, found 'kv_aware'"},
    {"list_expected", "model: {path: /m}\nbackend: cuda\npools:\n  decode: {devices: 3}\n", {},
     "bad.yaml:4: pools.decode.devices: expected a list of integers, found '3'"},
    {"no_prefill_when_always", "model: {path: /m}\nbackend: cpu\ndisaggregation: {mode: always}\npools:\n  prefill: {replicas: 0}\n",
     {}, "pools.prefill.replicas: disaggregation mode always needs at least 1 prefill replica, found 0"},
    {"unknown_policy", "model: {path: /m}\nbackend: cpu\nrouter: {policy: fastest}\n", {},
     "bad.yaml:3: router.policy: expected one of kv_aware, least_loaded, round_robin, random, found 'fastest'"},
    {"nccl_on_cpu", "model: {path: /m}\nbackend: cpu\ntransfer: {backend: nccl}\n", {},
     "bad.yaml:3: transfer.backend: nccl moves GPU memory"},
    {"static_without_workers", "model: {path: /m}\nbackend: cpu\ndiscovery: {type: static}\n", {},
     "discovery.workers: missing: static discovery needs a list of workers"},
    {"static_worker_bad_role", "model: {path: /m}\nbackend: cpu\ndiscovery:\n  type: static\n  workers:\n"
     "    - {role: router, address: 'h:1'}\n", {},
     "bad.yaml:6: discovery.workers[0].role: expected one of prefill, decode, both, found 'router'"},
    {"invalid_yaml", "model: {path: /m\nbackend: cpu\n", {}, "bad.yaml:"},
    {"override_bad_value", "model: {path: /m}\nbackend: cpu\n", {"pools.decode.replicas=-3"},
     "--set pools.decode.replicas: expected an integer in [0, 1024], found -3"},
    {"override_typo", "model: {path: /m}\nbackend: cpu\n", {"pools.decode.replcas=3"},
     "--set pools.decode.replcas: unknown key"},
    {"override_syntax", "model: {path: /m}\nbackend: cpu\n", {"pools.decode.replicas"},
     "--set pools.decode.replicas: expected KEY.PATH=VALUE"},
    {"log_level", "model: {path: /m}\nbackend: cpu\nlogging: {level: verbose}\n", {},
     "bad.yaml:3: logging.level: expected one of trace, debug, info, warn, error, off, found 'verbose'"},
    {"unset_env_in_path", "model: {path: '${TANDEM_TEST_SURELY_UNSET}/m.gguf'}\nbackend: cpu\n", {},
     "bad.yaml:1: model.path: environment variable TANDEM_TEST_SURELY_UNSET is not set"},
    {"max_connections_zero", "model: {path: /m}\nbackend: cpu\nfrontend:\n  max_connections: 0\n", {},
     "bad.yaml:4: frontend.max_connections: expected an integer in [1, 16777216], found 0"},
    {"max_queue_wait_negative", "model: {path: /m}\nbackend: cpu\nfrontend: {max_queue_wait_s: -1}\n", {},
     "bad.yaml:3: frontend.max_queue_wait_s: expected a number in [0, 3600], found -1"},
    {"on_prefill_failure_typo", "model: {path: /m}\nbackend: cpu\ndisaggregation:\n  on_prefill_failure: retry\n",
     {}, "bad.yaml:4: disaggregation.on_prefill_failure: expected one of fail, recompute, found 'retry'"},
    {"remote_prefill_timeout_zero", "model: {path: /m}\nbackend: cpu\ndisaggregation:\n  remote_prefill_timeout_s: 0\n",
     {}, "bad.yaml:4: disaggregation.remote_prefill_timeout_s: expected a number in [0.1, 3600], found 0"},
    {"load_report_timeout_text", "model: {path: /m}\nbackend: cpu\nrouter: {load_report_timeout_s: soon}\n", {},
     "bad.yaml:3: router.load_report_timeout_s: expected a number"},
    {"drain_timeout_negative", "model: {path: /m}\nbackend: cpu\nshutdown:\n  drain_timeout_s: -5\n", {},
     "bad.yaml:4: shutdown.drain_timeout_s: expected a number in [0, 3600], found -5"},
    {"drain_timeout_text", "model: {path: /m}\nbackend: cpu\nshutdown: {drain_timeout_s: forever}\n", {},
     "bad.yaml:3: shutdown.drain_timeout_s: expected a number"},
    {"shutdown_typo", "model: {path: /m}\nbackend: cpu\nshutdown: {drain_timeout: 5}\n", {},
     "bad.yaml:3: shutdown.drain_timeout: unknown key"},
    {"duplicate_device", "model: {path: /m}\nbackend: cuda\npools:\n  decode: {replicas: 2, devices: [1, 1]}\n", {},
     "bad.yaml:4: pools.decode.devices: device 1 is listed twice"},
};

INSTANTIATE_TEST_SUITE_P(BadFiles, BadConfigTest, ::testing::ValuesIn(kBadCases),
                         [](const ::testing::TestParamInfo<BadCase>& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace tandem
