// Recursive-descent parser for the Jinja2 subset used by chat templates, over jinja_lexer.h's
// tokens. Precedence follows jinja2's parser.py. Over 600 lines because it is one grammar: one
// method per rule, from statements down to primary expressions; split, the precedence chain would
// be spread across files.
#include <algorithm>
#include <initializer_list>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "jinja_ast.h"
#include "jinja_lexer.h"
#include "tandem/core/status.h"

namespace tandem::tokenizer::jinja {
namespace {

// An integer or float literal's value; one that does not fit (an int beyond 64 bits) is an error, not
// an exception (found by fuzz/fuzz_chat_template: std::stoll threw and ended the process).
absl::StatusOr<Value> NumberLiteral(const Token& tok, int line) {
  if (tok.type == Token::Type::kInt) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(tok.value, &v)) {
      return SyntaxError(line, absl::StrCat("integer literal ", tok.value, " does not fit in 64 bits"));
    }
    return Value::Int(v);
  }
  double d = 0;
  if (!absl::SimpleAtod(tok.value, &d)) return SyntaxError(line, absl::StrCat("bad number literal ", tok.value));
  return Value::Float(d);
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  absl::StatusOr<Body> ParseAll() {
    Body body;
    std::string end;
    TANDEM_RETURN_IF_ERROR(ParseBody({}, &body, &end));
    if (!end.empty()) return SyntaxError(Cur().line, absl::StrCat("unexpected '{% ", end, " %}'"));
    return body;
  }

 private:
  const Token& Cur() const { return t_[i_]; }
  const Token& Peek(size_t k = 1) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  bool IsOp(const char* op) const { return Cur().type == Token::Type::kOp && Cur().value == op; }
  bool IsName(const char* name) const { return Cur().type == Token::Type::kName && Cur().value == name; }
  bool SkipOp(const char* op) {
    if (!IsOp(op)) return false;
    ++i_;
    return true;
  }
  bool SkipName(const char* name) {
    if (!IsName(name)) return false;
    ++i_;
    return true;
  }
  absl::Status ExpectOp(const char* op) {
    if (SkipOp(op)) return absl::OkStatus();
    return SyntaxError(Cur().line, absl::StrCat("expected '", op, "', found ", Describe(Cur())));
  }
  absl::StatusOr<std::string> ExpectName() {
    if (Cur().type != Token::Type::kName) {
      return SyntaxError(Cur().line, absl::StrCat("expected a name, found ", Describe(Cur())));
    }
    return t_[i_++].value;
  }
  absl::Status ExpectBlockEnd() {
    if (Cur().type == Token::Type::kBlockEnd) {
      ++i_;
      return absl::OkStatus();
    }
    return SyntaxError(Cur().line, absl::StrCat("expected '%}', found ", Describe(Cur())));
  }
  static std::string Describe(const Token& t) {
    switch (t.type) {
      case Token::Type::kText: return "text";
      case Token::Type::kVarBegin: return "'{{'";
      case Token::Type::kVarEnd: return "'}}'";
      case Token::Type::kBlockBegin: return "'{%'";
      case Token::Type::kBlockEnd: return "'%}'";
      case Token::Type::kName: return absl::StrCat("'", t.value, "'");
      case Token::Type::kString: return "a string";
      case Token::Type::kInt:
      case Token::Type::kFloat: return absl::StrCat("number ", t.value);
      case Token::Type::kOp: return absl::StrCat("'", t.value, "'");
      case Token::Type::kEof: return "end of template";
    }
    return "?";
  }

  // Parses nodes until a block tag whose name is in `ends` (consumed up to the name; `*end` is set)
  // or the end of the template.
  absl::Status ParseBody(const std::set<std::string>& ends, Body* body, std::string* end) {
    end->clear();
    while (true) {
      const Token& tok = Cur();
      switch (tok.type) {
        case Token::Type::kEof:
          if (!ends.empty()) {
            return SyntaxError(tok.line, absl::StrCat("unexpected end of template, expected '{% ", *ends.begin(), " %}'"));
          }
          return absl::OkStatus();
        case Token::Type::kText: {
          auto n = std::make_shared<Node>();
          n->kind = Node::Kind::kText;
          n->line = tok.line;
          n->text = tok.value;
          body->push_back(n);
          ++i_;
          break;
        }
        case Token::Type::kVarBegin: {
          ++i_;
          auto n = std::make_shared<Node>();
          n->kind = Node::Kind::kOutput;
          n->line = tok.line;
          TANDEM_ASSIGN_OR_RETURN(n->expr, ParseTuple(true));
          if (Cur().type != Token::Type::kVarEnd) {
            return SyntaxError(Cur().line, absl::StrCat("expected '}}', found ", Describe(Cur())));
          }
          ++i_;
          body->push_back(n);
          break;
        }
        case Token::Type::kBlockBegin: {
          const Token& name = Peek();
          if (name.type != Token::Type::kName) return SyntaxError(name.line, "expected a tag name after '{%'");
          if (ends.count(name.value)) {
            i_ += 2;
            *end = name.value;
            return absl::OkStatus();
          }
          i_ += 2;
          TANDEM_ASSIGN_OR_RETURN(NodePtr n, ParseStatement(name.value, name.line));
          body->push_back(n);
          break;
        }
        case Token::Type::kVarEnd:
        case Token::Type::kBlockEnd:
        case Token::Type::kName:
        case Token::Type::kString:
        case Token::Type::kInt:
        case Token::Type::kFloat:
        case Token::Type::kOp:
          return SyntaxError(tok.line, absl::StrCat("unexpected ", Describe(tok)));
      }
    }
  }

  absl::StatusOr<NodePtr> ParseStatement(const std::string& tag, int line) {
    auto n = std::make_shared<Node>();
    n->line = line;
    std::string end;
    if (tag == "if") {
      n->kind = Node::Kind::kIf;
      while (true) {
        TANDEM_ASSIGN_OR_RETURN(ExprPtr cond, ParseExpression(true));
        TANDEM_RETURN_IF_ERROR(ExpectBlockEnd());
        Body body;
        TANDEM_RETURN_IF_ERROR(ParseBody({"elif", "else", "endif"}, &body, &end));
        n->conds.push_back(cond);
        n->bodies.push_back(std::move(body));
        if (end == "elif") continue;
        if (end == "else") {
          TANDEM_RETURN_IF_ERROR(ExpectBlockEnd());
          TANDEM_RETURN_IF_ERROR(ParseBody({"endif"}, &n->else_body, &end));
        }
        break;
      }
      TANDEM_RETURN_IF_ERROR(ExpectBlockEnd());
      return n;
    }
    if (tag == "for") {
      n->kind = Node::Kind::kFor;
      bool paren = SkipOp("(");
      do {
        TANDEM_ASSIGN_OR_RETURN(std::string target, ExpectName());
        n->targets.push_back(target);
      } while (SkipOp(","));
      if (paren) TANDEM_RETURN_IF_ERROR(ExpectOp(")"));
      if (!SkipName("in")) return SyntaxError(Cur().line, "expected 'in' in for loop");
      TANDEM_ASSIGN_OR_RETURN(n->expr, ParseTuple(false));
      if (SkipName("if")) {
        TANDEM_ASSIGN_OR_RETURN(n->filter, ParseExpression(true));
      }
      if (IsName("recursive")) return SyntaxError(Cur().line, "unsupported construct: recursive for loop");
      TANDEM_RETURN_IF_ERROR(ExpectBlockEnd());
      Body body;
      TANDEM_RETURN_IF_ERROR(ParseBody({"else", "endfor"}, &body, &end));
      n->bodies.push_back(std::move(body));
      if (end == "else") {
        TANDEM_RETURN_IF_ERROR(ExpectBlockEnd());
        TANDEM_RETURN_IF_ERROR(ParseBody({"endfor"}, &n->else_body, &end));
      }
      TANDEM_RETURN_IF_ERROR(ExpectBlockEnd());
      return n;
    }
    if (tag == "set") {
      TANDEM_ASSIGN_OR_RETURN(std::string target, ExpectName());
      n->targets.push_back(target);
      if (SkipOp(".")) {
        TANDEM_ASSIGN_OR_RETURN(n->attr, ExpectName());
      } else {
        while (SkipOp(",")) {
          TANDEM_ASSIGN_OR_RETURN(std::string more, ExpectName());
          n->targets.push_back(more);
        }
      }
      if (SkipOp("=")) {
        n->kind = Node::Kind::kSet;
        TANDEM_ASSIGN_OR_RETURN(n->expr, ParseTuple(true));
        TANDEM_RETURN_IF_ERROR(ExpectBlockEnd());
        return n;
      }
      if (!n->attr.empty() || n->targets.size() != 1) {
        return SyntaxError(line, "unsupported construct: block set of an attribute or several names");
      }
      n->kind = Node::Kind::kSetBlock;
      TANDEM_RETURN_IF_ERROR(ExpectBlockEnd());
      Body body;
      TANDEM_RETURN_IF_ERROR(ParseBody({"endset"}, &body, &end));
      n->bodies.push_back(std::move(body));
      TANDEM_RETURN_IF_ERROR(ExpectBlockEnd());
      return n;
    }
    if (tag == "macro") {
      n->kind = Node::Kind::kMacro;
      TANDEM_ASSIGN_OR_RETURN(n->name, ExpectName());
      TANDEM_RETURN_IF_ERROR(ExpectOp("("));
      while (!SkipOp(")")) {
        TANDEM_ASSIGN_OR_RETURN(std::string param, ExpectName());
        n->params.push_back(param);
        ExprPtr def;
        if (SkipOp("=")) {
          TANDEM_ASSIGN_OR_RETURN(def, ParseExpression(true));
        }
        n->defaults.push_back(def);
        if (!IsOp(")")) TANDEM_RETURN_IF_ERROR(ExpectOp(","));
      }
      TANDEM_RETURN_IF_ERROR(ExpectBlockEnd());
      Body body;
      TANDEM_RETURN_IF_ERROR(ParseBody({"endmacro"}, &body, &end));
      n->bodies.push_back(std::move(body));
      if (Cur().type == Token::Type::kName) ++i_;  // {% endmacro name %}
      TANDEM_RETURN_IF_ERROR(ExpectBlockEnd());
      return n;
    }
    if (tag == "break" || tag == "continue") {
      n->kind = tag == "break" ? Node::Kind::kBreak : Node::Kind::kContinue;
      TANDEM_RETURN_IF_ERROR(ExpectBlockEnd());
      return n;
    }
    if (tag == "generation") {
      n->kind = Node::Kind::kScope;
      TANDEM_RETURN_IF_ERROR(ExpectBlockEnd());
      Body body;
      TANDEM_RETURN_IF_ERROR(ParseBody({"endgeneration"}, &body, &end));
      n->bodies.push_back(std::move(body));
      TANDEM_RETURN_IF_ERROR(ExpectBlockEnd());
      return n;
    }
    return SyntaxError(line, absl::StrCat("unsupported construct: tag '{% ", tag, " %}'"));
  }

  ExprPtr Make(Expr::Kind kind, int line) {
    auto e = std::make_shared<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // parse_tuple: an expression, or several separated by commas (an implicit tuple).
  absl::StatusOr<ExprPtr> ParseTuple(bool with_condexpr) {
    int line = Cur().line;
    TANDEM_ASSIGN_OR_RETURN(ExprPtr first, ParseExpression(with_condexpr));
    if (!IsOp(",")) return first;
    ExprPtr tuple = Make(Expr::Kind::kTuple, line);
    tuple->args.push_back(first);
    while (SkipOp(",")) {
      if (Cur().type == Token::Type::kBlockEnd || Cur().type == Token::Type::kVarEnd || IsOp(")")) break;
      TANDEM_ASSIGN_OR_RETURN(ExprPtr next, ParseExpression(with_condexpr));
      tuple->args.push_back(next);
    }
    return tuple;
  }

  absl::StatusOr<ExprPtr> ParseExpression(bool with_condexpr) {
    int line = Cur().line;
    TANDEM_ASSIGN_OR_RETURN(ExprPtr expr, ParseOr());
    if (!with_condexpr) return expr;
    while (SkipName("if")) {
      TANDEM_ASSIGN_OR_RETURN(ExprPtr cond, ParseOr());
      ExprPtr other;
      if (SkipName("else")) {
        TANDEM_ASSIGN_OR_RETURN(other, ParseExpression(true));
      }
      ExprPtr c = Make(Expr::Kind::kCond, line);
      c->args = {expr, cond, other};
      expr = c;
    }
    return expr;
  }

  // `operand (keyword operand)*`, left-associative, each `keyword` making a `kind` node.
  absl::StatusOr<ExprPtr> ParseKeywordChain(const char* keyword, Expr::Kind kind,
                                            absl::StatusOr<ExprPtr> (Parser::*operand)()) {
    TANDEM_ASSIGN_OR_RETURN(ExprPtr left, (this->*operand)());
    while (IsName(keyword)) {
      int line = Cur().line;
      ++i_;
      TANDEM_ASSIGN_OR_RETURN(ExprPtr right, (this->*operand)());
      ExprPtr e = Make(kind, line);
      e->args = {left, right};
      left = e;
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseOr() { return ParseKeywordChain("or", Expr::Kind::kOr, &Parser::ParseAnd); }
  absl::StatusOr<ExprPtr> ParseAnd() { return ParseKeywordChain("and", Expr::Kind::kAnd, &Parser::ParseNot); }

  absl::StatusOr<ExprPtr> ParseNot() {
    if (IsName("not")) {
      int line = Cur().line;
      ++i_;
      TANDEM_ASSIGN_OR_RETURN(ExprPtr inner, ParseNot());
      ExprPtr e = Make(Expr::Kind::kNot, line);
      e->args = {inner};
      return e;
    }
    return ParseCompare();
  }

  absl::StatusOr<ExprPtr> ParseCompare() {
    int line = Cur().line;
    TANDEM_ASSIGN_OR_RETURN(ExprPtr first, ParseMath1());
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (Cur().type == Token::Type::kOp &&
          (Cur().value == "==" || Cur().value == "!=" || Cur().value == "<" || Cur().value == "<=" ||
           Cur().value == ">" || Cur().value == ">=")) {
        op = Cur().value;
        ++i_;
      } else if (IsName("in")) {
        op = "in";
        ++i_;
      } else if (IsName("not") && Peek().type == Token::Type::kName && Peek().value == "in") {
        op = "notin";
        i_ += 2;
      } else {
        break;
      }
      if (!cmp) {
        cmp = Make(Expr::Kind::kCompare, line);
        cmp->args.push_back(first);
      }
      TANDEM_ASSIGN_OR_RETURN(ExprPtr operand, ParseMath1());
      cmp->ops.push_back(op);
      cmp->args.push_back(operand);
    }
    return cmp ? cmp : first;
  }

  absl::StatusOr<ExprPtr> Binary(ExprPtr left, const std::string& op, ExprPtr right, int line) {
    ExprPtr e = Make(Expr::Kind::kBinary, line);
    e->name = op;
    e->args = {std::move(left), std::move(right)};
    return e;
  }

  // `operand (op operand)*` for the operators `ops`, left-associative, each a Binary node.
  absl::StatusOr<ExprPtr> ParseOpChain(std::initializer_list<const char*> ops,
                                       absl::StatusOr<ExprPtr> (Parser::*operand)()) {
    TANDEM_ASSIGN_OR_RETURN(ExprPtr left, (this->*operand)());
    while (std::any_of(ops.begin(), ops.end(), [&](const char* op) { return IsOp(op); })) {
      std::string op = Cur().value;
      int line = Cur().line;
      ++i_;
      TANDEM_ASSIGN_OR_RETURN(ExprPtr right, (this->*operand)());
      TANDEM_ASSIGN_OR_RETURN(left, Binary(left, op, right, line));
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseMath1() { return ParseOpChain({"+", "-"}, &Parser::ParseConcat); }
  absl::StatusOr<ExprPtr> ParseConcat() { return ParseOpChain({"~"}, &Parser::ParseMath2); }
  absl::StatusOr<ExprPtr> ParseMath2() { return ParseOpChain({"*", "/", "//", "%"}, &Parser::ParsePow); }

  absl::StatusOr<ExprPtr> ParsePow() {
    TANDEM_ASSIGN_OR_RETURN(ExprPtr left, ParseUnary(true));
    while (IsOp("**")) {
      int line = Cur().line;
      ++i_;
      TANDEM_ASSIGN_OR_RETURN(ExprPtr right, ParseUnary(true));
      TANDEM_ASSIGN_OR_RETURN(left, Binary(left, "**", right, line));
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseUnary(bool with_filter) {
    int line = Cur().line;
    ExprPtr node;
    if (IsOp("-") || IsOp("+")) {
      bool neg = Cur().value == "-";
      ++i_;
      TANDEM_ASSIGN_OR_RETURN(ExprPtr inner, ParseUnary(false));
      node = Make(neg ? Expr::Kind::kNeg : Expr::Kind::kPos, line);
      node->args = {inner};
    } else {
      TANDEM_ASSIGN_OR_RETURN(node, ParsePrimary());
    }
    TANDEM_ASSIGN_OR_RETURN(node, ParsePostfix(node));
    if (with_filter) {
      TANDEM_ASSIGN_OR_RETURN(node, ParseFilterExpr(node));
    }
    return node;
  }

  absl::StatusOr<ExprPtr> ParsePrimary() {
    const Token& tok = Cur();
    int line = tok.line;
    switch (tok.type) {
      case Token::Type::kName: {
        ++i_;
        ExprPtr e = Make(Expr::Kind::kLiteral, line);
        if (tok.value == "true" || tok.value == "True") {
          e->value = Value::Bool(true);
        } else if (tok.value == "false" || tok.value == "False") {
          e->value = Value::Bool(false);
        } else if (tok.value == "none" || tok.value == "None") {
          e->value = Value::None();
        } else {
          e->kind = Expr::Kind::kName;
          e->name = tok.value;
        }
        return e;
      }
      case Token::Type::kString: {
        std::string s;
        while (Cur().type == Token::Type::kString) s += t_[i_++].value;
        ExprPtr e = Make(Expr::Kind::kLiteral, line);
        e->value = Value::Str(std::move(s));
        return e;
      }
      case Token::Type::kInt:
      case Token::Type::kFloat: {
        ++i_;
        ExprPtr e = Make(Expr::Kind::kLiteral, line);
        TANDEM_ASSIGN_OR_RETURN(e->value, NumberLiteral(tok, line));
        return e;
      }
      case Token::Type::kOp:
        if (SkipOp("(")) {
          if (SkipOp(")")) return Make(Expr::Kind::kTuple, line);
          TANDEM_ASSIGN_OR_RETURN(ExprPtr first, ParseExpression(true));
          if (SkipOp(")")) return first;
          ExprPtr tuple = Make(Expr::Kind::kTuple, line);
          tuple->args.push_back(first);
          while (SkipOp(",")) {
            if (IsOp(")")) break;
            TANDEM_ASSIGN_OR_RETURN(ExprPtr next, ParseExpression(true));
            tuple->args.push_back(next);
          }
          TANDEM_RETURN_IF_ERROR(ExpectOp(")"));
          return tuple;
        }
        if (SkipOp("[")) {
          ExprPtr list = Make(Expr::Kind::kList, line);
          while (!SkipOp("]")) {
            TANDEM_ASSIGN_OR_RETURN(ExprPtr item, ParseExpression(true));
            list->args.push_back(item);
            if (!IsOp("]")) TANDEM_RETURN_IF_ERROR(ExpectOp(","));
          }
          return list;
        }
        if (SkipOp("{")) {
          ExprPtr dict = Make(Expr::Kind::kDict, line);
          while (!SkipOp("}")) {
            TANDEM_ASSIGN_OR_RETURN(ExprPtr key, ParseExpression(true));
            TANDEM_RETURN_IF_ERROR(ExpectOp(":"));
            TANDEM_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
            dict->args.push_back(key);
            dict->args.push_back(value);
            if (!IsOp("}")) TANDEM_RETURN_IF_ERROR(ExpectOp(","));
          }
          return dict;
        }
        break;
      case Token::Type::kText:
      case Token::Type::kVarBegin:
      case Token::Type::kVarEnd:
      case Token::Type::kBlockBegin:
      case Token::Type::kBlockEnd:
      case Token::Type::kEof:
        break;
    }
    return SyntaxError(line, absl::StrCat("unexpected ", Describe(tok), " in expression"));
  }

  absl::Status ParseCallArgs(ExprPtr call) {
    // The '(' is consumed.
    while (!SkipOp(")")) {
      if (IsOp("*") || IsOp("**")) return SyntaxError(Cur().line, "unsupported construct: *args / **kwargs in a call");
      if (Cur().type == Token::Type::kName && Peek().type == Token::Type::kOp && Peek().value == "=") {
        std::string key = Cur().value;
        i_ += 2;
        TANDEM_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
        call->kwargs.emplace_back(key, value);
      } else {
        if (!call->kwargs.empty()) return SyntaxError(Cur().line, "positional argument after keyword argument");
        TANDEM_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
        call->args.push_back(value);
      }
      if (!IsOp(")")) TANDEM_RETURN_IF_ERROR(ExpectOp(","));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<ExprPtr> ParsePostfix(ExprPtr node) {
    while (true) {
      int line = Cur().line;
      if (SkipOp(".")) {
        ExprPtr e = Make(Expr::Kind::kAttr, line);
        if (Cur().type == Token::Type::kInt) {
          e->kind = Expr::Kind::kItem;
          ExprPtr idx = Make(Expr::Kind::kLiteral, line);
          TANDEM_ASSIGN_OR_RETURN(idx->value, NumberLiteral(t_[i_++], line));
          e->args = {node, idx};
        } else {
          TANDEM_ASSIGN_OR_RETURN(e->name, ExpectName());
          e->args = {node};
        }
        node = e;
      } else if (SkipOp("[")) {
        ExprPtr parts[3];
        bool slice = false;
        for (int k = 0; k < 3; ++k) {
          if (!IsOp(":") && !IsOp("]")) {
            TANDEM_ASSIGN_OR_RETURN(parts[k], ParseExpression(true));
          }
          if (k < 2 && SkipOp(":")) {
            slice = true;
            continue;
          }
          break;
        }
        TANDEM_RETURN_IF_ERROR(ExpectOp("]"));
        ExprPtr e = Make(slice ? Expr::Kind::kSlice : Expr::Kind::kItem, line);
        e->args = {node, parts[0]};
        if (slice) {
          e->args.push_back(parts[1]);
          e->args.push_back(parts[2]);
        }
        node = e;
      } else if (SkipOp("(")) {
        TANDEM_ASSIGN_OR_RETURN(node, ParseCall(node, line));
      } else {
        return node;
      }
    }
  }

  // `node(arguments)`, the "(" already read.
  absl::StatusOr<ExprPtr> ParseCall(ExprPtr node, int line) {
    ExprPtr e = Make(Expr::Kind::kCall, line);
    e->args.push_back(std::move(node));
    TANDEM_RETURN_IF_ERROR(ParseCallArgs(e));
    return e;
  }

  absl::StatusOr<ExprPtr> ParseFilterExpr(ExprPtr node) {
    while (true) {
      int line = Cur().line;
      if (SkipOp("|")) {
        ExprPtr e = Make(Expr::Kind::kFilter, line);
        TANDEM_ASSIGN_OR_RETURN(e->name, ExpectName());
        e->args.push_back(node);
        if (SkipOp("(")) TANDEM_RETURN_IF_ERROR(ParseCallArgs(e));
        node = e;
      } else if (SkipName("is")) {
        ExprPtr e = Make(Expr::Kind::kTest, line);
        e->negated = SkipName("not");
        TANDEM_ASSIGN_OR_RETURN(e->name, ExpectName());
        e->args.push_back(node);
        if (SkipOp("(")) {
          TANDEM_RETURN_IF_ERROR(ParseCallArgs(e));
        } else if ((Cur().type == Token::Type::kName && Cur().value != "else" && Cur().value != "or" &&
                    Cur().value != "and" && Cur().value != "if" && Cur().value != "in" && Cur().value != "not" &&
                    Cur().value != "is") ||
                   Cur().type == Token::Type::kString || Cur().type == Token::Type::kInt ||
                   Cur().type == Token::Type::kFloat || IsOp("[") || IsOp("{")) {
          TANDEM_ASSIGN_OR_RETURN(ExprPtr arg, ParsePrimary());
          TANDEM_ASSIGN_OR_RETURN(arg, ParsePostfix(arg));
          e->args.push_back(arg);
        }
        node = e;
      } else if (SkipOp("(")) {
        TANDEM_ASSIGN_OR_RETURN(node, ParseCall(node, line));
      } else {
        return node;
      }
    }
  }

  std::vector<Token> t_;
  size_t i_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Template>> ParseTemplate(std::string_view source) {
  TANDEM_ASSIGN_OR_RETURN(std::vector<Token> tokens, Lex(source));
  Parser parser(std::move(tokens));
  auto tmpl = std::make_unique<Template>();
  TANDEM_ASSIGN_OR_RETURN(tmpl->body, parser.ParseAll());
  return tmpl;
}

}  // namespace tandem::tokenizer::jinja
