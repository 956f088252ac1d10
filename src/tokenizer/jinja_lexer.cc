#include "jinja_lexer.h"

#include <cctype>
#include <set>

#include "absl/strings/str_cat.h"
#include "tandem/core/status.h"
#include "utf8.h"

namespace tandem::tokenizer::jinja {
namespace {

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

absl::Status SyntaxError(int line, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("chat template line ", line, ": ", what));
}

absl::StatusOr<std::vector<Token>> Lex(std::string_view source) {
  Lexer lexer(NormalizeSource(source));
  return lexer.Run();
}

}  // namespace tandem::tokenizer::jinja
