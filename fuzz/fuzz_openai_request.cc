// An OpenAI request body (completions and chat): any bytes give a request or an API error, and the
// error serializes (invalid UTF-8 included).
#include <string>
#include <variant>

#include "tandem/frontend/openai_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto kind = (data[0] & 1) ? tandem::frontend::ApiKind::kChat : tandem::frontend::ApiKind::kCompletion;
  auto r = tandem::frontend::ParseOpenAiRequest(kind, body);
  if (auto* error = std::get_if<tandem::frontend::ApiError>(&r)) (void)error->Body();
  return 0;
}
