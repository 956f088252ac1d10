#include "tandem/bench/workload.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace tandem::bench {
namespace {

using json = nlohmann::json;
using tokenizer::TokenId;
using tokenizer::Tokenizer;

// Replaces invalid UTF-8 (random byte tokens decode to partial sequences) with U+FFFD, so the
// prompt is valid JSON text.
std::string ValidUtf8(const std::string& s) {
  const std::string dumped = json(s).dump(-1, ' ', false, json::error_handler_t::replace);
  return json::parse(dumped).get<std::string>();
}

absl::StatusOr<int64_t> CountTokens(const Tokenizer& tok, const std::string& text) {
  auto ids = tok.Encode(text, /*add_special_tokens=*/false);
  if (!ids.ok()) return ids.status();
  return static_cast<int64_t>(ids->size());
}

absl::Status Invalid(const std::string& spec, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(
      "length '", spec, "': expected N, uniform:MIN:MAX or normal:MEAN:STDDEV (positive), ", why));
}

}  // namespace

absl::StatusOr<LengthDist> LengthDist::Parse(const std::string& spec) {
  LengthDist d;
  d.spec = std::string(spec);
  std::vector<std::string> parts = absl::StrSplit(spec, ':');
  std::vector<double> values;
  for (size_t i = parts[0] == "uniform" || parts[0] == "normal" || parts[0] == "fixed" ? 1 : 0;
       i < parts.size(); ++i) {
    double v = 0;
    if (!absl::SimpleAtod(parts[i], &v) || !std::isfinite(v))
      return Invalid(spec, absl::StrCat("found '", parts[i], "'"));
    values.push_back(v);
  }
  if (parts[0] == "uniform") {
    if (values.size() != 2) return Invalid(spec, "uniform takes MIN:MAX");
    d.kind = Kind::kUniform;
    d.a = values[0];
    d.b = values[1];
    if (d.a < 1 || d.b < d.a) return Invalid(spec, "found MIN < 1 or MAX < MIN");
  } else if (parts[0] == "normal") {
    if (values.size() != 2) return Invalid(spec, "normal takes MEAN:STDDEV");
    d.kind = Kind::kNormal;
    d.a = values[0];
    d.b = values[1];
    if (d.a < 1 || d.b < 0) return Invalid(spec, "found MEAN < 1 or STDDEV < 0");
  } else {
    if (values.size() != 1) return Invalid(spec, "a fixed length is one number");
    d.a = values[0];
    if (d.a < 1) return Invalid(spec, "found a value below 1");
  }
  return d;
}

int64_t LengthDist::Sample(std::mt19937_64& rng) const {
  switch (kind) {
    case Kind::kFixed:
      return static_cast<int64_t>(std::llround(a));
    case Kind::kUniform:
      return std::uniform_int_distribution<int64_t>(std::llround(a), std::llround(b))(rng);
    case Kind::kNormal:
      return std::max<int64_t>(1, std::llround(std::normal_distribution<double>(a, b)(rng)));
  }
  return 1;
}

int64_t LengthDist::Max() const {
  switch (kind) {
    case Kind::kFixed:
      return std::llround(a);
    case Kind::kUniform:
      return std::llround(b);
    case Kind::kNormal:
      return std::llround(a + 4 * b);
  }
  return 1;
}

absl::StatusOr<WorkloadKind> ParseWorkloadKind(const std::string& name) {
  if (name == "synthetic") return WorkloadKind::kSynthetic;
  if (name == "sharegpt") return WorkloadKind::kShareGpt;
  if (name == "prefix") return WorkloadKind::kPrefix;
  if (name == "long") return WorkloadKind::kLong;
  return absl::InvalidArgumentError(
      absl::StrCat("--workload: expected synthetic, sharegpt, prefix or long, found '", name, "'"));
}

const char* WorkloadKindName(WorkloadKind kind) {
  switch (kind) {
    case WorkloadKind::kSynthetic:
      return "synthetic";
    case WorkloadKind::kShareGpt:
      return "sharegpt";
    case WorkloadKind::kPrefix:
      return "prefix";
    case WorkloadKind::kLong:
      return "long";
  }
  return "?";
}

absl::StatusOr<std::string> RandomText(const Tokenizer& tok, int64_t num_tokens, std::mt19937_64& rng,
                                       int64_t* actual) {
  const int vocab = tok.vocab_size();
  if (vocab <= 0) return absl::FailedPreconditionError("the tokenizer has an empty vocabulary");
  std::uniform_int_distribution<TokenId> pick(0, vocab - 1);
  auto random_ids = [&](int64_t n, std::vector<TokenId>* out) {
    while (n > 0) {
      const TokenId id = pick(rng);
      if (tok.IsSpecial(id)) continue;
      out->push_back(id);
      --n;
    }
  };
  std::vector<TokenId> ids;
  random_ids(num_tokens, &ids);
  std::string text;
  int64_t best_diff = INT64_MAX;
  std::string best;
  int64_t best_count = 0;
  // Decoding then encoding merges or splits tokens at their boundaries; a few rounds of trimming
  // or topping up the re-encoded ids land on the exact count.
  for (int round = 0; round < 32; ++round) {
    auto decoded = tok.Decode(ids, /*skip_special_tokens=*/true);
    if (!decoded.ok()) return decoded.status();
    text = ValidUtf8(*decoded);
    auto encoded = tok.Encode(text, /*add_special_tokens=*/false);
    if (!encoded.ok()) return encoded.status();
    const int64_t count = static_cast<int64_t>(encoded->size());
    if (std::llabs(count - num_tokens) < best_diff) {
      best_diff = std::llabs(count - num_tokens);
      best = text;
      best_count = count;
    }
    if (count == num_tokens) break;
    ids = std::move(*encoded);
    if (count > num_tokens) {
      ids.resize(static_cast<size_t>(num_tokens));
    } else {
      random_ids(num_tokens - count, &ids);
    }
  }
  *actual = best_count;
  return best;
}

namespace {

absl::StatusOr<std::vector<BenchPrompt>> ShareGpt(const WorkloadSpec& spec, const Tokenizer& tok,
                                                  std::mt19937_64& rng) {
  std::ifstream in(spec.dataset_path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("--dataset ", spec.dataset_path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  json data = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (data.is_discarded() || !data.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--dataset ", spec.dataset_path,
        ": expected a ShareGPT JSON array of {\"conversations\": [{\"from\", \"value\"}, ...]}"));
  }
  std::vector<std::pair<std::string, std::string>> pairs;  // first human turn, the answer
  for (const json& entry : data) {
    if (!entry.is_object() || !entry.contains("conversations") || !entry["conversations"].is_array())
      continue;
    const json& turns = entry["conversations"];
    if (turns.size() < 2 || !turns[0].is_object() || !turns[1].is_object()) continue;
    if (!turns[0].contains("value") || !turns[1].contains("value") || !turns[0]["value"].is_string() ||
        !turns[1]["value"].is_string()) {
      continue;
    }
    pairs.emplace_back(turns[0]["value"].get<std::string>(), turns[1]["value"].get<std::string>());
  }
  if (pairs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--dataset ", spec.dataset_path, ": no conversation with two turns (expected ShareGPT format)"));
  }
  std::shuffle(pairs.begin(), pairs.end(), rng);
  std::vector<BenchPrompt> out;
  for (size_t i = 0; static_cast<int64_t>(out.size()) < spec.num_requests && i < pairs.size() * 4; ++i) {
    const auto& [prompt, answer] = pairs[i % pairs.size()];
    auto in_tokens = CountTokens(tok, prompt);
    if (!in_tokens.ok()) return in_tokens.status();
    BenchPrompt p;
    p.prompt = prompt;
    p.input_tokens = *in_tokens;
    if (spec.output_len_given) {
      p.output_tokens = spec.output_len.Sample(rng);
    } else {
      auto out_tokens = CountTokens(tok, answer);
      if (!out_tokens.ok()) return out_tokens.status();
      p.output_tokens = *out_tokens;
    }
    // As vLLM's ShareGPT sampler: skip prompts or answers too short to time.
    if (p.input_tokens < 4 || p.output_tokens < 4) continue;
    out.push_back(std::move(p));
  }
  if (out.empty())
    return absl::InvalidArgumentError(
        absl::StrCat("--dataset ", spec.dataset_path, ": every conversation is shorter than 4 tokens"));
  // Fewer usable conversations than requests: the ones found repeat (the record says how many).
  for (size_t i = 0; static_cast<int64_t>(out.size()) < spec.num_requests; ++i) out.push_back(out[i]);
  return out;
}

}  // namespace

absl::StatusOr<std::vector<BenchPrompt>> MakeWorkload(const WorkloadSpec& spec, const Tokenizer& tok) {
  if (spec.num_requests < 1) return absl::InvalidArgumentError("--num-requests: expected at least 1");
  std::mt19937_64 rng(spec.seed);
  if (spec.kind == WorkloadKind::kShareGpt) return ShareGpt(spec, tok, rng);

  std::vector<std::string> prefixes;
  if (spec.kind == WorkloadKind::kPrefix) {
    if (spec.prefix_len < 1 || spec.num_prefixes < 1) {
      return absl::InvalidArgumentError("--prefix-len and --num-prefixes: expected at least 1");
    }
    for (int64_t i = 0; i < spec.num_prefixes; ++i) {
      int64_t actual = 0;
      auto text = RandomText(tok, spec.prefix_len, rng, &actual);
      if (!text.ok()) return text.status();
      prefixes.push_back(*text);
    }
  }
  if (spec.kind == WorkloadKind::kLong && (spec.long_fraction < 0 || spec.long_fraction > 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--long-fraction: expected 0 to 1, found ", spec.long_fraction));
  }
  std::bernoulli_distribution is_long(spec.kind == WorkloadKind::kLong ? spec.long_fraction : 0.0);
  std::vector<BenchPrompt> out;
  out.reserve(static_cast<size_t>(spec.num_requests));
  for (int64_t i = 0; i < spec.num_requests; ++i) {
    BenchPrompt p;
    const LengthDist& dist = is_long(rng) ? spec.long_input_len : spec.input_len;
    const int64_t want = dist.Sample(rng);
    p.output_tokens = spec.output_len.Sample(rng);
    int64_t actual = 0;
    auto text = RandomText(tok, want, rng, &actual);
    if (!text.ok()) return text.status();
    p.prompt = *text;
    p.input_tokens = actual;
    if (!prefixes.empty()) {
      p.prefix_id =
          static_cast<int32_t>(std::uniform_int_distribution<int64_t>(0, spec.num_prefixes - 1)(rng));
      p.prompt = prefixes[static_cast<size_t>(p.prefix_id)] + "\n\n" + p.prompt;
      auto count = CountTokens(tok, p.prompt);
      if (!count.ok()) return count.status();
      p.input_tokens = *count;
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace tandem::bench
