// The chat-template interpreter's filters, tests, globals and Python value operations (attribute and
// item access, slices, `in`, ordering) as jinja2 and Python define them; str and dict methods are in
// jinja_methods.cc. About 600 lines: one table of jinja2's builtins.
#include "jinja_builtins.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "jinja_methods.h"
#include "tandem/core/status.h"
#include "utf8.h"

namespace tandem::tokenizer::jinja {
namespace {

using K = Value::Kind;

absl::StatusOr<int64_t> Normalize(int64_t idx, int64_t n) { return idx < 0 ? idx + n : idx; }

std::string HtmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

// The value of attribute `attr` (dotted paths allowed) of an item, as jinja's make_attrgetter.
absl::StatusOr<Value> AttrPath(const Value& item, const std::string& attr) {
  Value cur = item;
  size_t start = 0;
  while (true) {
    size_t dot = attr.find('.', start);
    std::string part = attr.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    int64_t index = 0;
    if (numeric && !absl::SimpleAtoi(part, &index)) {
      return absl::InvalidArgumentError(absl::StrCat("attribute path '", attr, "': index ", part, " does not fit in 64 bits"));
    }
    if (numeric) {
      TANDEM_ASSIGN_OR_RETURN(cur, GetItem(cur, Value::Int(index)));
    } else {
      TANDEM_ASSIGN_OR_RETURN(cur, GetAttr(cur, part));
    }
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

absl::StatusOr<Value> SelectOrReject(const Value& input, CallArgs& args, bool by_attr, bool select) {
  TANDEM_ASSIGN_OR_RETURN(List items, Iterate(input));
  size_t next = 0;
  std::string attr;
  if (by_attr) {
    if (args.positional.empty() || !args.positional[0].is_string()) return TypeError("selectattr/rejectattr need an attribute name");
    attr = args.positional[0].s;
    next = 1;
  }
  std::string test;
  if (args.positional.size() > next) {
    if (!args.positional[next].is_string()) return TypeError("select/reject test name must be a string");
    test = args.positional[next].s;
  }
  CallArgs test_args;
  for (size_t k = next + 1; k < args.positional.size(); ++k) test_args.positional.push_back(args.positional[k]);
  List out;
  for (const auto& item : items) {
    Value v = item;
    if (by_attr) {
      TANDEM_ASSIGN_OR_RETURN(v, AttrPath(item, attr));
    }
    bool ok = false;
    if (test.empty()) {
      ok = v.Truthy();
    } else {
      TANDEM_ASSIGN_OR_RETURN(ok, ApplyTest(test, v, test_args));
    }
    if (ok == select) out.push_back(item);
  }
  return Value::MakeList(std::move(out));
}

absl::StatusOr<int> Compare(const Value& a, const Value& b) {
  TANDEM_ASSIGN_OR_RETURN(bool lt, Less(a, b));
  if (lt) return -1;
  TANDEM_ASSIGN_OR_RETURN(bool gt, Less(b, a));
  return gt ? 1 : 0;
}

}  // namespace

std::string KindName(const Value& v) {
  switch (v.kind) {
    case K::kUndefined: return "undefined";
    case K::kNone: return "none";
    case K::kBool: return "bool";
    case K::kInt: return "int";
    case K::kFloat: return "float";
    case K::kString: return "string";
    case K::kList: return "list";
    case K::kDict: return "dict";
    case K::kNamespace: return "namespace";
    case K::kFunction: return "function";
  }
  return "?";
}

absl::StatusOr<List> Iterate(const Value& v) {
  switch (v.kind) {
    case K::kList:
      return *v.list;
    case K::kDict: {
      List keys;
      for (const auto& kv : *v.dict) keys.push_back(Value::Str(kv.first));
      return keys;
    }
    case K::kString: {
      List chars;
      std::vector<size_t> off = CharOffsets(v.s);
      for (size_t k = 0; k + 1 < off.size(); ++k) chars.push_back(Value::Str(v.s.substr(off[k], off[k + 1] - off[k])));
      return chars;
    }
    case K::kUndefined:
      return List{};
    case K::kNone:
    case K::kBool:
    case K::kInt:
    case K::kFloat:
    case K::kNamespace:
    case K::kFunction:
      break;
  }
  return TypeError(absl::StrCat("'", KindName(v), "' object is not iterable"));
}

absl::StatusOr<bool> Contains(const Value& container, const Value& item) {
  switch (container.kind) {
    case K::kString:
      if (!item.is_string()) return TypeError(absl::StrCat("'in <string>' requires string as left operand, not ", KindName(item)));
      return container.s.find(item.s) != std::string::npos;
    case K::kList:
      for (const auto& v : *container.list)
        if (Equal(v, item)) return true;
      return false;
    case K::kDict:
    case K::kNamespace:
      return item.is_string() && container.Find(item.s) != nullptr;
    case K::kUndefined:
      return false;
    case K::kNone:
    case K::kBool:
    case K::kInt:
    case K::kFloat:
    case K::kFunction:
      break;
  }
  return TypeError(absl::StrCat("argument of type '", KindName(container), "' is not iterable"));
}

absl::StatusOr<bool> Less(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return a.AsDouble() < b.AsDouble();
  if (a.is_string() && b.is_string()) return a.s < b.s;
  if (a.kind == K::kList && b.kind == K::kList) {
    for (size_t k = 0; k < a.list->size() && k < b.list->size(); ++k) {
      if (Equal((*a.list)[k], (*b.list)[k])) continue;
      return Less((*a.list)[k], (*b.list)[k]);
    }
    return a.list->size() < b.list->size();
  }
  return TypeError(absl::StrCat("'<' not supported between '", KindName(a), "' and '", KindName(b), "'"));
}

absl::StatusOr<Value> GetAttr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) {
    return TypeError(absl::StrCat("'", obj.s.empty() ? "value" : obj.s, "' is undefined (reading attribute '", name, "')"));
  }
  if (obj.is_mapping()) {
    if (const Value* v = obj.Find(name)) return *v;
    if (obj.kind == K::kDict && (name == "items" || name == "keys" || name == "values" || name == "get")) {
      return BoundMethod(obj, name);
    }
    return Value::Undefined(name);
  }
  if (obj.is_string() && IsStringMethod(name)) return BoundMethod(obj, name);
  return Value::Undefined(name);
}

absl::StatusOr<Value> GetItem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) return TypeError(absl::StrCat("'", obj.s.empty() ? "value" : obj.s, "' is undefined"));
  if (obj.is_mapping()) {
    if (key.is_string()) {
      const Value* v = obj.Find(key.s);
      return v != nullptr ? *v : Value::Undefined(key.s);
    }
    return Value::Undefined();
  }
  if ((obj.kind == K::kList || obj.is_string()) && (key.kind == K::kInt || key.kind == K::kBool)) {
    int64_t idx = key.kind == K::kBool ? key.b : key.i;
    if (obj.kind == K::kList) {
      int64_t n = static_cast<int64_t>(obj.list->size());
      TANDEM_ASSIGN_OR_RETURN(idx, Normalize(idx, n));
      if (idx < 0 || idx >= n) return Value::Undefined();
      return (*obj.list)[idx];
    }
    std::vector<size_t> off = CharOffsets(obj.s);
    int64_t n = static_cast<int64_t>(off.size()) - 1;
    TANDEM_ASSIGN_OR_RETURN(idx, Normalize(idx, n));
    if (idx < 0 || idx >= n) return Value::Undefined();
    return Value::Str(obj.s.substr(off[idx], off[idx + 1] - off[idx]));
  }
  if (key.is_string()) return GetAttr(obj, key.s);
  return Value::Undefined();
}

absl::StatusOr<Value> Slice(const Value& obj, const Value& start_v, const Value& stop_v, const Value& step_v) {
  auto opt = [](const Value& v, const char* what) -> absl::StatusOr<std::optional<int64_t>> {
    if (v.is_undefined() || v.is_none()) return std::optional<int64_t>();
    if (v.kind != K::kInt) return TypeError(absl::StrCat("slice ", what, " must be an integer"));
    return std::optional<int64_t>(v.i);
  };
  TANDEM_ASSIGN_OR_RETURN(auto start, opt(start_v, "start"));
  TANDEM_ASSIGN_OR_RETURN(auto stop, opt(stop_v, "stop"));
  TANDEM_ASSIGN_OR_RETURN(auto step_o, opt(step_v, "step"));
  int64_t step = step_o.value_or(1);
  if (step == 0) return TypeError("slice step cannot be zero");
  std::vector<Value> items;
  bool is_str = obj.is_string();
  std::vector<size_t> off;
  int64_t n = 0;
  if (is_str) {
    off = CharOffsets(obj.s);
    n = static_cast<int64_t>(off.size()) - 1;
  } else if (obj.kind == K::kList) {
    n = static_cast<int64_t>(obj.list->size());
  } else {
    return TypeError(absl::StrCat("'", KindName(obj), "' object is not subscriptable"));
  }
  // Python's slice.indices.
  auto clamp = [&](std::optional<int64_t> v, int64_t def) -> int64_t {
    if (!v) return def;
    int64_t x = *v;
    if (x < 0) x += n;
    if (step > 0) return std::clamp<int64_t>(x, 0, n);
    return std::clamp<int64_t>(x, -1, n - 1);
  };
  int64_t b = clamp(start, step > 0 ? 0 : n - 1);
  int64_t e = clamp(stop, step > 0 ? n : -1);
  std::string s;
  List out;
  for (int64_t k = b; step > 0 ? k < e : k > e; k += step) {
    if (is_str) {
      s.append(obj.s, off[k], off[k + 1] - off[k]);
    } else {
      out.push_back((*obj.list)[k]);
    }
  }
  return is_str ? Value::Str(s) : Value::MakeList(std::move(out));
}

absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& v, CallArgs& args) {
  const Value* arg = args.positional.empty() ? nullptr : &args.positional[0];
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.kind == K::kDict;
  if (name == "number") return v.kind == K::kInt || v.kind == K::kFloat;
  if (name == "integer") return v.kind == K::kInt;
  if (name == "float") return v.kind == K::kFloat;
  if (name == "boolean") return v.kind == K::kBool;
  if (name == "true") return v.kind == K::kBool && v.b;
  if (name == "false") return v.kind == K::kBool && !v.b;
  if (name == "callable") return v.kind == K::kFunction;
  if (name == "iterable") return v.kind == K::kList || v.kind == K::kDict || v.is_string();
  if (name == "sequence") return v.kind == K::kList || v.kind == K::kDict || v.is_string();
  if (name == "odd" || name == "even") {
    if (v.kind != K::kInt) return TypeError(absl::StrCat("test '", name, "' needs an integer"));
    return (v.i % 2 != 0) == (name == "odd");
  }
  if (name == "lower") return v.is_string() && MapCase(v.s, 0) == v.s;
  if (name == "upper") return v.is_string() && MapCase(v.s, 1) == v.s;
  if (arg == nullptr) {
    if (name == "eq" || name == "equalto" || name == "ne" || name == "lt" || name == "gt" || name == "le" ||
        name == "ge" || name == "in" || name == "sameas" || name == "divisibleby" || name == "==" ) {
      return TypeError(absl::StrCat("test '", name, "' needs an argument"));
    }
    return TypeError(absl::StrCat("unsupported test '", name, "'"));
  }
  if (name == "eq" || name == "equalto" || name == "==") return Equal(v, *arg);
  if (name == "ne" || name == "!=") return !Equal(v, *arg);
  if (name == "sameas") return Equal(v, *arg) && v.kind == arg->kind;
  if (name == "lt" || name == "<") return Less(v, *arg);
  if (name == "gt" || name == ">") return Less(*arg, v);
  if (name == "le" || name == "<=") {
    TANDEM_ASSIGN_OR_RETURN(bool gt, Less(*arg, v));
    return !gt;
  }
  if (name == "ge" || name == ">=") {
    TANDEM_ASSIGN_OR_RETURN(bool lt, Less(v, *arg));
    return !lt;
  }
  if (name == "in") return Contains(*arg, v);
  if (name == "divisibleby") {
    if (v.kind != K::kInt || arg->kind != K::kInt || arg->i == 0) return TypeError("divisibleby needs nonzero integers");
    return v.i % arg->i == 0;
  }
  return TypeError(absl::StrCat("unsupported test '", name, "'"));
}

absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& v, CallArgs& args) {
  auto need_string = [&]() -> absl::Status {
    if (v.is_string()) return absl::OkStatus();
    return TypeError(absl::StrCat("filter '", name, "' expects a string, found ", KindName(v)));
  };
  if (name == "trim") {
    return Value::Str(StripChars(v.Str(), args.Get(0, "chars"), true, true));
  }
  if (name == "tojson") {
    TANDEM_ASSIGN_OR_RETURN(int64_t indent, IntArg(args.Get(1, "indent"), -1, "indent"));
    const Value* sort = args.Get(4, "sort_keys");
    TANDEM_ASSIGN_OR_RETURN(std::string json, ToJson(v, static_cast<int>(indent), sort != nullptr && sort->Truthy()));
    return Value::Str(std::move(json));
  }
  if (name == "length" || name == "count") {
    switch (v.kind) {
      case K::kString: return Value::Int(static_cast<int64_t>(CharOffsets(v.s).size()) - 1);
      case K::kList: return Value::Int(static_cast<int64_t>(v.list->size()));
      case K::kDict:
      case K::kNamespace: return Value::Int(static_cast<int64_t>(v.dict->size()));
      case K::kUndefined: return Value::Int(0);
      case K::kNone:
      case K::kBool:
      case K::kInt:
      case K::kFloat:
      case K::kFunction: break;
    }
    return TypeError(absl::StrCat("object of type '", KindName(v), "' has no len()"));
  }
  if (name == "first" || name == "last") {
    TANDEM_ASSIGN_OR_RETURN(List items, Iterate(v));
    if (items.empty()) return Value::Undefined();
    return name == "first" ? items.front() : items.back();
  }
  if (name == "lower" || name == "upper") return Value::Str(MapCase(v.Str(), name == "lower" ? 0 : 1));
  if (name == "capitalize") return Value::Str(Capitalize(v.Str()));
  if (name == "title") return Value::Str(Title(v.Str()));
  if (name == "string") return Value::Str(v.Str());
  if (name == "safe") return v;
  if (name == "e" || name == "escape") return Value::Str(HtmlEscape(v.Str()));
  if (name == "replace") {
    const Value* from = args.Get(0, "old");
    const Value* to = args.Get(1, "new");
    if (from == nullptr || to == nullptr) return TypeError("replace needs two arguments");
    TANDEM_ASSIGN_OR_RETURN(int64_t count, IntArg(args.Get(2, "count"), -1, "count"));
    return Value::Str(ReplaceAll(v.Str(), from->Str(), to->Str(), count));
  }
  if (name == "join") {
    const Value* sep = args.Get(0, "d");
    const Value* attr = args.Get(1, "attribute");
    TANDEM_ASSIGN_OR_RETURN(List items, Iterate(v));
    std::string out;
    for (size_t k = 0; k < items.size(); ++k) {
      if (k > 0 && sep != nullptr) out += sep->Str();
      Value item = items[k];
      if (attr != nullptr) {
        TANDEM_ASSIGN_OR_RETURN(item, AttrPath(item, attr->Str()));
      }
      out += item.Str();
    }
    return Value::Str(out);
  }
  if (name == "default" || name == "d") {
    const Value* def = args.Get(0, "default_value");
    const Value* boolean = args.Get(1, "boolean");
    bool use_default = v.is_undefined() || (boolean != nullptr && boolean->Truthy() && !v.Truthy());
    if (use_default) return def != nullptr ? *def : Value::Str("");
    return v;
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::MakeList();
    if (v.kind != K::kDict) return TypeError(absl::StrCat("filter 'items' expects a mapping, found ", KindName(v)));
    CallArgs none;
    return CallDictMethod(v, "items", none);
  }
  if (name == "list") {
    TANDEM_ASSIGN_OR_RETURN(List items, Iterate(v));
    return Value::MakeList(std::move(items));
  }
  if (name == "selectattr") return SelectOrReject(v, args, true, true);
  if (name == "rejectattr") return SelectOrReject(v, args, true, false);
  if (name == "select") return SelectOrReject(v, args, false, true);
  if (name == "reject") return SelectOrReject(v, args, false, false);
  if (name == "map") {
    TANDEM_ASSIGN_OR_RETURN(List items, Iterate(v));
    List out;
    const Value* attr = args.Get(99, "attribute");
    if (attr != nullptr) {
      const Value* def = args.Get(99, "default");
      for (const auto& item : items) {
        TANDEM_ASSIGN_OR_RETURN(Value x, AttrPath(item, attr->Str()));
        out.push_back(x.is_undefined() && def != nullptr ? *def : x);
      }
      return Value::MakeList(std::move(out));
    }
    if (args.positional.empty() || !args.positional[0].is_string()) return TypeError("map needs a filter name or attribute=");
    CallArgs rest;
    rest.positional.assign(args.positional.begin() + 1, args.positional.end());
    rest.keyword = args.keyword;
    for (const auto& item : items) {
      TANDEM_ASSIGN_OR_RETURN(Value x, ApplyFilter(args.positional[0].s, item, rest));
      out.push_back(x);
    }
    return Value::MakeList(std::move(out));
  }
  if (name == "unique") {
    TANDEM_ASSIGN_OR_RETURN(List items, Iterate(v));
    List out;
    for (const auto& item : items) {
      bool seen = false;
      for (const auto& o : out) seen = seen || Equal(o, item);
      if (!seen) out.push_back(item);
    }
    return Value::MakeList(std::move(out));
  }
  if (name == "reverse") {
    if (v.is_string()) return Slice(v, Value::None(), Value::None(), Value::Int(-1));
    TANDEM_ASSIGN_OR_RETURN(List items, Iterate(v));
    std::reverse(items.begin(), items.end());
    return Value::MakeList(std::move(items));
  }
  if (name == "sort") {
    TANDEM_ASSIGN_OR_RETURN(List items, Iterate(v));
    const Value* reverse = args.Get(0, "reverse");
    const Value* attr = args.Get(2, "attribute");
    absl::Status error;
    std::vector<Value> keys;
    for (const auto& item : items) {
      Value key = item;
      if (attr != nullptr) {
        TANDEM_ASSIGN_OR_RETURN(key, AttrPath(item, attr->Str()));
      }
      keys.push_back(key);
    }
    std::vector<size_t> order(items.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
      auto c = Compare(keys[x], keys[y]);
      if (!c.ok()) {
        error = c.status();
        return false;
      }
      return (reverse != nullptr && reverse->Truthy()) ? *c > 0 : *c < 0;
    });
    TANDEM_RETURN_IF_ERROR(error);
    List out;
    for (size_t k : order) out.push_back(items[k]);
    return Value::MakeList(std::move(out));
  }
  if (name == "int") {
    if (v.kind == K::kInt) return v;
    if (v.kind == K::kFloat) return Value::Int(static_cast<int64_t>(v.f));
    if (v.kind == K::kBool) return Value::Int(v.b);
    if (v.is_string()) {
      try {
        return Value::Int(std::stoll(v.s));
      } catch (...) {
      }
    }
    const Value* def = args.Get(0, "default");
    return def != nullptr ? *def : Value::Int(0);
  }
  if (name == "float") {
    if (v.is_number()) return Value::Float(v.AsDouble());
    if (v.is_string()) {
      try {
        return Value::Float(std::stod(v.s));
      } catch (...) {
      }
    }
    return Value::Float(0);
  }
  if (name == "abs") {
    if (v.kind == K::kInt) return Value::Int(v.i < 0 ? -v.i : v.i);
    if (v.kind == K::kFloat) return Value::Float(std::fabs(v.f));
    return TypeError("abs needs a number");
  }
  if (name == "round") {
    TANDEM_ASSIGN_OR_RETURN(int64_t precision, IntArg(args.Get(0, "precision"), 0, "precision"));
    double scale = std::pow(10.0, static_cast<double>(precision));
    return Value::Float(std::round(v.AsDouble() * scale) / scale);
  }
  if (name == "sum" || name == "min" || name == "max") {
    TANDEM_ASSIGN_OR_RETURN(List items, Iterate(v));
    if (name == "sum") {
      bool is_float = false;
      int64_t si = 0;
      double sf = 0;
      for (const auto& item : items) {
        if (!item.is_number()) return TypeError("sum needs numbers");
        is_float = is_float || item.kind == K::kFloat;
        si += item.kind == K::kBool ? item.b : item.i;
        sf += item.AsDouble();
      }
      return is_float ? Value::Float(sf) : Value::Int(si);
    }
    if (items.empty()) return Value::Undefined();
    Value best = items[0];
    for (const auto& item : items) {
      TANDEM_ASSIGN_OR_RETURN(int c, Compare(item, best));
      if (name == "min" ? c < 0 : c > 0) best = item;
    }
    return best;
  }
  if (name == "indent") {
    TANDEM_RETURN_IF_ERROR(need_string());
    const Value* width_v = args.Get(0, "width");
    std::string pad = width_v == nullptr ? "    " : width_v->is_string() ? width_v->s : std::string(static_cast<size_t>(width_v->i), ' ');
    const Value* first = args.Get(1, "first");
    const Value* blank = args.Get(2, "blank");
    std::string out;
    size_t start = 0;
    bool first_line = true;
    while (true) {
      size_t nl = v.s.find('\n', start);
      std::string line = v.s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
      bool add = first_line ? (first != nullptr && first->Truthy()) : (!line.empty() || (blank != nullptr && blank->Truthy()));
      if (add) out += pad;
      out += line;
      if (nl == std::string::npos) break;
      out += "\n";
      start = nl + 1;
      first_line = false;
    }
    return Value::Str(out);
  }
  if (name == "dictsort") {
    if (v.kind != K::kDict) return TypeError("dictsort needs a mapping");
    Dict items = *v.dict;
    std::stable_sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    List out;
    for (auto& [k, x] : items) out.push_back(Value::MakeTuple({Value::Str(k), x}));
    return Value::MakeList(std::move(out));
  }
  return TypeError(absl::StrCat("unsupported filter '", name, "'"));
}

Value MakeGlobal(const std::string& name) {
  if (name == "range") {
    return Value::MakeFunction([](CallArgs& a) -> absl::StatusOr<Value> {
      std::vector<int64_t> n;
      for (const auto& v : a.positional) {
        if (v.kind != K::kInt) return TypeError("range() needs integers");
        n.push_back(v.i);
      }
      int64_t start = 0, stop = 0, step = 1;
      if (n.size() == 1) {
        stop = n[0];
      } else if (n.size() == 2 || n.size() == 3) {
        start = n[0];
        stop = n[1];
        if (n.size() == 3) step = n[2];
      } else {
        return TypeError("range() takes 1 to 3 arguments");
      }
      if (step == 0) return TypeError("range() step cannot be zero");
      List out;
      for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
        if (out.size() > 1000000) return TypeError("range() too large");
        out.push_back(Value::Int(k));
      }
      return Value::MakeList(std::move(out));
    });
  }
  if (name == "namespace" || name == "dict") {
    bool ns = name == "namespace";
    return Value::MakeFunction([ns](CallArgs& a) -> absl::StatusOr<Value> {
      Dict items;
      for (const auto& p : a.positional) {
        if (!p.is_mapping()) return TypeError("namespace()/dict() positional argument must be a mapping");
        for (const auto& kv : *p.dict) items.push_back(kv);
      }
      for (const auto& kv : a.keyword) items.push_back(kv);
      return ns ? Value::MakeNamespace(std::move(items)) : Value::MakeDict(std::move(items));
    });
  }
  if (name == "raise_exception") {
    return Value::MakeFunction([](CallArgs& a) -> absl::StatusOr<Value> {
      return absl::InvalidArgumentError(
          absl::StrCat("raise_exception: ", a.positional.empty() ? "" : a.positional[0].Str()));
    });
  }
  if (name == "strftime_now") {
    return Value::MakeFunction([](CallArgs& a) -> absl::StatusOr<Value> {
      if (a.positional.empty() || !a.positional[0].is_string()) return TypeError("strftime_now() needs a format string");
      std::time_t now = std::time(nullptr);
      std::tm tm{};
      localtime_r(&now, &tm);
      char buf[256];
      size_t n = std::strftime(buf, sizeof(buf), a.positional[0].s.c_str(), &tm);
      return Value::Str(std::string(buf, n));
    });
  }
  return Value::Undefined(name);
}

}  // namespace tandem::tokenizer::jinja
