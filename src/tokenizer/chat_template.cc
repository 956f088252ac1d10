#include "tandem/tokenizer/chat_template.h"

#include "jinja_ast.h"
#include "jinja_interpreter.h"
#include "tandem/core/status.h"

namespace tandem::tokenizer {

ChatTemplate::ChatTemplate() = default;
ChatTemplate::~ChatTemplate() = default;

absl::StatusOr<std::unique_ptr<ChatTemplate>> ChatTemplate::Parse(std::string_view source) {
  auto t = std::unique_ptr<ChatTemplate>(new ChatTemplate());
  TANDEM_ASSIGN_OR_RETURN(t->template_, jinja::ParseTemplate(source));
  return t;
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::ordered_json& context) const {
  if (!context.is_object()) return absl::InvalidArgumentError("template context must be a JSON object");
  return jinja::Render(*template_, jinja::Value::FromJson(context));
}

}  // namespace tandem::tokenizer
