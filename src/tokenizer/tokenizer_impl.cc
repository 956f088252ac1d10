#include "tokenizer_impl.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "tandem/core/status.h"
#include "utf8.h"

namespace tandem::tokenizer {
namespace {

// Ids of one special token named in a post-processor.
absl::StatusOr<std::vector<TokenId>> TemplateSpecialIds(const nlohmann::json& specials, const std::string& name) {
  if (!specials.contains(name)) {
    return absl::InvalidArgumentError(absl::StrCat("TemplateProcessing names special token '", name,
                                                   "' that is not in its special_tokens"));
  }
  std::vector<TokenId> ids;
  for (const auto& id : specials[name].at("ids")) ids.push_back(id.get<TokenId>());
  return ids;
}

absl::Status ParsePostProcessor(const nlohmann::json& j, PipelineParts* parts) {
  if (j.is_null()) return absl::OkStatus();
  const std::string type = j.value("type", "");
  if (type == "ByteLevel") return absl::OkStatus();  // only adjusts offsets
  if (type == "TemplateProcessing") {
    bool seen_sequence = false;
    for (const auto& item : j.at("single")) {
      if (item.contains("Sequence")) {
        seen_sequence = true;
      } else if (item.contains("SpecialToken")) {
        TANDEM_ASSIGN_OR_RETURN(auto ids, TemplateSpecialIds(j.at("special_tokens"),
                                                            item["SpecialToken"].at("id").get<std::string>()));
        auto& dst = seen_sequence ? parts->suffix_ids : parts->prefix_ids;
        dst.insert(dst.end(), ids.begin(), ids.end());
      } else {
        return absl::InvalidArgumentError(absl::StrCat("unexpected TemplateProcessing item ", item.dump()));
      }
    }
    return absl::OkStatus();
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    parts->prefix_ids.push_back(j.at("cls").at(1).get<TokenId>());
    parts->suffix_ids.push_back(j.at("sep").at(1).get<TokenId>());
    return absl::OkStatus();
  }
  if (type == "Sequence") {
    for (const auto& p : j.at("processors")) TANDEM_RETURN_IF_ERROR(ParsePostProcessor(p, parts));
    return absl::OkStatus();
  }
  return absl::UnimplementedError(absl::StrCat("unsupported post_processor type '", type,
                                               "' (supported: ByteLevel, TemplateProcessing, BertProcessing, "
                                               "RobertaProcessing, Sequence)"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<TokenizerImpl>> TokenizerImpl::FromJson(const nlohmann::json& tokenizer) {
  PipelineParts parts;
  TANDEM_ASSIGN_OR_RETURN(parts.normalizer, ParseNormalizer(tokenizer.value("normalizer", nlohmann::json())));
  TANDEM_ASSIGN_OR_RETURN(parts.pre_tokenizer,
                          ParsePreTokenizer(tokenizer.value("pre_tokenizer", nlohmann::json())));
  const bool byte_level = parts.pre_tokenizer != nullptr && parts.pre_tokenizer->byte_level();
  if (!tokenizer.contains("model")) return absl::InvalidArgumentError("tokenizer.json has no \"model\"");
  TANDEM_ASSIGN_OR_RETURN(parts.model, BpeModel::FromJson(tokenizer["model"], byte_level));
  TANDEM_ASSIGN_OR_RETURN(parts.decoder, ParseDecoder(tokenizer.value("decoder", nlohmann::json())));
  TANDEM_RETURN_IF_ERROR(ParsePostProcessor(tokenizer.value("post_processor", nlohmann::json()), &parts));
  if (tokenizer.contains("added_tokens")) {
    for (const auto& t : tokenizer["added_tokens"]) {
      AddedToken a;
      a.content = t.at("content").get<std::string>();
      a.id = t.at("id").get<TokenId>();
      a.single_word = t.value("single_word", false);
      a.lstrip = t.value("lstrip", false);
      a.rstrip = t.value("rstrip", false);
      a.normalized = t.value("normalized", !t.value("special", false));
      a.special = t.value("special", false);
      parts.added_tokens.push_back(std::move(a));
    }
  }
  return FromParts(std::move(parts));
}

absl::StatusOr<std::unique_ptr<TokenizerImpl>> TokenizerImpl::FromParts(PipelineParts parts) {
  if (parts.model == nullptr) return absl::InvalidArgumentError("a tokenizer needs a model");
  auto impl = std::unique_ptr<TokenizerImpl>(new TokenizerImpl());
  impl->p_ = std::move(parts);
  TANDEM_RETURN_IF_ERROR(impl->Init());
  return impl;
}

absl::Status TokenizerImpl::Init() {
  vocab_size_ = p_.model->vocab_size();
  std::vector<std::string> raw_patterns, norm_patterns;
  std::vector<const AddedToken*> raw_tokens, norm_tokens;
  for (size_t i = 0; i < p_.added_tokens.size(); ++i) {
    const AddedToken& t = p_.added_tokens[i];
    if (t.id < 0) return absl::InvalidArgumentError(absl::StrCat("added token '", t.content, "' has id ", t.id));
    added_by_id_[t.id] = i;
    added_by_content_.try_emplace(t.content, i);
    vocab_size_ = std::max(vocab_size_, t.id + 1);
    if (t.normalized && p_.normalizer != nullptr) {
      norm_patterns.push_back(p_.normalizer->Normalize(t.content));
      norm_tokens.push_back(&t);
    } else if (t.normalized) {
      norm_patterns.push_back(t.content);
      norm_tokens.push_back(&t);
    } else {
      raw_patterns.push_back(t.content);
      raw_tokens.push_back(&t);
    }
  }
  raw_matcher_.Build(raw_patterns, raw_tokens);
  normalized_matcher_.Build(norm_patterns, norm_tokens);
  return absl::OkStatus();
}

void TokenizerImpl::EncodeSegment(std::string_view text, bool at_start, std::vector<TokenId>* out) const {
  if (text.empty()) return;
  std::vector<PreToken> pieces;
  pieces.push_back(PreToken{std::string(text), at_start});
  if (p_.pre_tokenizer != nullptr) p_.pre_tokenizer->PreTokenize(&pieces);
  for (const auto& piece : pieces) p_.model->Tokenize(piece.text, out);
}

absl::Status TokenizerImpl::Encode(std::string_view text, bool add_special_tokens, std::vector<TokenId>* out) const {
  if (!IsValidUtf8(text)) return absl::InvalidArgumentError("text to encode is not valid UTF-8");
  if (add_special_tokens) out->insert(out->end(), p_.prefix_ids.begin(), p_.prefix_ids.end());
  // Added tokens that match the raw text split it first; every other part is normalized, then split
  // again on the normalized added tokens, then pre-tokenized and run through the model.
  auto encode_raw_part = [&](size_t begin, size_t end) {
    if (end <= begin) return;
    std::string_view part = text.substr(begin, end - begin);
    if (p_.normalizer == nullptr && normalized_matcher_.empty()) {
      EncodeSegment(part, begin == 0, out);
      return;
    }
    std::string normalized = p_.normalizer ? p_.normalizer->Normalize(std::string(part)) : std::string(part);
    size_t prev = 0;
    for (const auto& m : normalized_matcher_.FindMatches(normalized)) {
      EncodeSegment(std::string_view(normalized).substr(prev, m.start - prev), begin == 0 && prev == 0, out);
      out->push_back(m.id);
      prev = m.end;
    }
    EncodeSegment(std::string_view(normalized).substr(prev), begin == 0 && prev == 0, out);
  };
  size_t prev = 0;
  for (const auto& m : raw_matcher_.FindMatches(text)) {
    encode_raw_part(prev, m.start);
    out->push_back(m.id);
    prev = m.end;
  }
  encode_raw_part(prev, text.size());
  if (add_special_tokens) out->insert(out->end(), p_.suffix_ids.begin(), p_.suffix_ids.end());
  return absl::OkStatus();
}

const std::string* TokenizerImpl::IdToPiece(TokenId id) const {
  auto it = added_by_id_.find(id);
  if (it != added_by_id_.end()) return &p_.added_tokens[it->second].content;
  const std::string& t = p_.model->IdToToken(id);
  return t.empty() ? nullptr : &t;
}

TokenId TokenizerImpl::PieceToId(std::string_view piece) const {
  auto it = added_by_content_.find(absl::string_view(piece.data(), piece.size()));
  if (it != added_by_content_.end()) return p_.added_tokens[it->second].id;
  return p_.model->TokenToId(piece);
}

bool TokenizerImpl::IsSpecial(TokenId id) const {
  auto it = added_by_id_.find(id);
  return it != added_by_id_.end() && p_.added_tokens[it->second].special;
}

std::string TokenizerImpl::Decode(const std::vector<TokenId>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (TokenId id : ids) {
    if (skip_special_tokens && IsSpecial(id)) continue;
    const std::string* piece = IdToPiece(id);
    if (piece != nullptr) tokens.push_back(*piece);
  }
  if (p_.decoder != nullptr) tokens = p_.decoder->DecodeChain(std::move(tokens));
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

}  // namespace tandem::tokenizer
