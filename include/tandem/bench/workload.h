// The requests a benchmark sends, made up front and deterministically from a seed:
//  - synthetic: prompts of random tokens whose length follows a distribution, token-exact through
//    the model's tokenizer (decode random ids, re-encode, trim or extend until the count matches);
//  - sharegpt: the first human turn of each conversation in a ShareGPT-format JSON file, asking for
//    as many tokens as the recorded answer had (or --output-len);
//  - prefix: every prompt starts with one of `num_prefixes` shared system prompts of `prefix_len`
//    tokens, then a synthetic suffix (what a prefix cache and a kv-aware router are for);
//  - long: synthetic prompts, of which `long_fraction` are drawn from the long-prompt distribution
//    (long prefills interfering with running decodes).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "tandem/tokenizer/tokenizer.h"

namespace tandem::bench {

// A length distribution: "N" (fixed), "uniform:MIN:MAX" (inclusive), "normal:MEAN:STDDEV" (rounded,
// at least 1).
struct LengthDist {
  enum class Kind { kFixed, kUniform, kNormal };
  Kind kind = Kind::kFixed;
  double a = 0;      // fixed: the value; uniform: min; normal: mean
  double b = 0;      // uniform: max; normal: stddev
  std::string spec;  // as given, for the record

  static absl::StatusOr<LengthDist> Parse(const std::string& spec);
  int64_t Sample(std::mt19937_64& rng) const;
  int64_t Max() const;  // the largest value it can take (normal: mean + 4 stddev)
};

enum class WorkloadKind { kSynthetic, kShareGpt, kPrefix, kLong };
absl::StatusOr<WorkloadKind> ParseWorkloadKind(const std::string& name);
const char* WorkloadKindName(WorkloadKind kind);

struct WorkloadSpec {
  WorkloadKind kind = WorkloadKind::kSynthetic;
  int64_t num_requests = 100;
  uint64_t seed = 0;
  LengthDist input_len;  // synthetic, prefix (the suffix), long (the short ones)
  LengthDist output_len;
  bool output_len_given = true;  // sharegpt: false → the recorded answer's length
  std::string dataset_path;      // sharegpt
  int64_t prefix_len = 1024;     // prefix
  int64_t num_prefixes = 4;
  LengthDist long_input_len;  // long
  double long_fraction = 0.1;
};

struct BenchPrompt {
  std::string prompt;         // text (chat: the user message's content)
  int64_t input_tokens = 0;   // its tokens, as the tokenizer counts them (no special tokens)
  int64_t output_tokens = 0;  // max_tokens to ask for
  int32_t prefix_id = -1;     // prefix workload: which shared prefix
};

// `tokenizer` counts and makes tokens; required for every kind.
absl::StatusOr<std::vector<BenchPrompt>> MakeWorkload(const WorkloadSpec& spec,
                                                      const tokenizer::Tokenizer& tokenizer);

// Text of exactly `num_tokens` tokens when the tokenizer allows it (else the nearest found; the
// count it has is returned in *actual).
absl::StatusOr<std::string> RandomText(const tokenizer::Tokenizer& tokenizer, int64_t num_tokens,
                                       std::mt19937_64& rng, int64_t* actual);

}  // namespace tandem::bench
