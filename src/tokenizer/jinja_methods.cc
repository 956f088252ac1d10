#include "jinja_methods.h"

#include <algorithm>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "jinja_builtins.h"
#include "tandem/core/status.h"
#include "utf8.h"

namespace tandem::tokenizer::jinja {

using K = Value::Kind;

absl::Status TypeError(std::string_view what) { return absl::InvalidArgumentError(std::string(what)); }

namespace {

bool IsPyWhitespace(char32_t c) { return IsUnicodeWhitespace(c) || (c >= 0x1C && c <= 0x1F); }

}  // namespace

// str.strip/lstrip/rstrip: `chars` null strips whitespace.
std::string StripChars(const std::string& s, const Value* chars, bool left, bool right) {
  std::vector<size_t> off = CharOffsets(s);
  size_t n = off.size() - 1;
  std::vector<char32_t> set;
  bool ws = chars == nullptr || chars->is_none() || chars->is_undefined();
  if (!ws) {
    for (size_t k = 0; k < chars->s.size();) {
      size_t len = 0;
      set.push_back(DecodeUtf8(chars->s, k, &len));
      k += len;
    }
  }
  auto strip = [&](size_t idx) {
    size_t len = 0;
    char32_t c = DecodeUtf8(s, off[idx], &len);
    return ws ? IsPyWhitespace(c) : std::find(set.begin(), set.end(), c) != set.end();
  };
  size_t b = 0, e = n;
  if (left)
    while (b < e && strip(b)) ++b;
  if (right)
    while (e > b && strip(e - 1)) --e;
  return s.substr(off[b], off[e] - off[b]);
}

namespace {

std::vector<std::string> SplitStr(const std::string& s, const Value* sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep == nullptr || sep->is_none()) {
    // Whitespace split, dropping empty parts.
    size_t k = 0;
    while (k < s.size()) {
      size_t len = 0;
      while (k < s.size() && IsPyWhitespace(DecodeUtf8(s, k, &len))) k += len;
      if (k >= s.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        std::string rest = s.substr(k);
        out.push_back(StripChars(rest, nullptr, false, true));
        return out;
      }
      size_t start = k;
      while (k < s.size() && !IsPyWhitespace(DecodeUtf8(s, k, &len))) k += len;
      out.push_back(s.substr(start, k - start));
    }
    return out;
  }
  const std::string& d = sep->s;
  size_t start = 0;
  while (true) {
    size_t p = s.find(d, start);
    if (p == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit)) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, p - start));
    start = p + d.size();
  }
}

}  // namespace

std::string ReplaceAll(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  if (from.empty()) {
    // Python inserts `to` between every character.
    std::vector<size_t> off = CharOffsets(s);
    std::string out;
    int64_t done = 0;
    for (size_t k = 0; k + 1 < off.size(); ++k) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      out += s.substr(off[k], off[k + 1] - off[k]);
    }
    if (count < 0 || done < count) out += to;
    return out;
  }
  std::string out;
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t p = s.find(from, start);
    if (p == std::string::npos) break;
    out.append(s, start, p - start);
    out += to;
    start = p + from.size();
    ++done;
  }
  out.append(s, start, std::string::npos);
  return out;
}

std::string MapCase(const std::string& s, int mode) {  // 0 lower, 1 upper
  std::string out;
  out.reserve(s.size());
  for (size_t k = 0; k < s.size();) {
    size_t len = 0;
    char32_t c = DecodeUtf8(s, k, &len);
    k += len;
    if (c < 0x80) {
      out.push_back(static_cast<char>(mode == 0 ? std::tolower(static_cast<int>(c)) : std::toupper(static_cast<int>(c))));
    } else {
      AppendUtf8(c, &out);  // non-ASCII case mapping is not needed by chat templates
    }
  }
  return out;
}

std::string Capitalize(const std::string& s) {
  std::string lower = MapCase(s, 0);
  if (!lower.empty() && lower[0] >= 'a' && lower[0] <= 'z') lower[0] = static_cast<char>(lower[0] - 'a' + 'A');
  return lower;
}

std::string Title(const std::string& s) {
  std::string out;
  bool prev_alpha = false;
  for (char c : s) {
    bool alpha = std::isalpha(static_cast<unsigned char>(c)) != 0;
    if (alpha) {
      out.push_back(static_cast<char>(prev_alpha ? std::tolower(static_cast<unsigned char>(c)) : std::toupper(static_cast<unsigned char>(c))));
    } else {
      out.push_back(c);
    }
    prev_alpha = alpha || std::isdigit(static_cast<unsigned char>(c));
  }
  return out;
}

absl::StatusOr<int64_t> IntArg(const Value* v, int64_t fallback, const char* what) {
  if (v == nullptr || v->is_none()) return fallback;
  if (v->kind == K::kInt) return v->i;
  if (v->kind == K::kBool) return v->b ? 1 : 0;
  return TypeError(absl::StrCat(what, " must be an integer, found ", KindName(*v)));
}

Value BoundMethod(Value self, std::string name);

namespace {

absl::StatusOr<Value> CallStringMethod(const std::string& s, const std::string& name, CallArgs& a) {
  auto str_arg = [&](size_t i, const char* key) -> absl::StatusOr<std::string> {
    const Value* v = a.Get(i, key);
    if (v == nullptr || !v->is_string()) {
      return TypeError(absl::StrCat("str.", name, "() expects a string argument"));
    }
    return v->s;
  };
  if (name == "startswith" || name == "endswith") {
    const Value* v = a.Get(0, "prefix");
    if (v == nullptr) return TypeError(absl::StrCat("str.", name, "() takes one argument"));
    List options = v->kind == K::kList ? *v->list : List{*v};
    for (const auto& o : options) {
      if (!o.is_string()) return TypeError(absl::StrCat("str.", name, "() expects strings"));
      bool hit = name == "startswith" ? s.compare(0, o.s.size(), o.s) == 0
                                      : (s.size() >= o.s.size() && s.compare(s.size() - o.s.size(), o.s.size(), o.s) == 0);
      if (hit) return Value::Bool(true);
    }
    return Value::Bool(false);
  }
  if (name == "strip") return Value::Str(StripChars(s, a.Get(0, "chars"), true, true));
  if (name == "lstrip") return Value::Str(StripChars(s, a.Get(0, "chars"), true, false));
  if (name == "rstrip") return Value::Str(StripChars(s, a.Get(0, "chars"), false, true));
  if (name == "split" || name == "rsplit") {
    TANDEM_ASSIGN_OR_RETURN(int64_t maxsplit, IntArg(a.Get(1, "maxsplit"), -1, "maxsplit"));
    if (name == "rsplit" && maxsplit >= 0) return TypeError("str.rsplit() with maxsplit is not supported");
    List parts;
    for (auto& p : SplitStr(s, a.Get(0, "sep"), maxsplit)) parts.push_back(Value::Str(std::move(p)));
    return Value::MakeList(std::move(parts));
  }
  if (name == "upper") return Value::Str(MapCase(s, 1));
  if (name == "lower") return Value::Str(MapCase(s, 0));
  if (name == "title") return Value::Str(Title(s));
  if (name == "capitalize") return Value::Str(Capitalize(s));
  if (name == "replace") {
    TANDEM_ASSIGN_OR_RETURN(std::string from, str_arg(0, "old"));
    TANDEM_ASSIGN_OR_RETURN(std::string to, str_arg(1, "new"));
    TANDEM_ASSIGN_OR_RETURN(int64_t count, IntArg(a.Get(2, "count"), -1, "count"));
    return Value::Str(ReplaceAll(s, from, to, count));
  }
  if (name == "find" || name == "count" || name == "index") {
    TANDEM_ASSIGN_OR_RETURN(std::string sub, str_arg(0, "sub"));
    if (name == "count") {
      if (sub.empty()) return Value::Int(static_cast<int64_t>(CharOffsets(s).size()));
      int64_t n = 0;
      for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
      return Value::Int(n);
    }
    size_t p = s.find(sub);
    if (p == std::string::npos) {
      if (name == "index") return TypeError("str.index(): substring not found");
      return Value::Int(-1);
    }
    int64_t chars = 0;
    for (size_t k = 0; k < p; ++k) chars += (static_cast<unsigned char>(s[k]) & 0xC0) != 0x80;
    return Value::Int(chars);
  }
  if (name == "join") {
    const Value* v = a.Get(0, "iterable");
    if (v == nullptr) return TypeError("str.join() takes one argument");
    TANDEM_ASSIGN_OR_RETURN(List items, Iterate(*v));
    std::string out;
    for (size_t k = 0; k < items.size(); ++k) {
      if (!items[k].is_string()) return TypeError("str.join() expects strings");
      if (k > 0) out += s;
      out += items[k].s;
    }
    return Value::Str(out);
  }
  if (name == "isdigit" || name == "isalpha" || name == "isspace" || name == "isalnum") {
    if (s.empty()) return Value::Bool(false);
    for (unsigned char c : s) {
      bool ok = name == "isdigit" ? std::isdigit(c) : name == "isalpha" ? std::isalpha(c)
                : name == "isspace" ? std::isspace(c) : std::isalnum(c);
      if (!ok) return Value::Bool(false);
    }
    return Value::Bool(true);
  }
  if (name == "splitlines") {
    List parts;
    size_t start = 0;
    for (size_t k = 0; k < s.size(); ++k) {
      if (s[k] == '\n' || s[k] == '\r') {
        parts.push_back(Value::Str(s.substr(start, k - start)));
        if (s[k] == '\r' && k + 1 < s.size() && s[k + 1] == '\n') ++k;
        start = k + 1;
      }
    }
    if (start < s.size()) parts.push_back(Value::Str(s.substr(start)));
    return Value::MakeList(std::move(parts));
  }
  return TypeError(absl::StrCat("unsupported string method '", name, "'"));
}

}  // namespace

absl::StatusOr<Value> CallDictMethod(const Value& d, const std::string& name, CallArgs& a) {
  if (name == "items") {
    List items;
    for (const auto& [k, v] : *d.dict) items.push_back(Value::MakeTuple({Value::Str(k), v}));
    return Value::MakeList(std::move(items));
  }
  if (name == "keys") {
    List items;
    for (const auto& kv : *d.dict) items.push_back(Value::Str(kv.first));
    return Value::MakeList(std::move(items));
  }
  if (name == "values") {
    List items;
    for (const auto& kv : *d.dict) items.push_back(kv.second);
    return Value::MakeList(std::move(items));
  }
  if (name == "get") {
    const Value* key = a.Get(0, "key");
    if (key == nullptr || !key->is_string()) return TypeError("dict.get() expects a string key");
    const Value* found = d.Find(key->s);
    if (found != nullptr) return *found;
    const Value* def = a.Get(1, "default");
    return def != nullptr ? *def : Value::None();
  }
  return TypeError(absl::StrCat("unsupported dict method '", name, "'"));
}

Value BoundMethod(Value self, std::string name) {
  return Value::MakeFunction([self = std::move(self), name = std::move(name)](CallArgs& a) -> absl::StatusOr<Value> {
    if (self.is_string()) return CallStringMethod(self.s, name, a);
    return CallDictMethod(self, name, a);
  });
}

bool IsStringMethod(const std::string& n) {
  static const char* kNames[] = {"startswith", "endswith", "strip", "lstrip", "rstrip", "split", "rsplit", "upper",
                                 "lower", "title", "capitalize", "replace", "find", "count", "index", "join",
                                 "isdigit", "isalpha", "isspace", "isalnum", "splitlines"};
  for (const char* k : kNames)
    if (n == k) return true;
  return false;
}

}  // namespace tandem::tokenizer::jinja
