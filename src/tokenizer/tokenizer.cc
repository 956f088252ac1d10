#include "tandem/tokenizer/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "tandem/core/status.h"
#include "tandem/tokenizer/chat_template.h"
#include "tokenizer_impl.h"

namespace tandem::tokenizer {
namespace {

absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, " is not valid JSON"));
  return j;
}

// tokenizer_config.json writes special tokens as strings or as {"content": ...} objects.
std::string TokenContent(const nlohmann::json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return "";
  const auto& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromHfDir(const std::string& dir) {
  std::string config = dir + "/tokenizer_config.json";
  if (!std::ifstream(config).good()) config.clear();
  return FromFiles(dir + "/tokenizer.json", config);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromFiles(const std::string& tokenizer_json,
                                                                 const std::string& tokenizer_config_json) {
  TANDEM_ASSIGN_OR_RETURN(nlohmann::json tokenizer, ReadJsonFile(tokenizer_json));
  nlohmann::json config = nlohmann::json::object();
  if (!tokenizer_config_json.empty()) {
    TANDEM_ASSIGN_OR_RETURN(config, ReadJsonFile(tokenizer_config_json));
  }
  auto result = FromJson(tokenizer, config);
  if (!result.ok()) return Annotate(result.status(), absl::StrCat("loading ", tokenizer_json));
  return result;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(const nlohmann::json& tokenizer,
                                                               const nlohmann::json& config) {
  auto t = std::unique_ptr<Tokenizer>(new Tokenizer());
  TANDEM_ASSIGN_OR_RETURN(t->impl_, TokenizerImpl::FromJson(tokenizer));
  std::string chat_template;
  if (config.is_object() && config.contains("chat_template")) {
    const auto& ct = config["chat_template"];
    if (ct.is_string()) {
      chat_template = ct.get<std::string>();
    } else if (ct.is_array()) {
      for (const auto& entry : ct) {
        if (entry.value("name", "") == "default") chat_template = entry.value("template", "");
      }
    }
  }
  nlohmann::json specials = nlohmann::json::object();
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
    std::string v = TokenContent(config, key);
    if (!v.empty()) specials[key] = v;
  }
  if (config.is_object() && config.contains("additional_special_tokens")) {
    nlohmann::json extra = nlohmann::json::array();
    for (const auto& v : config["additional_special_tokens"]) {
      if (v.is_string()) extra.push_back(v);
      if (v.is_object() && v.contains("content")) extra.push_back(v["content"]);
    }
    specials["additional_special_tokens"] = extra;
  }
  TANDEM_RETURN_IF_ERROR(t->Configure(specials, chat_template));
  return t;
}

absl::Status Tokenizer::Configure(const nlohmann::json& special_tokens, const std::string& chat_template) {
  template_vars_ = special_tokens;
  bos_token_ = special_tokens.value("bos_token", "");
  eos_token_ = special_tokens.value("eos_token", "");
  bos_id_ = bos_token_.empty() ? -1 : impl_->PieceToId(bos_token_);
  eos_id_ = eos_token_.empty() ? -1 : impl_->PieceToId(eos_token_);
  if (eos_id_ >= 0) stop_ids_.push_back(eos_id_);
  // Chat models end a turn with these; generation stops on them as their generation configs say.
  for (const char* piece : {"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|endoftext|>", "<|end_of_text|>",
                            "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"}) {
    TokenId id = impl_->PieceToId(piece);
    if (id >= 0 && impl_->IsSpecial(id) && std::find(stop_ids_.begin(), stop_ids_.end(), id) == stop_ids_.end()) {
      stop_ids_.push_back(id);
    }
  }
  if (!chat_template.empty()) {
    auto parsed = ChatTemplate::Parse(chat_template);
    if (!parsed.ok()) return Annotate(parsed.status(), "parsing chat_template");
    chat_template_ = std::move(parsed).value();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TokenId>> Tokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  std::vector<TokenId> ids;
  ids.reserve(text.size() / 3 + 4);
  TANDEM_RETURN_IF_ERROR(impl_->Encode(text, add_special_tokens, &ids));
  return ids;
}

absl::StatusOr<std::string> Tokenizer::Decode(const std::vector<TokenId>& ids, bool skip_special_tokens) const {
  return impl_->Decode(ids, skip_special_tokens);
}

absl::StatusOr<std::string> Tokenizer::TokenToPiece(TokenId id) const {
  const std::string* piece = impl_->IdToPiece(id);
  if (piece == nullptr) {
    return absl::OutOfRangeError(absl::StrCat("token id ", id, " is not in the vocabulary (size ", vocab_size(), ")"));
  }
  return *piece;
}

TokenId Tokenizer::PieceToToken(std::string_view piece) const { return impl_->PieceToId(piece); }
bool Tokenizer::IsSpecial(TokenId id) const { return impl_->IsSpecial(id); }
TokenId Tokenizer::bos_id() const { return bos_id_; }
TokenId Tokenizer::eos_id() const { return eos_id_; }
const std::vector<TokenId>& Tokenizer::stop_ids() const { return stop_ids_; }
const std::string& Tokenizer::bos_token() const { return bos_token_; }
const std::string& Tokenizer::eos_token() const { return eos_token_; }
int Tokenizer::vocab_size() const { return impl_->vocab_size(); }
bool Tokenizer::has_chat_template() const { return chat_template_ != nullptr; }

absl::StatusOr<std::string> Tokenizer::ApplyChatTemplate(const nlohmann::json& messages, bool add_generation_prompt,
                                                         const nlohmann::json& extra_vars) const {
  return ApplyChatTemplate(nlohmann::ordered_json::parse(messages.dump()), add_generation_prompt,
                           nlohmann::ordered_json::parse(extra_vars.dump()));
}

absl::StatusOr<std::string> Tokenizer::ApplyChatTemplate(const nlohmann::ordered_json& messages,
                                                         bool add_generation_prompt,
                                                         const nlohmann::ordered_json& extra_vars) const {
  if (chat_template_ == nullptr) return absl::FailedPreconditionError("this tokenizer has no chat template");
  if (!messages.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat("messages must be a JSON array, found ", messages.type_name()));
  }
  // The variables transformers passes: messages, tools, documents, add_generation_prompt and the
  // special tokens map, then the caller's extras.
  nlohmann::ordered_json context = nlohmann::ordered_json::parse(template_vars_.dump());
  context["messages"] = messages;
  context["tools"] = nullptr;
  context["documents"] = nullptr;
  context["add_generation_prompt"] = add_generation_prompt;
  if (extra_vars.is_object()) {
    for (const auto& [k, v] : extra_vars.items()) context[k] = v;
  } else if (!extra_vars.is_null()) {
    return absl::InvalidArgumentError(
        absl::StrCat("extra template variables must be a JSON object, found ", extra_vars.type_name()));
  }
  return chat_template_->Render(context);
}

}  // namespace tandem::tokenizer
