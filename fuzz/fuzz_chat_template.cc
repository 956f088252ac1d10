// A chat template (from a model's files) parsed and rendered with a fixed conversation: any text is
// a template or an error naming the line, and rendering ends with text or an error.
#include <string>

#include "nlohmann/json.hpp"
#include "tandem/tokenizer/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string source(reinterpret_cast<const char*>(data), size);
  auto tmpl = tandem::tokenizer::ChatTemplate::Parse(source);
  if (!tmpl.ok()) return 0;
  static const nlohmann::ordered_json context = {
      {"messages", {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi \xc3\xa9"}}}},
      {"add_generation_prompt", true},
      {"bos_token", "<s>"},
      {"eos_token", "</s>"}};
  (void)(*tmpl)->Render(context);
  return 0;
}
