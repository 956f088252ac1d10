// Lexer and recursive-descent parser for the Jinja2 subset used by chat templates. Precedence and
// whitespace handling follow jinja2's lexer.py and parser.py.
#include <cctype>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "jinja_ast.h"
#include "tandem/core/status.h"
#include "utf8.h"

namespace tandem::tokenizer::jinja {
namespace {

struct Token {
  enum class Type { kText, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEof };
  Type type;
  std::string value;
  int line;
};

absl::Status SyntaxError(int line, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("chat template line ", line, ": ", what));
}

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

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {}

  absl::StatusOr<std::vector<Token>> Run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      size_t tag = FindTagStart(pos);
      std::string text = src_.substr(pos, (tag == std::string::npos ? src_.size() : tag) - pos);
      if (tag == std::string::npos) {
        Emit(Token::Type::kText, text);
        break;
      }
      const char kind = src_[tag + 1];  // '{', '%' or '#'
      const char sign = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      if (sign == '-') {
        size_t end = text.size();
        while (end > 0 && IsSpace(text[end - 1])) --end;
        text.resize(end);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: drop spaces between the start of the line and a block or comment tag.
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if (l_pos > 0 || line_starting) {
          bool blank = l_pos < text.size();
          for (size_t k = l_pos; k < text.size(); ++k) blank = blank && IsSpace(text[k]);
          if (blank) text.resize(l_pos);
        }
      }
      Emit(Token::Type::kText, text);
      line_ = LineAt(tag);
      if (kind == '%') {
        size_t raw_start = 0, raw_end = 0, end_tag = 0;
        if (MatchRaw(tag, &raw_start, &raw_end, &end_tag)) {
          // {% raw %}...{% endraw %}: the body is text, not template.
          if (end_tag == std::string::npos) return SyntaxError(line_, "'{% raw %}' without '{% endraw %}'");
          Emit(Token::Type::kText, src_.substr(raw_start, raw_end - raw_start));
          size_t close = src_.find("%}", end_tag);
          if (close == std::string::npos) return SyntaxError(line_, "unterminated '{% endraw'");
          bool strip = src_[close - 1] == '-';
          close += 2;
          pos = ConsumeAfterTag(close, strip, /*trim=*/true);
          line_starting = pos > 0 && src_[pos - 1] == '\n';
          continue;
        }
      }
      size_t body = tag + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      size_t after = 0;
      if (kind == '#') {
        size_t close = src_.find("#}", body);
        if (close == std::string::npos) return SyntaxError(line_, "unterminated comment");
        bool strip = close > body && src_[close - 1] == '-';
        after = close + 2;
        after = ConsumeAfterTag(after, strip, /*trim=*/true);
      } else {
        Emit(kind == '{' ? Token::Type::kVarBegin : Token::Type::kBlockBegin, "");
        const std::string end = kind == '{' ? "}}" : "%}";
        size_t p = body;
        bool strip = false;
        TANDEM_RETURN_IF_ERROR(LexExpression(&p, end, &strip));
        Emit(kind == '{' ? Token::Type::kVarEnd : Token::Type::kBlockEnd, "");
        after = ConsumeAfterTag(p, strip, /*trim=*/kind == '%');
      }
      line_starting = after > 0 && src_[after - 1] == '\n';
      pos = after;
    }
    tokens_.push_back(Token{Token::Type::kEof, "", LineAt(src_.size())});
    return std::move(tokens_);
  }

 private:
  size_t FindTagStart(size_t from) const {
    for (size_t p = src_.find('{', from); p != std::string::npos; p = src_.find('{', p + 1)) {
      if (p + 1 < src_.size() && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#')) return p;
    }
    return std::string::npos;
  }

  // Whether the block tag at `tag` is `{% raw %}`. If so, sets the raw body [*body_start, *body_end)
  // (whitespace control applied) and where the `{% endraw %}` tag starts (npos when missing).
  bool MatchRaw(size_t tag, size_t* body_start, size_t* body_end, size_t* end_tag) const {
    size_t p = tag + 2;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
    while (p < src_.size() && IsSpace(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0) return false;
    p += 3;
    while (p < src_.size() && IsSpace(src_[p])) ++p;
    bool strip = p < src_.size() && src_[p] == '-';
    if (strip) ++p;
    if (src_.compare(p, 2, "%}") != 0) return false;
    *body_start = ConsumeAfterTag(p + 2, strip, /*trim=*/true);
    *end_tag = std::string::npos;
    for (size_t q = src_.find("{%", *body_start); q != std::string::npos; q = src_.find("{%", q + 2)) {
      size_t r = q + 2;
      if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) ++r;
      while (r < src_.size() && IsSpace(src_[r])) ++r;
      if (src_.compare(r, 6, "endraw") == 0) {
        *end_tag = q;
        break;
      }
    }
    *body_end = *end_tag;
    if (*end_tag == std::string::npos) return true;
    const char sign = src_[*end_tag + 2];
    size_t e = *end_tag;
    if (sign == '-') {
      while (e > *body_start && IsSpace(src_[e - 1])) --e;
    } else if (sign != '+') {
      size_t l = e;
      while (l > *body_start && (src_[l - 1] == ' ' || src_[l - 1] == '\t')) --l;
      if (l == *body_start || src_[l - 1] == '\n') e = l;
    }
    *body_end = e;
    return true;
  }

  // After a tag: `-` strips all following whitespace; trim_blocks removes one newline.
  size_t ConsumeAfterTag(size_t pos, bool strip, bool trim) const {
    if (strip) {
      while (pos < src_.size() && IsSpace(src_[pos])) ++pos;
    } else if (trim && pos < src_.size() && src_[pos] == '\n') {
      ++pos;
    }
    return pos;
  }

  int LineAt(size_t pos) {
    while (line_pos_ < pos && line_pos_ < src_.size()) {
      if (src_[line_pos_] == '\n') ++line_count_;
      ++line_pos_;
    }
    return line_count_;
  }

  void Emit(Token::Type type, std::string value) {
    if (type == Token::Type::kText && value.empty()) return;
    tokens_.push_back(Token{type, std::move(value), line_});
  }

  absl::Status LexExpression(size_t* pos, const std::string& end, bool* strip) {
    size_t& p = *pos;
    while (true) {
      while (p < src_.size() && IsSpace(src_[p])) ++p;
      line_ = LineAt(p);
      if (p >= src_.size()) return SyntaxError(line_, absl::StrCat("missing '", end, "'"));
      if (src_.compare(p, end.size(), end) == 0) {
        p += end.size();
        return absl::OkStatus();
      }
      if (src_[p] == '-' && src_.compare(p + 1, end.size(), end) == 0) {
        *strip = true;
        p += 1 + end.size();
        return absl::OkStatus();
      }
      if (src_[p] == '+' && end == "%}" && src_.compare(p + 1, end.size(), end) == 0) {
        p += 1 + end.size();
        return absl::OkStatus();
      }
      char c = src_[p];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t s = p;
        while (p < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[p])) || src_[p] == '_')) ++p;
        Emit(Token::Type::kName, src_.substr(s, p - s));
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t s = p;
        bool is_float = false;
        while (p < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[p])) || src_[p] == '_')) ++p;
        if (p + 1 < src_.size() && src_[p] == '.' && std::isdigit(static_cast<unsigned char>(src_[p + 1]))) {
          is_float = true;
          ++p;
          while (p < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[p])) || src_[p] == '_')) ++p;
        }
        if (p < src_.size() && (src_[p] == 'e' || src_[p] == 'E')) {
          size_t q = p + 1;
          if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
          if (q < src_.size() && std::isdigit(static_cast<unsigned char>(src_[q]))) {
            is_float = true;
            p = q;
            while (p < src_.size() && std::isdigit(static_cast<unsigned char>(src_[p]))) ++p;
          }
        }
        std::string digits;
        for (size_t k = s; k < p; ++k)
          if (src_[k] != '_') digits.push_back(src_[k]);
        Emit(is_float ? Token::Type::kFloat : Token::Type::kInt, digits);
      } else if (c == '\'' || c == '"') {
        std::string value;
        TANDEM_RETURN_IF_ERROR(LexString(&p, &value));
        Emit(Token::Type::kString, std::move(value));
      } else {
        static const char* kOps[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "(", ")",
                                     "[",  "]",  "{",  "}",  ",",  ".",  ":", "|", "=", "<", ">", ";"};
        bool found = false;
        for (const char* op : kOps) {
          size_t n = std::char_traits<char>::length(op);
          if (src_.compare(p, n, op) == 0) {
            Emit(Token::Type::kOp, op);
            p += n;
            found = true;
            break;
          }
        }
        if (!found) return SyntaxError(line_, absl::StrCat("unexpected character '", std::string(1, c), "'"));
      }
    }
  }

  // A Python string literal with backslash escapes.
  absl::Status LexString(size_t* pos, std::string* out) {
    size_t& p = *pos;
    const char quote = src_[p++];
    while (true) {
      if (p >= src_.size()) return SyntaxError(line_, "unterminated string literal");
      char c = src_[p++];
      if (c == quote) return absl::OkStatus();
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (p >= src_.size()) return SyntaxError(line_, "unterminated string literal");
      char e = src_[p++];
      switch (e) {
        case 'n': out->push_back('\n'); break;
        case 't': out->push_back('\t'); break;
        case 'r': out->push_back('\r'); break;
        case '0': out->push_back('\0'); break;
        case 'a': out->push_back('\a'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'v': out->push_back('\v'); break;
        case '\\': out->push_back('\\'); break;
        case '\'': out->push_back('\''); break;
        case '"': out->push_back('"'); break;
        case '\n': break;
        case 'x':
        case 'u':
        case 'U': {
          size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (p + n > src_.size()) return SyntaxError(line_, "truncated escape in string literal");
          // Exactly n hex digits (std::stoul threw on none and ended the process; fuzz_chat_template).
          char32_t cp = 0;
          for (size_t k = 0; k < n; ++k) {
            const char h = src_[p + k];
            if (!std::isxdigit(static_cast<unsigned char>(h))) {
              return SyntaxError(line_, absl::StrCat("bad \\", std::string(1, e), " escape in string literal: '",
                                                     src_.substr(p, n), "' is not ", n, " hex digits"));
            }
            cp = cp * 16 + static_cast<char32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0'
                                                                                            : (h | 0x20) - 'a' + 10);
          }
          if (cp > 0x10FFFF) return SyntaxError(line_, "escape beyond U+10FFFF in string literal");
          p += n;
          AppendUtf8(cp, out);
          break;
        }
        default:
          out->push_back('\\');
          out->push_back(e);
      }
    }
  }

  std::string src_;
  std::vector<Token> tokens_;
  int line_ = 1;
  size_t line_pos_ = 0;
  int line_count_ = 1;
};

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

  absl::StatusOr<ExprPtr> ParseOr() {
    TANDEM_ASSIGN_OR_RETURN(ExprPtr left, ParseAnd());
    while (IsName("or")) {
      int line = Cur().line;
      ++i_;
      TANDEM_ASSIGN_OR_RETURN(ExprPtr right, ParseAnd());
      ExprPtr e = Make(Expr::Kind::kOr, line);
      e->args = {left, right};
      left = e;
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseAnd() {
    TANDEM_ASSIGN_OR_RETURN(ExprPtr left, ParseNot());
    while (IsName("and")) {
      int line = Cur().line;
      ++i_;
      TANDEM_ASSIGN_OR_RETURN(ExprPtr right, ParseNot());
      ExprPtr e = Make(Expr::Kind::kAnd, line);
      e->args = {left, right};
      left = e;
    }
    return left;
  }

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

  absl::StatusOr<ExprPtr> ParseMath1() {
    TANDEM_ASSIGN_OR_RETURN(ExprPtr left, ParseConcat());
    while (IsOp("+") || IsOp("-")) {
      std::string op = Cur().value;
      int line = Cur().line;
      ++i_;
      TANDEM_ASSIGN_OR_RETURN(ExprPtr right, ParseConcat());
      TANDEM_ASSIGN_OR_RETURN(left, Binary(left, op, right, line));
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseConcat() {
    TANDEM_ASSIGN_OR_RETURN(ExprPtr left, ParseMath2());
    while (IsOp("~")) {
      int line = Cur().line;
      ++i_;
      TANDEM_ASSIGN_OR_RETURN(ExprPtr right, ParseMath2());
      TANDEM_ASSIGN_OR_RETURN(left, Binary(left, "~", right, line));
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseMath2() {
    TANDEM_ASSIGN_OR_RETURN(ExprPtr left, ParsePow());
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      std::string op = Cur().value;
      int line = Cur().line;
      ++i_;
      TANDEM_ASSIGN_OR_RETURN(ExprPtr right, ParsePow());
      TANDEM_ASSIGN_OR_RETURN(left, Binary(left, op, right, line));
    }
    return left;
  }

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
        ExprPtr e = Make(Expr::Kind::kCall, line);
        e->args.push_back(node);
        TANDEM_RETURN_IF_ERROR(ParseCallArgs(e));
        node = e;
      } else {
        return node;
      }
    }
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
        ExprPtr e = Make(Expr::Kind::kCall, line);
        e->args.push_back(node);
        TANDEM_RETURN_IF_ERROR(ParseCallArgs(e));
        node = e;
      } else {
        return node;
      }
    }
  }

  std::vector<Token> t_;
  size_t i_ = 0;
};

// jinja2 normalizes every newline sequence to "\n" and drops one trailing newline.
std::string NormalizeSource(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t k = 0; k < source.size(); ++k) {
    if (source[k] == '\r') {
      out.push_back('\n');
      if (k + 1 < source.size() && source[k + 1] == '\n') ++k;
    } else {
      out.push_back(source[k]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Template>> ParseTemplate(std::string_view source) {
  Lexer lexer(NormalizeSource(source));
  TANDEM_ASSIGN_OR_RETURN(std::vector<Token> tokens, lexer.Run());
  Parser parser(std::move(tokens));
  auto tmpl = std::make_unique<Template>();
  TANDEM_ASSIGN_OR_RETURN(tmpl->body, parser.ParseAll());
  return tmpl;
}

}  // namespace tandem::tokenizer::jinja
