// Text <-> token ids, reproducing Hugging Face `tokenizers` (tokenizer.json) and the vocabularies
// embedded in GGUF files. A Tokenizer is immutable after loading and safe to use from many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem::model {
struct GgufMetadata;
}  // namespace tandem::model

namespace tandem::tokenizer {

class TokenizerImpl;
class ChatTemplate;

using TokenId = int32_t;

class Tokenizer {
 public:
  // Loads `dir/tokenizer.json` and, when present, `dir/tokenizer_config.json`.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromHfDir(const std::string& dir);
  // `tokenizer_config_json` may be empty (no chat template, specials from tokenizer.json only).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromFiles(const std::string& tokenizer_json,
                                                              const std::string& tokenizer_config_json);
  // From the parsed contents (no file access).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(const nlohmann::json& tokenizer,
                                                             const nlohmann::json& config);
  // A model path as the deployment file gives it: a `.gguf` file (its embedded vocabulary) or a
  // Hugging Face directory.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromModelPath(const std::string& path);
  // From a GGUF file's tokenizer metadata (`tokenizer.ggml.model` gpt2 or llama).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromGguf(const model::GgufMetadata& metadata);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Text -> ids. `add_special_tokens` applies the post-processor (e.g. a BOS from TemplateProcessing).
  absl::StatusOr<std::vector<TokenId>> Encode(std::string_view text, bool add_special_tokens) const;
  // Ids -> text; invalid UTF-8 is replaced by U+FFFD and ids with no token are skipped, as
  // `tokenizers` does.
  absl::StatusOr<std::string> Decode(const std::vector<TokenId>& ids, bool skip_special_tokens) const;
  // The vocabulary string of one id (e.g. "Ġthe"); an error for an unknown id.
  absl::StatusOr<std::string> TokenToPiece(TokenId id) const;
  // The id of a vocabulary or added-token string, or -1.
  TokenId PieceToToken(std::string_view piece) const;
  bool IsSpecial(TokenId id) const;

  // -1 when the tokenizer has none.
  TokenId bos_id() const;
  TokenId eos_id() const;
  // Ids that end generation: eos plus tokens such as <|eot_id|> / <|im_end|> when known.
  const std::vector<TokenId>& stop_ids() const;
  const std::string& bos_token() const;
  const std::string& eos_token() const;
  // One past the largest id (model vocabulary plus added tokens).
  int vocab_size() const;

  bool has_chat_template() const;
  // Renders the chat template as transformers' apply_chat_template does. `messages` is a JSON array
  // of {"role", "content", ...}; `extra_vars` (an object, may be null) adds variables such as
  // `tools` or `enable_thinking`.
  absl::StatusOr<std::string> ApplyChatTemplate(const nlohmann::json& messages, bool add_generation_prompt,
                                                const nlohmann::json& extra_vars = nullptr) const;
  // The same with insertion-ordered objects: `tojson` in templates (tools, tool-call arguments) then
  // prints keys in the client's order, as Python does. Parse requests into ordered_json to get it.
  absl::StatusOr<std::string> ApplyChatTemplate(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                                const nlohmann::ordered_json& extra_vars) const;

  const TokenizerImpl& impl() const { return *impl_; }

 private:
  Tokenizer();
  // Special-token strings (bos_token, eos_token, ... as tokenizer_config.json names them) and the template.
  absl::Status Configure(const nlohmann::json& special_tokens, const std::string& chat_template);

  std::unique_ptr<TokenizerImpl> impl_;
  nlohmann::json template_vars_;
  std::unique_ptr<ChatTemplate> chat_template_;
  std::string bos_token_;
  std::string eos_token_;
  TokenId bos_id_ = -1;
  TokenId eos_id_ = -1;
  std::vector<TokenId> stop_ids_;
};

}  // namespace tandem::tokenizer
