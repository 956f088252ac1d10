// `tandem bench`: the serving benchmark. Sends a workload to any OpenAI-compatible server over the
// streaming API and prints TTFT, TPOT, ITL and end-to-end latency percentiles, throughput and
// goodput; --output-json writes the whole record (configuration, summary, every request).
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "commands.h"
#include "flags.h"
#include "nlohmann/json.hpp"
#include "tandem/bench/gpu_power.h"
#include "tandem/bench/report.h"
#include "tandem/bench/runner.h"
#include "tandem/bench/workload.h"
#include "tandem/tokenizer/tokenizer.h"

namespace tandem::cli {
namespace {

using namespace tandem::bench;
using ojson = nlohmann::ordered_json;

const std::vector<FlagSpec>& BenchFlags() {
  static const std::vector<FlagSpec> kSpecs = {
      {"url", "the server's base URL (default http://127.0.0.1:8000)"},
      {"api", "completions (default) or chat: /v1/completions or /v1/chat/completions"},
      {"model", "the model name to send (default: the first model the server's /v1/models lists)"},
      {"tokenizer",
       "the model's tokenizer: a Hugging Face directory (tokenizer.json) or a .gguf file; required"},
      {"api-key", "sent as a Bearer token (default: $OPENAI_API_KEY when set)"},
      {"workload",
       "synthetic (default), sharegpt, prefix (shared system prompts) or long (a long-prompt mix)"},
      {"dataset", "sharegpt: the ShareGPT-format JSON file"},
      {"num-requests", "requests to send (default 100)", true, false, "n"},
      {"input-len", "prompt tokens: N, uniform:MIN:MAX or normal:MEAN:STDDEV (default 256)"},
      {"output-len", "tokens to generate, same forms (default 128; sharegpt: the recorded answer's length)"},
      {"prefix-len", "prefix: tokens of each shared system prompt (default 1024)"},
      {"num-prefixes", "prefix: distinct shared system prompts (default 4)"},
      {"long-input-len", "long: the long prompts' length distribution (default 2048)"},
      {"long-fraction", "long: the share of long prompts (default 0.1)"},
      {"arrival", "poisson (default), concurrency or burst"},
      {"rate", "poisson: requests per second (default 1)"},
      {"concurrency",
       "concurrency: client loops, each sending its next request when the last ends (default 1)"},
      {"max-concurrency", "poisson, burst: requests in flight at most (default: no cap)"},
      {"warmup", "requests sent one at a time before measuring, not recorded (default 2)"},
      {"seed", "seed of the prompts, lengths and arrivals (default 0)"},
      {"no-ignore-eos", "let requests stop at EOS (default: ignore_eos, so outputs have the asked length)",
       false},
      {"temperature", "sampling temperature (default 0)"},
      {"extra-body", "a JSON object merged into every request body"},
      {"timeout", "seconds one request may take (default 600)"},
      {"slo",
       "SLO for goodput: ttft_ms=MS,itl_ms=MS[,e2e_ms=MS] (itl: a request's mean inter-token latency)"},
      {"output-json", "write the whole record (configuration, summary, every request) to this file"},
      {"label", "a name for this run in the JSON record (e.g. the deployment)"},
      {"gpu-power",
       "sample NVML power of these GPUs during the run: all or 0,1,...; reports J per output token"},
      {"gpu-power-interval-ms", "NVML sampling interval (default 100)"},
      {"progress", "draw the progress bar even when stderr is not a terminal", false},
      {"no-progress", "no progress bar", false},
  };
  return kSpecs;
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "tandem bench: %s\n", message.c_str());
  return 2;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "tandem bench: %s\n", std::string(status.message()).c_str());
  return 1;
}

}  // namespace

int RunBench(const Args& args) {
  if (WantsHelp(args)) {
    std::printf(
        "%s", FormatHelp("tandem bench --tokenizer PATH [--url URL] [--model NAME] [flags]",
                         "Benchmark an OpenAI-compatible server through its streaming API: TTFT, TPOT, ITL, "
                         "end-to-end latency (mean/p50/p90/p99), throughput and goodput.",
                         BenchFlags())
                  .c_str());
    return 0;
  }
  auto flags = Flags::Parse(args, BenchFlags());
  if (!flags.ok()) return Usage(std::string(flags.status().message()));
  if (!flags->positional().empty()) return Usage("unexpected argument '" + flags->positional()[0] + "'");
  if (!flags->Has("tokenizer"))
    return Usage("--tokenizer is required (a Hugging Face directory or a .gguf file)");

  RunOptions options;
  auto endpoint = ParseBaseUrl(flags->Get("url", "http://127.0.0.1:8000"));
  if (!endpoint.ok()) return Usage(std::string(endpoint.status().message()));
  options.endpoint = *endpoint;
  const std::string api = flags->Get("api", "completions");
  if (api != "completions" && api != "chat")
    return Usage("--api: expected completions or chat, found '" + api + "'");
  options.chat = api == "chat";
  options.api_key = flags->Get("api-key", std::getenv("OPENAI_API_KEY") ? std::getenv("OPENAI_API_KEY") : "");
  options.ignore_eos = !flags->Has("no-ignore-eos");

  WorkloadSpec spec;
  auto kind = ParseWorkloadKind(flags->Get("workload", "synthetic"));
  if (!kind.ok()) return Usage(std::string(kind.status().message()));
  spec.kind = *kind;
  auto num = flags->GetInt("num-requests", 100);
  auto seed = flags->GetInt("seed", 0);
  auto warmup = flags->GetInt("warmup", 2);
  auto prefix_len = flags->GetInt("prefix-len", 1024);
  auto num_prefixes = flags->GetInt("num-prefixes", 4);
  auto long_fraction = flags->GetDouble("long-fraction", 0.1);
  auto rate = flags->GetDouble("rate", 1);
  auto concurrency = flags->GetInt("concurrency", 1);
  auto max_concurrency = flags->GetInt("max-concurrency", 0);
  auto temperature = flags->GetDouble("temperature", 0);
  auto timeout = flags->GetDouble("timeout", 600);
  auto interval = flags->GetInt("gpu-power-interval-ms", 100);
  for (const absl::Status& s :
       {num.status(), seed.status(), warmup.status(), prefix_len.status(), num_prefixes.status(),
        long_fraction.status(), rate.status(), concurrency.status(), max_concurrency.status(),
        temperature.status(), timeout.status(), interval.status()}) {
    if (!s.ok()) return Usage(std::string(s.message()));
  }
  if (*num < 1) return Usage("--num-requests: expected at least 1");
  if (*warmup < 0) return Usage("--warmup: expected 0 or more");
  if (!(*timeout > 0)) return Usage("--timeout: expected a positive number of seconds");
  if (*interval < 1) return Usage("--gpu-power-interval-ms: expected at least 1");
  if (*max_concurrency < 0) return Usage("--max-concurrency: expected 0 (no cap) or more");
  spec.num_requests = *num;
  spec.seed = static_cast<uint64_t>(*seed);
  spec.prefix_len = *prefix_len;
  spec.num_prefixes = *num_prefixes;
  spec.long_fraction = *long_fraction;
  spec.dataset_path = flags->Get("dataset");
  if (spec.kind == WorkloadKind::kShareGpt && spec.dataset_path.empty())
    return Usage("--workload sharegpt needs --dataset FILE");
  if (spec.kind != WorkloadKind::kShareGpt && flags->Has("dataset"))
    return Usage("--dataset is for --workload sharegpt");
  spec.output_len_given = spec.kind != WorkloadKind::kShareGpt || flags->Has("output-len");
  for (auto [flag, fallback, target] :
       {std::tuple{"input-len", "256", &spec.input_len}, std::tuple{"output-len", "128", &spec.output_len},
        std::tuple{"long-input-len", "2048", &spec.long_input_len}}) {
    auto dist = LengthDist::Parse(flags->Get(flag, fallback));
    if (!dist.ok()) return Usage(absl::StrCat("--", flag, ": ", dist.status().message()));
    *target = *dist;
  }

  const std::string arrival = flags->Get("arrival", "poisson");
  if (arrival == "poisson") {
    options.arrival = Arrival::kPoisson;
    if (!(*rate > 0) || !std::isfinite(*rate))
      return Usage("--rate: expected a positive number of requests per second");
  } else if (arrival == "concurrency") {
    options.arrival = Arrival::kConcurrency;
    if (*concurrency < 1) return Usage("--concurrency: expected at least 1");
  } else if (arrival == "burst") {
    options.arrival = Arrival::kBurst;
  } else {
    return Usage("--arrival: expected poisson, concurrency or burst, found '" + arrival + "'");
  }
  options.rate = *rate;
  options.concurrency = *concurrency;
  options.max_concurrency = *max_concurrency;
  options.temperature = *temperature;
  options.timeout_s = *timeout;
  options.seed = spec.seed;
  options.progress = !flags->Has("no-progress") && (flags->Has("progress") || isatty(STDERR_FILENO));
  if (flags->Has("extra-body")) {
    options.extra_body = nlohmann::json::parse(flags->Get("extra-body"), nullptr, false);
    if (options.extra_body.is_discarded() || !options.extra_body.is_object()) {
      return Usage("--extra-body: expected a JSON object, found '" + flags->Get("extra-body") + "'");
    }
  }
  Slo slo;
  if (flags->Has("slo")) {
    auto parsed = Slo::Parse(flags->Get("slo"));
    if (!parsed.ok()) return Usage(std::string(parsed.status().message()));
    slo = *parsed;
  }

  options.model = flags->Get("model");
  if (options.model.empty()) {
    auto id = FetchFirstModelId(options.endpoint, options.api_key, 30);
    if (!id.ok()) return Fail(id.status());
    options.model = *id;
  }
  auto tok = tokenizer::Tokenizer::FromModelPath(flags->Get("tokenizer"));
  if (!tok.ok())
    return Fail(absl::Status(tok.status().code(), absl::StrCat("--tokenizer: ", tok.status().message())));
  auto prompts = MakeWorkload(spec, **tok);
  if (!prompts.ok()) return Fail(prompts.status());
  WorkloadSpec warm_spec = spec;
  warm_spec.num_requests = std::max<int64_t>(*warmup, 1);
  warm_spec.seed = spec.seed + 1;
  auto warm = MakeWorkload(warm_spec, **tok);
  if (!warm.ok()) return Fail(warm.status());
  warm->resize(static_cast<size_t>(*warmup));
  if (absl::Status s = WarmUp(options, *warm); !s.ok()) return Fail(s);

  std::unique_ptr<GpuPowerSampler> power;
  if (flags->Has("gpu-power")) {
    auto sampler = GpuPowerSampler::Start(flags->Get("gpu-power"), std::chrono::milliseconds(*interval));
    if (!sampler.ok()) return Fail(sampler.status());
    power = std::move(*sampler);
  }
  const RunRecord run = Run(options, *prompts);
  std::vector<GpuEnergy> energy;
  if (power) energy = power->Stop();
  const Summary summary = Summarize(run, slo);

  std::string table = FormatTable(summary, slo);
  ojson energy_json;
  if (power) {
    energy_json = EnergyJson(energy, summary.output_tokens, summary.duration_s);
    table += absl::StrCat(
        "GPU energy (J):                    ", energy_json["energy_j"].get<double>(), "\n",
        "Mean GPU power (W):                ", energy_json["mean_power_w"].get<double>(), "\n",
        "Joules per output token:           ", energy_json["joules_per_output_token"].get<double>(), "\n",
        "Output tokens/s per watt:          ", energy_json["output_tokens_per_s_per_watt"].get<double>(),
        "\n");
  }
  std::printf("%s", table.c_str());
  std::fflush(stdout);

  if (flags->Has("output-json")) {
    ojson record;
    record["tool"] = "tandem bench";
    record["label"] = flags->Get("label");
    ojson config;
    config["url"] = flags->Get("url", "http://127.0.0.1:8000");
    config["api"] = api;
    config["model"] = options.model;
    config["tokenizer"] = flags->Get("tokenizer");
    config["workload"] = WorkloadKindName(spec.kind);
    if (!spec.dataset_path.empty()) config["dataset"] = spec.dataset_path;
    config["num_requests"] = spec.num_requests;
    config["input_len"] = spec.input_len.spec;
    config["output_len"] = spec.output_len_given ? ojson(spec.output_len.spec) : ojson("dataset");
    if (spec.kind == WorkloadKind::kPrefix) {
      config["prefix_len"] = spec.prefix_len;
      config["num_prefixes"] = spec.num_prefixes;
    }
    if (spec.kind == WorkloadKind::kLong) {
      config["long_input_len"] = spec.long_input_len.spec;
      config["long_fraction"] = spec.long_fraction;
    }
    config["arrival"] = ArrivalName(options.arrival);
    if (options.arrival == Arrival::kPoisson) config["rate"] = options.rate;
    if (options.arrival == Arrival::kConcurrency) config["concurrency"] = options.concurrency;
    config["max_concurrency"] = options.max_concurrency;
    config["warmup"] = *warmup;
    config["seed"] = spec.seed;
    config["ignore_eos"] = options.ignore_eos;
    config["temperature"] = options.temperature;
    record["config"] = config;
    record["summary"] = SummaryJson(summary, slo);
    if (power) record["energy"] = energy_json;
    record["requests"] = RequestsJson(run, slo);
    std::ofstream out(flags->Get("output-json"), std::ios::binary);
    out << record.dump(2) << "\n";
    if (!out) return Fail(absl::UnavailableError("cannot write " + flags->Get("output-json")));
  }
  if (summary.completed == 0) {
    std::fprintf(stderr, "tandem bench: every request failed\n");
    return 1;
  }
  return 0;
}

}  // namespace tandem::cli
