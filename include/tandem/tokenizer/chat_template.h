// Chat templates: a Jinja2 interpreter covering what real `chat_template`s use, rendering as
// transformers' apply_chat_template does (trim_blocks, lstrip_blocks, raise_exception, tojson,
// strftime_now, loop controls).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem::tokenizer {

namespace jinja {
struct Template;
}  // namespace jinja

class ChatTemplate {
 public:
  // An unsupported construct is an InvalidArgument error naming the line and the construct.
  static absl::StatusOr<std::unique_ptr<ChatTemplate>> Parse(std::string_view source);
  ~ChatTemplate();

  // `context` is a JSON object of the template's variables (messages, add_generation_prompt, ...);
  // ordered_json keeps key order, which `tojson` output depends on.
  // Errors (raise_exception, type errors, undefined attributes of undefined values) are
  // InvalidArgument errors naming the line.
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& context) const;

 private:
  ChatTemplate();
  std::unique_ptr<jinja::Template> template_;
};

}  // namespace tandem::tokenizer
