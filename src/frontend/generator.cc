#include "tandem/frontend/generator.h"

#include <filesystem>
#include <iterator>

#include "tandem/tokenizer/tokenizer.h"

namespace tandem::frontend {

const char* FinishReasonName(FinishReason reason) {
  // OpenAI's names, in FinishReason's order.
  static constexpr const char* kNames[] = {"", "stop", "length", "abort", "error"};
  static_assert(std::size(kNames) == static_cast<size_t>(FinishReason::kError) + 1);
  return kNames[static_cast<size_t>(reason)];
}

std::string TokenText(const tokenizer::Tokenizer& tokenizer, int32_t token_id) {
  auto text = tokenizer.Decode({token_id}, /*skip_special_tokens=*/false);
  if (text.ok()) return *std::move(text);
  auto piece = tokenizer.TokenToPiece(token_id);
  return piece.ok() ? *std::move(piece) : std::string();
}

std::string DefaultModelName(const std::string& model_path) {
  std::filesystem::path p(model_path);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();  // trailing slash
  std::string name = p.filename().string();
  if (name.size() > 5 && name.substr(name.size() - 5) == ".gguf") name.resize(name.size() - 5);
  return name.empty() ? "model" : name;
}

}  // namespace tandem::frontend
