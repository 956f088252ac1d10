// `tandem generate`: a quick local run of one sequence — load, prefill the prompt, then sample up to
// --max-tokens tokens (greedy at temperature 0) and print them with the prefill and decode rates — on
// the CPU reference backend or, with --backend cuda, on a GPU.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "commands.h"
#include "flags.h"
#include "tandem/backend/cpu_backend.h"
#include "tandem/backend/model_runner.h"
#include "tandem/backend/sequence_runner.h"
#ifdef TANDEM_HAS_CUDA
#include "tandem/backend/cuda_model_runner.h"
#endif
#include "tandem/core/status.h"
#include "tandem/model/loader.h"
#ifdef TANDEM_HAVE_TOKENIZE
#include "tandem/tokenizer/tokenizer.h"
#endif

namespace tandem::cli {
namespace {

const std::vector<FlagSpec>& GenerateFlags() {
  static const std::vector<FlagSpec> kSpecs = {
      {"model", "model path: a Hugging Face directory or a .gguf file", true, false, "m"},
      {"load-format", "auto | safetensors | gguf | dummy (default auto)"},
      {"quantization", "none | nvfp4: quantize the linear weights to NVFP4 at load, lm_head excluded (default none)"},
      {"prompt-ids", "prompt token ids: \"1,2,3\" or \"1 2 3\""},
      {"prompt", "prompt text (encoded with the model's tokenizer)"},
      {"max-tokens", "tokens to generate at most (default 32)"},
      {"temperature", "0 = greedy (default); > 0 samples from softmax(logits / T)"},
      {"seed", "random seed for sampling (default 0)"},
      {"backend", "cpu (default) | cuda"},
      {"device", "CUDA device ordinal with --backend cuda (default 0)"},
      {"threads", "CPU threads (default: all cores)"},
      {"ignore-eos", "keep generating past an end-of-sequence token", false},
      {"fp32", "use the dequantized fp32 weights even for a GGUF file (same results, slower)", false},
  };
  return kSpecs;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "tandem generate: %s\n", std::string(status.message()).c_str());
  return 1;
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "tandem generate: %s\n", message.c_str());
  return 2;
}

absl::StatusOr<std::vector<int32_t>> ParseIds(const std::string& s) {
  std::string cleaned;
  for (char c : s) cleaned.push_back((c == ',' || c == '[' || c == ']') ? ' ' : c);
  std::istringstream in(cleaned);
  std::vector<int32_t> ids;
  std::string word;
  while (in >> word) {
    char* end = nullptr;
    const long v = std::strtol(word.c_str(), &end, 10);
    if (end == word.c_str() || *end != '\0' || v < 0 || v > INT32_MAX) {
      return absl::InvalidArgumentError(
          absl::StrCat("--prompt-ids expects non-negative integer ids, found '", word, "'"));
    }
    ids.push_back(static_cast<int32_t>(v));
  }
  if (ids.empty()) return absl::InvalidArgumentError("--prompt-ids is empty");
  return ids;
}

int32_t Sample(const std::vector<float>& logits, double temperature, std::mt19937_64& rng) {
  const int vocab = static_cast<int>(logits.size());
  if (temperature <= 0.0) return backend::Argmax(logits.data(), vocab);
  const float max_logit = logits[static_cast<size_t>(backend::Argmax(logits.data(), vocab))];
  std::vector<double> p(logits.size());
  double sum = 0;
  for (size_t i = 0; i < p.size(); ++i) sum += p[i] = std::exp((logits[i] - max_logit) / temperature);
  std::uniform_real_distribution<double> u(0.0, sum);
  double r = u(rng);
  for (size_t i = 0; i < p.size(); ++i) {
    r -= p[i];
    if (r <= 0) return static_cast<int32_t>(i);
  }
  return static_cast<int32_t>(p.size() - 1);
}

// One sequence on a backend: Step() runs the tokens not yet in the KV cache and returns the logits
// of the last one; Append() adds the sampled token.
class OneSequence {
 public:
  virtual ~OneSequence() = default;
  virtual absl::StatusOr<std::vector<float>> Step() = 0;
  virtual absl::Status Append(int32_t token) = 0;
  virtual std::string describe() const = 0;
};

class CpuSequence final : public OneSequence {
 public:
  static absl::StatusOr<std::unique_ptr<OneSequence>> Create(const model::LoadedModel& loaded, const std::string& gguf,
                                                             int threads, const std::vector<int32_t>& prompt,
                                                             int max_len) {
    std::unique_ptr<CpuSequence> s(new CpuSequence());
    TANDEM_ASSIGN_OR_RETURN(s->backend_, backend::CreateCpuBackend({.num_threads = threads}));
    TANDEM_ASSIGN_OR_RETURN(s->runner_, backend::ModelRunner::Create(s->backend_.get(), loaded.config, loaded.weights,
                                                                     backend::ModelRunnerOptions{gguf}));
    const int block_size = 16;
    TANDEM_ASSIGN_OR_RETURN(s->cache_, backend::KvPool::Create(*s->backend_, s->runner_->MakeKvCacheSpec(
                                                                                  (max_len + block_size - 1) / block_size,
                                                                                  block_size)));
    s->seqs_ = std::make_unique<backend::SequenceRunner>(s->runner_.get(), s->cache_.get());
    TANDEM_ASSIGN_OR_RETURN(s->id_, s->seqs_->AddSequence(prompt, max_len));
    return std::unique_ptr<OneSequence>(std::move(s));
  }
  absl::StatusOr<std::vector<float>> Step() override {
    TANDEM_ASSIGN_OR_RETURN(auto out, seqs_->Step({{id_, 0}}));
    return std::move(out.at(0).second);
  }
  absl::Status Append(int32_t token) override { return seqs_->Append(id_, token); }
  std::string describe() const override { return absl::StrCat("cpu (", backend::CpuKernelIsa(), " kernels)"); }

 private:
  CpuSequence() = default;
  std::unique_ptr<backend::Backend> backend_;
  std::unique_ptr<backend::ModelRunner> runner_;
  std::unique_ptr<backend::KvPool> cache_;
  std::unique_ptr<backend::SequenceRunner> seqs_;
  int id_ = 0;
};

#ifdef TANDEM_HAS_CUDA
class CudaSequence final : public OneSequence {
 public:
  static absl::StatusOr<std::unique_ptr<OneSequence>> Create(const model::LoadedModel& loaded, int device,
                                                             const std::vector<int32_t>& prompt, int max_len) {
    std::unique_ptr<CudaSequence> s(new CudaSequence());
    backend::CudaModelRunnerOptions options;
    options.device = device;
    options.max_num_tokens = std::max<int>(static_cast<int>(prompt.size()), 1);
    options.max_num_seqs = 1;
    options.max_model_len = max_len;
    options.num_blocks = (max_len + options.block_size - 1) / options.block_size;
    TANDEM_ASSIGN_OR_RETURN(s->runner_,
                            backend::CudaModelRunner::Create(loaded.config, loaded.weights, options, &loaded.nvfp4,
                                                             &loaded.dummy));
    for (int b = 0; b < options.num_blocks; ++b) s->step_.block_table.push_back(b);
    s->step_.token_ids = prompt;
    s->device_ = device;
    return std::unique_ptr<OneSequence>(std::move(s));
  }
  absl::StatusOr<std::vector<float>> Step() override {
    const int need = (step_.start_position + static_cast<int>(step_.token_ids.size()) + 15) / 16;
    backend::SequenceStep step = step_;
    step.block_table.resize(static_cast<size_t>(need));
    TANDEM_ASSIGN_OR_RETURN(backend::BatchPlan plan, runner_->Plan({step}));
    TANDEM_ASSIGN_OR_RETURN(backend::CudaStepOutput out, runner_->Forward(plan));
    step_.start_position += static_cast<int32_t>(step_.token_ids.size());
    step_.token_ids.clear();
    return std::vector<float>(out.logits.begin(), out.logits.end());
  }
  absl::Status Append(int32_t token) override {
    step_.token_ids.push_back(token);
    return absl::OkStatus();
  }
  std::string describe() const override { return absl::StrCat("cuda (GPU ", device_, ", bf16)"); }

 private:
  CudaSequence() = default;
  std::unique_ptr<backend::CudaModelRunner> runner_;
  backend::SequenceStep step_;
  int device_ = 0;
};
#endif

}  // namespace

int RunGenerate(const Args& args) {
  if (WantsHelp(args)) {
    std::printf("%s", FormatHelp("tandem generate --model PATH (--prompt-ids 1,2,3 | --prompt TEXT) [--max-tokens N] "
                                 "[--temperature T] [--seed S]",
                                 "Run a model locally (CPU backend, or --backend cuda) and print the generated tokens.",
                                 GenerateFlags())
                          .c_str());
    return 0;
  }
  auto flags = Flags::Parse(args, GenerateFlags());
  if (!flags.ok()) return Usage(std::string(flags.status().message()));
  if (!flags->positional().empty()) return Usage("unexpected argument '" + flags->positional()[0] + "'");
  if (!flags->Has("model") && flags->Get("load-format") != "dummy") return Usage("--model is required");
  if (flags->Has("prompt") == flags->Has("prompt-ids")) return Usage("give exactly one of --prompt and --prompt-ids");
  auto max_tokens = flags->GetInt("max-tokens", 32);
  auto temperature = flags->GetDouble("temperature", 0.0);
  auto seed = flags->GetInt("seed", 0);
  auto threads = flags->GetInt("threads", 0);
  auto device = flags->GetInt("device", 0);
  const std::string backend_name = flags->Get("backend", "cpu");
  if (backend_name != "cpu" && backend_name != "cuda") {
    return Usage(absl::StrCat("--backend: expected cpu or cuda, found '", backend_name, "'"));
  }
  for (const absl::Status& s :
       {max_tokens.status(), temperature.status(), seed.status(), threads.status(), device.status()}) {
    if (!s.ok()) return Usage(std::string(s.message()));
  }
  if (*max_tokens < 1) return Usage(absl::StrCat("--max-tokens must be >= 1, found ", *max_tokens));
  if (*temperature < 0) return Usage(absl::StrCat("--temperature must be >= 0, found ", *temperature));
  if (*threads < 0) return Usage(absl::StrCat("--threads must be >= 0, found ", *threads));

  model::LoadOptions load;
  load.path = flags->Get("model");
  auto format = model::ParseLoadFormat(flags->Get("load-format", "auto"));
  if (!format.ok()) return Usage(std::string(format.status().message()));
  load.format = *format;
  load.seed = static_cast<uint64_t>(*seed);
  const std::string quantization = flags->Get("quantization", "none");
  if (quantization != "none" && quantization != "nvfp4") {
    return Usage(absl::StrCat("--quantization: expected none or nvfp4, found '", quantization, "'"));
  }
  load.quantize_nvfp4 = quantization == "nvfp4";
  load.keep_16bit = backend_name == "cuda";  // streamed to the GPU as it is; no fp32 host copy
  load.dummy_on_device = backend_name == "cuda" && !load.quantize_nvfp4;  // dummy weights generated there
  auto loaded = model::LoadModel(load);
  if (!loaded.ok()) return Fail(loaded.status());
  const model::ModelConfig& config = loaded->config;

  std::vector<int32_t> prompt;
#ifdef TANDEM_HAVE_TOKENIZE
  std::unique_ptr<tokenizer::Tokenizer> tok;
  if (loaded->format != model::LoadFormat::kDummy) {
    auto t = loaded->gguf.has_value() ? tokenizer::Tokenizer::FromGguf(*loaded->gguf)
                                      : tokenizer::Tokenizer::FromModelPath(load.path);
    if (t.ok()) {
      tok = std::move(t).value();
    } else if (flags->Has("prompt")) {
      return Fail(t.status());
    }
  }
  if (flags->Has("prompt")) {
    if (tok == nullptr) return Usage("--prompt needs a model with a tokenizer; give --prompt-ids");
    auto ids = tok->Encode(flags->Get("prompt"), /*add_special_tokens=*/true);
    if (!ids.ok()) return Fail(ids.status());
    prompt.assign(ids->begin(), ids->end());
  }
#else
  if (flags->Has("prompt")) {
    return Usage("this build has no tokenizer module: give the prompt as token ids with --prompt-ids");
  }
#endif
  if (flags->Has("prompt-ids")) {
    auto ids = ParseIds(flags->Get("prompt-ids"));
    if (!ids.ok()) return Usage(std::string(ids.status().message()));
    prompt = *ids;
  }
  if (prompt.empty()) return Usage("the prompt has no tokens");

  const int max_len = static_cast<int>(prompt.size()) + static_cast<int>(*max_tokens);
  if (max_len > config.max_position_embeddings) {
    return Usage(absl::StrCat("prompt (", prompt.size(), ") + --max-tokens (", *max_tokens, ") exceeds the model's ",
                              config.max_position_embeddings, " positions"));
  }
  absl::StatusOr<std::unique_ptr<OneSequence>> seq;
  if (backend_name == "cpu") {
    const std::string gguf = loaded->format == model::LoadFormat::kGguf && !flags->Has("fp32") ? load.path : "";
    seq = CpuSequence::Create(*loaded, gguf, static_cast<int>(*threads), prompt, max_len);
  } else {
#ifdef TANDEM_HAS_CUDA
    seq = CudaSequence::Create(*loaded, static_cast<int>(*device), prompt, max_len);
#else
    return Usage("--backend cuda: this build of tandem has no CUDA backend (built without nvcc)");
#endif
  }
  if (!seq.ok()) return Fail(seq.status());
  loaded->weights = model::ModelWeights();  // the runner holds its own copy

  std::mt19937_64 rng(static_cast<uint64_t>(*seed));
  std::vector<int32_t> generated;
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto t1 = t0;
  bool stopped_at_eos = false;
  while (static_cast<int64_t>(generated.size()) < *max_tokens) {
    auto logits = (*seq)->Step();
    if (!logits.ok()) return Fail(logits.status());
    if (generated.empty()) t1 = Clock::now();
    const int32_t next = Sample(*logits, *temperature, rng);
    generated.push_back(next);
    const bool eos = std::find(config.eos_token_ids.begin(), config.eos_token_ids.end(), next) !=
                     config.eos_token_ids.end();
    if (eos && !flags->Has("ignore-eos")) {
      stopped_at_eos = true;
      break;
    }
    if (static_cast<int64_t>(generated.size()) < *max_tokens) {
      if (auto st = (*seq)->Append(next); !st.ok()) return Fail(st);
    }
  }
  const auto t2 = Clock::now();
#ifdef TANDEM_HAVE_TOKENIZE
  if (tok != nullptr) {
    auto text = tok->Decode(std::vector<tokenizer::TokenId>(generated.begin(), generated.end()), true);
    if (text.ok()) std::printf("%s\n", text->c_str());
  }
#endif
  std::printf("ids: [%s]\n", absl::StrJoin(generated, ", ").c_str());
  const double prefill_s = std::chrono::duration<double>(t1 - t0).count();
  const double decode_s = std::chrono::duration<double>(t2 - t1).count();
  std::fprintf(stderr, "%s: prompt %zu tokens (%.1f tok/s), generated %zu tokens (%.1f tok/s)%s, on %s\n",
               config.name.c_str(), prompt.size(), static_cast<double>(prompt.size()) / prefill_s, generated.size(),
               generated.size() > 1 ? static_cast<double>(generated.size() - 1) / decode_s : 0.0,
               stopped_at_eos ? ", stopped at end of sequence" : "", (*seq)->describe().c_str());
  return 0;
}

}  // namespace tandem::cli
