// Syntax tree of a parsed Jinja2 template.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "jinja_value.h"

namespace tandem::tokenizer::jinja {

struct Expr;
using ExprPtr = std::shared_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,   // value
    kName,      // name
    kAttr,      // args[0].name
    kItem,      // args[0][args[1]]
    kSlice,     // args[0][args[1]:args[2]:args[3]] (null parts omitted)
    kCall,      // args[0](args[1..], kwargs)
    kFilter,    // args[0] | name(args[1..], kwargs)
    kTest,      // args[0] is [not] name(args[1..])
    kNot,       // not args[0]
    kNeg,       // -args[0]
    kPos,       // +args[0]
    kBinary,    // args[0] op args[1]: + - * / // % ** ~
    kAnd,       // args[0] and args[1]
    kOr,        // args[0] or args[1]
    kCompare,   // args[0] ops[0] args[1] ops[1] args[2] ... (==, !=, <, <=, >, >=, in, notin)
    kCond,      // args[0] if args[1] else args[2] (args[2] may be null)
    kList,      // [args...]
    kTuple,     // (args...)
    kDict,      // {args[0]: args[1], ...}
  };
  Kind kind = Kind::kLiteral;
  int line = 0;
  Value value;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
  bool negated = false;
};

struct Node;
using NodePtr = std::shared_ptr<Node>;
using Body = std::vector<NodePtr>;

struct Node {
  enum class Kind {
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // conds[i] -> bodies[i], else_body
    kFor,       // for targets in expr [if filter]: bodies[0] else else_body
    kSet,       // targets = expr, or namespace attribute: targets[0].attr = expr
    kSetBlock,  // {% set targets[0] %}bodies[0]{% endset %}
    kMacro,     // macro name(params = defaults): bodies[0]
    kBreak,
    kContinue,
    kScope,     // a block rendered in place ({% generation %})
  };
  Kind kind = Kind::kText;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;
  std::vector<ExprPtr> conds;
  std::vector<Body> bodies;
  Body else_body;
  std::vector<std::string> targets;
  std::string attr;
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // one per param; null when it has none
};

struct Template {
  Body body;
};

// Parses with the options transformers uses: trim_blocks, lstrip_blocks, no trailing newline kept.
absl::StatusOr<std::unique_ptr<Template>> ParseTemplate(std::string_view source);

}  // namespace tandem::tokenizer::jinja
