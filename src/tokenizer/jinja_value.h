// Values of the chat-template interpreter, with Python semantics (truthiness, str(), ==, json.dumps).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem::tokenizer::jinja {

struct Value;
struct CallArgs;
using Function = std::function<absl::StatusOr<Value>(CallArgs&)>;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // insertion-ordered, string keys

struct Value {
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kFunction };
  Kind kind = Kind::kUndefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                  // kString; for kUndefined, the name that was undefined
  std::shared_ptr<List> list;     // kList (tuples are lists too)
  bool tuple = false;             // a kList that prints as a Python tuple
  std::shared_ptr<Dict> dict;     // kDict, kNamespace (mutable through `set ns.x`)
  std::shared_ptr<Function> fn;   // kFunction

  static Value Undefined(std::string name = "") {
    Value v;
    v.s = std::move(name);
    return v;
  }
  static Value None() { return Make(Kind::kNone); }
  static Value Bool(bool x) {
    Value v = Make(Kind::kBool);
    v.b = x;
    return v;
  }
  static Value Int(int64_t x) {
    Value v = Make(Kind::kInt);
    v.i = x;
    return v;
  }
  static Value Float(double x) {
    Value v = Make(Kind::kFloat);
    v.f = x;
    return v;
  }
  static Value Str(std::string x) {
    Value v = Make(Kind::kString);
    v.s = std::move(x);
    return v;
  }
  static Value MakeList(List items = {}) {
    Value v = Make(Kind::kList);
    v.list = std::make_shared<List>(std::move(items));
    return v;
  }
  static Value MakeTuple(List items) {
    Value v = MakeList(std::move(items));
    v.tuple = true;
    return v;
  }
  static Value MakeDict(Dict items = {}) {
    Value v = Make(Kind::kDict);
    v.dict = std::make_shared<Dict>(std::move(items));
    return v;
  }
  static Value MakeNamespace(Dict items = {}) {
    Value v = Make(Kind::kNamespace);
    v.dict = std::make_shared<Dict>(std::move(items));
    return v;
  }
  static Value MakeFunction(Function f) {
    Value v = Make(Kind::kFunction);
    v.fn = std::make_shared<Function>(std::move(f));
    return v;
  }
  static Value FromJson(const nlohmann::ordered_json& j);

  bool is_undefined() const { return kind == Kind::kUndefined; }
  bool is_none() const { return kind == Kind::kNone; }
  bool is_string() const { return kind == Kind::kString; }
  bool is_number() const { return kind == Kind::kInt || kind == Kind::kFloat || kind == Kind::kBool; }
  bool is_mapping() const { return kind == Kind::kDict || kind == Kind::kNamespace; }

  // Dict/namespace lookup; nullptr when absent.
  const Value* Find(const std::string& key) const;
  void Set(const std::string& key, Value v);

  bool Truthy() const;
  double AsDouble() const;
  // Python str() (undefined prints as empty).
  std::string Str() const;
  // Python repr().
  std::string Repr() const;

 private:
  static Value Make(Kind k) {
    Value v;
    v.kind = k;
    return v;
  }
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  // The keyword argument `name`, or else positional `index`, or nullptr.
  const Value* Get(size_t index, const std::string& name) const;
};

// Python ==.
bool Equal(const Value& a, const Value& b);
// json.dumps(value, ensure_ascii=False, indent=indent (<0: none), sort_keys=sort_keys).
absl::StatusOr<std::string> ToJson(const Value& v, int indent, bool sort_keys);
std::string PyFloatRepr(double d);

// Unicode code point helpers for Python-style string indexing.
std::vector<size_t> CharOffsets(const std::string& s);  // byte offset of each character, plus s.size()

}  // namespace tandem::tokenizer::jinja
