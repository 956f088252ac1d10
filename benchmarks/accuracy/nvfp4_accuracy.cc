// NVFP4 accuracy (issue 13): perplexity of a fixed text and greedy top-1 agreement, for the model's own
// weights and for NVFP4 weights (quantized at load, lm_head excluded), side by side on the CPU backend
// (the reference every kernel is checked against). Then, to show where the loss comes from, NVFP4
// applied to one kind of linear layer at a time and to one group of layers at a time.
//
// Usage: nvfp4_accuracy [--model PATH] [--text FILE] [--max-tokens 4096] [--window 512]
//                       [--agreement-steps 512] [--threads N] [--no-breakdown]
//                       [--exclude lm_head,*.k_proj,...]   (modules kept unquantized; default lm_head)
// PATH defaults to $TANDEM_SMOLLM2_GGUF, else ~/.cache/tandem/models/SmolLM2-135M-Instruct.Q4_1.gguf;
// FILE defaults to the repository's docs/architecture.md (it changes with the docs: compare figures
// from one run, and quote the commit).
//
// Perplexity: the text's tokens in windows of `window` tokens (each window a fresh sequence, run as
// one prefill step with the logits of every position); exp of the mean negative log-likelihood of
// every token after the first of its window. Agreement: the reference weights generate
// `agreement-steps` tokens greedily after the text's first 64 tokens; the NVFP4 model reads the same
// tokens (teacher forcing) and we count the positions where its argmax is the reference's token, and
// the first step where free-running NVFP4 generation would have diverged.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tandem/backend/cpu_backend.h"
#include "smollm2_path.h"
#include "tandem/backend/model_runner.h"
#include "tandem/backend/sequence_runner.h"
#include "tandem/core/file.h"
#include "tandem/model/loader.h"
#include "tandem/tokenizer/tokenizer.h"

namespace {

using tandem::backend::KvPool;
using tandem::backend::ModelRunner;
using tandem::backend::SequenceStep;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "nvfp4_accuracy: %s\n", what.c_str());
  std::exit(1);
}

template <typename T>
T OrDie(absl::StatusOr<T> v) {
  if (!v.ok()) Die(std::string(v.status().message()));
  return *std::move(v);
}

// A model on the CPU backend with a KV cache for one sequence of up to `max_len` tokens.
class Scorer {
 public:
  Scorer(tandem::backend::Backend* backend, const tandem::model::LoadedModel& m, int max_len)
      : vocab_(m.config.vocab_size) {
    runner_ = OrDie(ModelRunner::Create(backend, m.config, m.weights));
    const int blocks = (max_len + kBlock - 1) / kBlock;
    cache_ = OrDie(KvPool::Create(*backend, runner_->MakeKvCacheSpec(blocks, kBlock)));
    for (int b = 0; b < blocks; ++b) table_.push_back(b);
  }

  // Logits of every position of `tokens` run as one fresh sequence: [tokens.size(), vocab].
  std::vector<float> AllLogits(const std::vector<int32_t>& tokens) {
    SequenceStep step;
    step.token_ids = tokens;
    step.block_table.assign(table_.begin(), table_.begin() + (static_cast<int>(tokens.size()) + kBlock - 1) / kBlock);
    tandem::backend::BatchPlan plan = OrDie(runner_->Plan({step}, *cache_));
    const int n = plan.num_tokens;
    plan.logits_token_index.resize(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) plan.logits_token_index[static_cast<size_t>(i)] = i;
    plan.logits_seq.assign(static_cast<size_t>(n), 0);
    plan.logits_full.assign(static_cast<size_t>(n), 1);
    return OrDie(runner_->Forward(plan, *cache_));
  }

  // Greedy continuation of `prompt` by `steps` tokens (prefill, then one token per step).
  std::vector<int32_t> Greedy(const std::vector<int32_t>& prompt, int steps) {
    std::vector<int32_t> tokens = prompt;
    SequenceStep step;
    step.token_ids = prompt;
    for (int s = 0; s < steps; ++s) {
      const int len = static_cast<int>(tokens.size());
      step.block_table.assign(table_.begin(), table_.begin() + (len + kBlock - 1) / kBlock);
      const tandem::backend::BatchPlan plan = OrDie(runner_->Plan({step}, *cache_));
      const std::vector<float> logits = OrDie(runner_->Forward(plan, *cache_));
      const int32_t next = tandem::backend::Argmax(logits.data(), vocab_);
      step.start_position = len;
      step.token_ids = {next};
      tokens.push_back(next);
    }
    return tokens;
  }

  int vocab() const { return vocab_; }

 private:
  static constexpr int kBlock = 16;
  int vocab_;
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<KvPool> cache_;
  std::vector<int32_t> table_;
};

// Negative log-likelihood of `next` under one logits row (log-softmax in double).
double Nll(const float* row, int vocab, int32_t next) {
  double max = row[0];
  for (int v = 1; v < vocab; ++v) max = std::max(max, static_cast<double>(row[v]));
  double sum = 0;
  for (int v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(row[v]) - max);
  return std::log(sum) + max - static_cast<double>(row[next]);
}

double Perplexity(Scorer& scorer, const std::vector<int32_t>& tokens, int window) {
  double nll = 0;
  int64_t count = 0;
  for (size_t begin = 0; begin + 1 < tokens.size(); begin += static_cast<size_t>(window)) {
    const size_t end = std::min(tokens.size(), begin + static_cast<size_t>(window));
    const std::vector<int32_t> chunk(tokens.begin() + static_cast<std::ptrdiff_t>(begin),
                                     tokens.begin() + static_cast<std::ptrdiff_t>(end));
    const std::vector<float> logits = scorer.AllLogits(chunk);
    for (size_t i = 0; i + 1 < chunk.size(); ++i) {
      nll += Nll(logits.data() + i * static_cast<size_t>(scorer.vocab()), scorer.vocab(), chunk[i + 1]);
      ++count;
    }
  }
  return std::exp(nll / static_cast<double>(count));
}

tandem::model::LoadedModel Load(const std::string& path, bool nvfp4, std::vector<std::string> exclude) {
  tandem::model::LoadOptions options;
  options.path = path;
  options.show_progress = false;
  options.quantize_nvfp4 = nvfp4;
  options.nvfp4_exclude_modules = std::move(exclude);
  return OrDie(tandem::model::LoadModel(options));
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = tandem::bench::DefaultSmolLm2Gguf();
  std::string text_path = std::string(TANDEM_SOURCE_DIR) + "/docs/architecture.md";
  int max_tokens = 4096, window = 512, agreement_steps = 512, threads = 0;
  bool breakdown = true;
  std::vector<std::string> exclude = {"lm_head"};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Die(arg + " needs a value");
      return argv[++i];
    };
    auto int_value = [&]() {
      const std::string v = value();
      int out = 0;
      if (!absl::SimpleAtoi(v, &out) || out < 0) Die(arg + " expects a non-negative integer, got '" + v + "'");
      return out;
    };
    if (arg == "--model") model = value();
    else if (arg == "--text") text_path = value();
    else if (arg == "--max-tokens") max_tokens = int_value();
    else if (arg == "--window") window = std::max(2, int_value());
    else if (arg == "--agreement-steps") agreement_steps = int_value();
    else if (arg == "--threads") threads = int_value();
    else if (arg == "--no-breakdown") breakdown = false;
    else if (arg == "--exclude") exclude = absl::StrSplit(value(), ',', absl::SkipEmpty());
    else Die("unknown argument " + arg);
  }

  const tandem::model::LoadedModel reference = Load(model, false, {});
  std::unique_ptr<tandem::tokenizer::Tokenizer> tok =
      OrDie(reference.gguf.has_value() ? tandem::tokenizer::Tokenizer::FromGguf(*reference.gguf)
                                       : tandem::tokenizer::Tokenizer::FromModelPath(model));
  const std::string text = OrDie(tandem::ReadFileToString(text_path));
  std::vector<int32_t> tokens = OrDie(tok->Encode(text, /*add_special_tokens=*/false));
  if (tokens.size() > static_cast<size_t>(max_tokens)) tokens.resize(static_cast<size_t>(max_tokens));
  if (tokens.size() < 80) Die(text_path + ": too short (fewer than 80 tokens)");
  auto backend = OrDie(tandem::backend::CreateCpuBackend({.num_threads = threads}));
  const int max_len = std::max(window, 64 + agreement_steps) + 1;

  std::printf("model: %s (%s, %d layers, hidden %d, vocab %d)\n", model.c_str(), reference.config.name.c_str(),
              reference.config.num_layers, reference.config.hidden_size, reference.config.vocab_size);
  std::printf("text: %s, %zu tokens, windows of %d; CPU backend (fp32 compute), %s kernels\n", text_path.c_str(),
              tokens.size(), window, tandem::backend::CpuKernelIsa());

  const auto t0 = std::chrono::steady_clock::now();
  Scorer ref_scorer(backend.get(), reference, max_len);
  const double ppl_ref = Perplexity(ref_scorer, tokens, window);
  const std::vector<int32_t> prompt(tokens.begin(), tokens.begin() + 64);
  const std::vector<int32_t> greedy = ref_scorer.Greedy(prompt, agreement_steps);

  const tandem::model::LoadedModel quantized = Load(model, true, exclude);
  Scorer q_scorer(backend.get(), quantized, max_len);
  const double ppl_q = Perplexity(q_scorer, tokens, window);
  // Teacher-forced agreement over the reference's greedy continuation.
  const std::vector<float> logits = q_scorer.AllLogits(greedy);
  int agree = 0, first_divergence = -1;
  for (int s = 0; s < agreement_steps; ++s) {
    const size_t row = static_cast<size_t>(63 + s);  // the logits that predict greedy[64 + s]
    const int32_t pick = tandem::backend::Argmax(logits.data() + row * static_cast<size_t>(q_scorer.vocab()),
                                                 q_scorer.vocab());
    if (pick == greedy[64 + static_cast<size_t>(s)]) {
      ++agree;
    } else if (first_divergence < 0) {
      first_divergence = s;
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::printf("\n| weights | perplexity | vs reference | greedy top-1 agreement (%d steps) | first divergence |\n",
              agreement_steps);
  std::printf("|---|---|---|---|---|\n");
  std::printf("| model's own (%s) | %.3f | 1.000 | - | - |\n",
              reference.format == tandem::model::LoadFormat::kGguf ? "GGUF, dequantized" : "checkpoint", ppl_ref);
  std::printf("| NVFP4 (excluded: %s) | %.3f | %.3f | %d/%d (%.1f%%) | %s |\n", absl::StrJoin(exclude, ", ").c_str(),
              ppl_q, ppl_q / ppl_ref, agree,
              agreement_steps, 100.0 * agree / std::max(1, agreement_steps),
              first_divergence < 0 ? "none" : absl::StrCat("step ", first_divergence).c_str());
  std::printf("| NVFP4 + FP8 KV | not measured: kv_cache.dtype fp8_e4m3 is not implemented | | | |\n");
  std::printf("(%.1f s)\n", seconds);
  std::fflush(stdout);
  if (!breakdown) return 0;

  // Where the loss comes from: NVFP4 on one kind of linear at a time, then on one group of layers.
  const std::vector<std::string> kinds = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  std::printf("\n| NVFP4 applied to | perplexity | share of the NVFP4 increase |\n|---|---|---|\n");
  auto row = [&](const std::string& what, const std::vector<std::string>& keep) {
    const tandem::model::LoadedModel m = Load(model, true, keep);
    Scorer s(backend.get(), m, max_len);
    const double ppl = Perplexity(s, tokens, window);
    std::printf("| %s | %.3f | %.0f%% |\n", what.c_str(), ppl, 100.0 * (ppl - ppl_ref) / (ppl_q - ppl_ref));
    std::fflush(stdout);
  };
  for (const std::string& kind : kinds) {
    std::vector<std::string> keep = {"lm_head"};
    for (const std::string& other : kinds) {
      if (other != kind) keep.push_back("*." + other);
    }
    row("every " + kind, keep);
  }
  const int layers = reference.config.num_layers;
  const int group = std::max(1, (layers + 5) / 6);
  for (int begin = 0; begin < layers; begin += group) {
    const int end = std::min(layers, begin + group);
    std::vector<std::string> keep = {"lm_head"};
    for (int l = 0; l < layers; ++l) {
      if (l < begin || l >= end) keep.push_back(absl::StrCat("model.layers.", l, ".*"));
    }
    row(absl::StrCat("layers ", begin, "-", end - 1), keep);
  }
  return 0;
}
