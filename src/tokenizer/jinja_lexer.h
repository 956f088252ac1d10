// The lexer of the Jinja2 subset used by chat templates: template source in, tokens out (text,
// tag delimiters with jinja2's whitespace control applied, names, literals, operators), following
// jinja2's lexer.py. The parser (jinja_parser.cc) builds the syntax tree from them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tandem::tokenizer::jinja {

struct Token {
  enum class Type { kText, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEof };
  Type type;
  std::string value;
  int line;
};

// InvalidArgument "chat template line <line>: <what>".
absl::Status SyntaxError(int line, const std::string& what);

// The tokens of `source` (newlines normalized as jinja2 does), ending with kEof.
absl::StatusOr<std::vector<Token>> Lex(std::string_view source);

}  // namespace tandem::tokenizer::jinja
