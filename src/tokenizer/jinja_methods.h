// Python's str and dict methods as chat templates call them (`s.strip()`, `d.items()`), following
// CPython's semantics, and the string helpers the filters (jinja_builtins.cc) share with them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "jinja_value.h"

namespace tandem::tokenizer::jinja {

// InvalidArgument carrying Python's TypeError text.
absl::Status TypeError(std::string_view what);
// An optional integer argument: `fallback` when absent or none; an error naming `what` otherwise.
absl::StatusOr<int64_t> IntArg(const Value* v, int64_t fallback, const char* what);

// str.strip/lstrip/rstrip: `chars` null (or none) strips whitespace.
std::string StripChars(const std::string& s, const Value* chars, bool left, bool right);
// str.replace: at most `count` replacements (negative: all).
std::string ReplaceAll(const std::string& s, const std::string& from, const std::string& to, int64_t count);
// str.lower (mode 0) and str.upper (mode 1) of ASCII letters (other characters are kept).
std::string MapCase(const std::string& s, int mode);
std::string Capitalize(const std::string& s);
std::string Title(const std::string& s);

// A dict method (items, keys, values, get) called on `d`.
absl::StatusOr<Value> CallDictMethod(const Value& d, const std::string& name, CallArgs& a);
// `self.name` as a callable: the str or dict method `name` bound to `self`.
Value BoundMethod(Value self, std::string name);
// Whether `name` is a str method templates may call.
bool IsStringMethod(const std::string& name);

}  // namespace tandem::tokenizer::jinja
