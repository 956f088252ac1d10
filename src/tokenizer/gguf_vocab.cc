// Tokenizer::FromGguf: the vocabularies llama.cpp embeds in GGUF files. `gpt2` vocabularies become the
// byte-level BPE pipeline their tokenizer.json would describe (pre-tokenizer chosen by
// tokenizer.ggml.pre); `llama` vocabularies become a sentencepiece-style BPE over scores with
// byte fallback.
#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "bpe_model.h"
#include "decoder.h"
#include "normalizer.h"
#include "pre_tokenizer.h"
#include "tandem/core/status.h"
#include "tandem/model/gguf.h"
#include "tandem/tokenizer/tokenizer.h"
#include "tokenizer_impl.h"

namespace tandem::tokenizer {
namespace {

constexpr int kTypeControl = 3;
constexpr int kTypeUserDefined = 4;

const char kLlama3Pattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char kQwen2Pattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Punctuation and letter runs of DeepSeek-V3 (its tokenizer.json's third Split).
const char kDeepSeekV3Pattern[] =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";

nlohmann::json SplitJson(const std::string& regex) {
  return {{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}};
}

// The pre-tokenizer (and normalizer) of a gpt2-kind vocabulary, by tokenizer.ggml.pre.
absl::Status Gpt2Pipeline(const std::string& pre, nlohmann::json* pre_tokenizer, nlohmann::json* normalizer) {
  const nlohmann::json byte_level_regex = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  const nlohmann::json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
  *normalizer = nullptr;
  if (pre.empty() || pre == "default" || pre == "gpt2" || pre == "gpt-2") {
    *pre_tokenizer = byte_level_regex;
  } else if (pre == "smollm") {
    *pre_tokenizer = {{"type", "Sequence"},
                      {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level_regex}}};
  } else if (pre == "llama-bpe" || pre == "llama3") {
    *pre_tokenizer = {{"type", "Sequence"}, {"pretokenizers", {SplitJson(kLlama3Pattern), byte_level}}};
  } else if (pre == "deepseek-v3") {
    *pre_tokenizer = {{"type", "Sequence"},
                      {"pretokenizers",
                       {SplitJson(R"(\p{N}{1,3})"),
                        SplitJson("[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"),
                        SplitJson(kDeepSeekV3Pattern), byte_level}}};
  } else if (pre == "qwen2") {
    *pre_tokenizer = {{"type", "Sequence"}, {"pretokenizers", {SplitJson(kQwen2Pattern), byte_level}}};
    *normalizer = {{"type", "NFC"}};
  } else {
    return absl::UnimplementedError(absl::StrCat("GGUF tokenizer.ggml.pre '", pre,
                                                 "' is not supported (supported: default, gpt2, smollm, "
                                                 "llama-bpe, qwen2)"));
  }
  return absl::OkStatus();
}

absl::Status CheckId(const model::GgufMetadata& m, int32_t id, const char* what) {
  if (id < -1 || id >= static_cast<int32_t>(m.tokens.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF ", what, " ", id, " is outside the vocabulary of ", m.tokens.size(), " tokens"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const model::GgufMetadata& m) {
  if (m.tokens.empty()) return absl::InvalidArgumentError("GGUF tokenizer.ggml.tokens is empty");
  if (!m.token_types.empty() && m.token_types.size() != m.tokens.size()) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF token_type has ", m.token_types.size(),
                                                   " entries for ", m.tokens.size(), " tokens"));
  }
  TANDEM_RETURN_IF_ERROR(CheckId(m, m.bos_token_id, "bos_token_id"));
  TANDEM_RETURN_IF_ERROR(CheckId(m, m.eos_token_id, "eos_token_id"));
  TANDEM_RETURN_IF_ERROR(CheckId(m, m.unk_token_id, "unknown_token_id"));
  TANDEM_RETURN_IF_ERROR(CheckId(m, m.pad_token_id, "padding_token_id"));
  TANDEM_RETURN_IF_ERROR(CheckId(m, m.eot_token_id, "eot_token_id"));

  PipelineParts parts;
  for (size_t id = 0; id < m.token_types.size(); ++id) {
    const int type = m.token_types[id];
    if (type != kTypeControl && type != kTypeUserDefined) continue;
    AddedToken a;
    a.content = m.tokens[id];
    a.id = static_cast<TokenId>(id);
    a.special = type == kTypeControl;
    a.normalized = false;
    parts.added_tokens.push_back(std::move(a));
  }
  bool add_bos = false;
  if (m.tokenizer_model == "gpt2") {
    nlohmann::json pre, norm;
    TANDEM_RETURN_IF_ERROR(Gpt2Pipeline(m.tokenizer_pre, &pre, &norm));
    TANDEM_ASSIGN_OR_RETURN(parts.normalizer, ParseNormalizer(norm));
    TANDEM_ASSIGN_OR_RETURN(parts.pre_tokenizer, ParsePreTokenizer(pre));
    TANDEM_ASSIGN_OR_RETURN(parts.decoder, ParseDecoder({{"type", "ByteLevel"}}));
    std::vector<std::pair<std::string, std::string>> merges;
    merges.reserve(m.merges.size());
    for (const auto& merge : m.merges) {
      size_t space = merge.find(' ', 1);
      if (space == std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("GGUF merge '", merge, "' is not two tokens"));
      }
      merges.emplace_back(merge.substr(0, space), merge.substr(space + 1));
    }
    BpeOptions options;
    options.byte_level = true;
    TANDEM_ASSIGN_OR_RETURN(parts.model, BpeModel::Create(m.tokens, merges, options));
    add_bos = m.add_bos_token.value_or(false);
  } else if (m.tokenizer_model == "llama") {
    // Sentencepiece: spaces become "▁" with one prepended; unknown characters fall back to <0xNN>.
    TANDEM_ASSIGN_OR_RETURN(parts.normalizer,
                            ParseNormalizer({{"type", "Sequence"},
                                             {"normalizers",
                                              {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
                                               {{"type", "Replace"},
                                                {"pattern", {{"String", " "}}},
                                                {"content", "\xE2\x96\x81"}}}}}));
    TANDEM_ASSIGN_OR_RETURN(
        parts.decoder,
        ParseDecoder({{"type", "Sequence"},
                      {"decoders",
                       {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
                        {{"type", "ByteFallback"}},
                        {{"type", "Fuse"}},
                        {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}));
    BpeOptions options;
    options.byte_fallback = true;
    if (m.unk_token_id >= 0) options.unk_token = m.tokens[m.unk_token_id];
    std::vector<float> scores = m.scores;
    if (scores.empty()) scores.assign(m.tokens.size(), 0.0f);
    // Control and byte tokens never come out of merges.
    std::vector<std::string> vocab = m.tokens;
    TANDEM_ASSIGN_OR_RETURN(parts.model, BpeModel::CreateFromScores(vocab, scores, options));
    add_bos = m.add_bos_token.value_or(true);
  } else {
    return absl::UnimplementedError(absl::StrCat("GGUF tokenizer.ggml.model '", m.tokenizer_model,
                                                 "' is not supported (supported: gpt2, llama)"));
  }
  if (add_bos && m.bos_token_id >= 0) parts.prefix_ids.push_back(m.bos_token_id);
  if (m.add_eos_token.value_or(false) && m.eos_token_id >= 0) parts.suffix_ids.push_back(m.eos_token_id);

  auto t = std::unique_ptr<Tokenizer>(new Tokenizer());
  TANDEM_ASSIGN_OR_RETURN(t->impl_, TokenizerImpl::FromParts(std::move(parts)));
  nlohmann::json specials = nlohmann::json::object();
  auto name = [&](int32_t id) { return id >= 0 ? m.tokens[id] : std::string(); };
  if (m.bos_token_id >= 0) specials["bos_token"] = name(m.bos_token_id);
  if (m.eos_token_id >= 0) specials["eos_token"] = name(m.eos_token_id);
  if (m.unk_token_id >= 0) specials["unk_token"] = name(m.unk_token_id);
  if (m.pad_token_id >= 0) specials["pad_token"] = name(m.pad_token_id);
  TANDEM_RETURN_IF_ERROR(t->Configure(specials, m.chat_template));
  if (m.eot_token_id >= 0 &&
      std::find(t->stop_ids_.begin(), t->stop_ids_.end(), m.eot_token_id) == t->stop_ids_.end()) {
    t->stop_ids_.push_back(m.eot_token_id);
  }
  return t;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromModelPath(const std::string& path) {
  const std::string suffix = ".gguf";
  if (path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0) {
    TANDEM_ASSIGN_OR_RETURN(auto file, model::GgufFile::Open(path));
    TANDEM_ASSIGN_OR_RETURN(auto metadata, model::ReadGgufMetadata(*file));
    auto tok = FromGguf(metadata);
    if (!tok.ok()) return Annotate(tok.status(), absl::StrCat("loading the tokenizer of ", path));
    return tok;
  }
  return FromHfDir(path);
}

}  // namespace tandem::tokenizer
