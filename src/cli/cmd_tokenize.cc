// `tandem tokenize`: shows what the engine sees — token ids of a text or of a rendered chat, or the
// text of ids — as JSON.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "flags.h"
#include "nlohmann/json.hpp"
#include "tandem/tokenizer/tokenizer.h"

namespace tandem::cli {
namespace {

using tokenizer::TokenId;
using tokenizer::Tokenizer;

const std::vector<FlagSpec>& TokenizeFlags() {
  static const std::vector<FlagSpec> kSpecs = {
      {"model", "model path: a Hugging Face directory (tokenizer.json) or a .gguf file", true, false, "m"},
      {"text", "text to encode (default: read stdin)"},
      {"add-special-tokens", "apply the post-processor (e.g. add BOS)", false},
      {"chat", "JSON file: a messages array, or {\"messages\": [...], \"tools\": ..., other template variables}; "
               "renders the chat template, then encodes"},
      {"no-generation-prompt", "with --chat: render without add_generation_prompt", false},
      {"decode", "decode these ids (\"1,2,3\", \"1 2 3\" or a JSON array) instead of encoding"},
      {"skip-special-tokens", "with --decode: drop special tokens", false},
  };
  return kSpecs;
}

std::string ReadAll(std::istream& in) {
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<std::vector<TokenId>> ParseIds(const std::string& s) {
  std::vector<TokenId> ids;
  std::string cleaned;
  for (char c : s) cleaned.push_back((c == ',' || c == '[' || c == ']') ? ' ' : c);
  std::istringstream in(cleaned);
  std::string word;
  while (in >> word) {
    char* end = nullptr;
    long v = std::strtol(word.c_str(), &end, 10);
    if (end == word.c_str() || *end != '\0' || v < 0 || v > INT32_MAX) {
      return absl::InvalidArgumentError("--decode expects non-negative integer ids, found '" + word + "'");
    }
    ids.push_back(static_cast<TokenId>(v));
  }
  return ids;
}

nlohmann::ordered_json Pieces(const Tokenizer& tok, const std::vector<TokenId>& ids) {
  nlohmann::ordered_json pieces = nlohmann::ordered_json::array();
  for (TokenId id : ids) {
    auto piece = tok.TokenToPiece(id);
    pieces.push_back(piece.ok() ? nlohmann::ordered_json(*piece) : nlohmann::ordered_json(nullptr));
  }
  return pieces;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "tandem tokenize: %s\n", std::string(status.message()).c_str());
  return 1;
}

}  // namespace

int RunTokenize(const Args& args) {
  if (WantsHelp(args)) {
    std::printf("%s", FormatHelp("tandem tokenize --model DIR_OR_GGUF [--text TEXT | stdin] [--add-special-tokens] "
                                 "[--chat FILE.json] [--decode IDS]",
                                 "Print, as JSON, the token ids the engine sees for a text or a chat, or the text "
                                 "of token ids.",
                                 TokenizeFlags())
                          .c_str());
    return 0;
  }
  auto flags = Flags::Parse(args, TokenizeFlags());
  if (!flags.ok()) {
    std::fprintf(stderr, "tandem tokenize: %s\n", std::string(flags.status().message()).c_str());
    return 2;
  }
  if (!flags->Has("model")) {
    std::fprintf(stderr, "tandem tokenize: --model is required\n");
    return 2;
  }
  if (!flags->positional().empty()) {
    std::fprintf(stderr, "tandem tokenize: unexpected argument '%s'\n", flags->positional()[0].c_str());
    return 2;
  }
  const int modes = flags->Has("text") + flags->Has("chat") + flags->Has("decode");
  if (modes > 1) {
    std::fprintf(stderr, "tandem tokenize: give at most one of --text, --chat and --decode\n");
    return 2;
  }
  auto tok = Tokenizer::FromModelPath(flags->Get("model"));
  if (!tok.ok()) return Fail(tok.status());
  const Tokenizer& t = **tok;

  nlohmann::ordered_json out;
  out["model"] = flags->Get("model");
  out["vocab_size"] = t.vocab_size();
  if (flags->Has("decode")) {
    auto ids = ParseIds(flags->Get("decode"));
    if (!ids.ok()) return Fail(ids.status());
    auto text = t.Decode(*ids, flags->Has("skip-special-tokens"));
    if (!text.ok()) return Fail(text.status());
    out["ids"] = *ids;
    out["tokens"] = Pieces(t, *ids);
    out["text"] = *text;
  } else {
    std::string text;
    if (flags->Has("chat")) {
      std::ifstream in(flags->Get("chat"), std::ios::binary);
      if (!in) return Fail(absl::NotFoundError("cannot open " + flags->Get("chat")));
      auto chat = nlohmann::ordered_json::parse(ReadAll(in), nullptr, /*allow_exceptions=*/false);
      if (chat.is_discarded()) return Fail(absl::InvalidArgumentError(flags->Get("chat") + " is not valid JSON"));
      nlohmann::ordered_json messages = chat, vars = nlohmann::ordered_json::object();
      if (chat.is_object()) {
        messages = chat.value("messages", nlohmann::ordered_json::array());
        for (const auto& [k, v] : chat.items()) {
          if (k != "messages" && k != "add_generation_prompt") vars[k] = v;
        }
      }
      bool add_generation_prompt = !flags->Has("no-generation-prompt");
      if (chat.is_object() && chat.contains("add_generation_prompt")) {
        add_generation_prompt = chat["add_generation_prompt"].get<bool>();
      }
      auto rendered = t.ApplyChatTemplate(messages, add_generation_prompt, vars);
      if (!rendered.ok()) return Fail(rendered.status());
      text = *rendered;
      out["prompt"] = text;
    } else if (flags->Has("text")) {
      text = flags->Get("text");
      out["text"] = text;
    } else {
      text = ReadAll(std::cin);
      out["text"] = text;
    }
    auto ids = t.Encode(text, flags->Has("add-special-tokens"));
    if (!ids.ok()) return Fail(ids.status());
    out["count"] = ids->size();
    out["ids"] = *ids;
    out["tokens"] = Pieces(t, *ids);
  }
  std::printf("%s\n", out.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
  return 0;
}

}  // namespace tandem::cli
