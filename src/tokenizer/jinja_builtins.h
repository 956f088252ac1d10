// Filters, tests, methods and globals of the chat-template interpreter.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "jinja_value.h"

namespace tandem::tokenizer::jinja {

// Calls a filter by name; `args` excludes the filtered value. `apply` calls another filter or test by
// name (for map/select).
absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& input, CallArgs& args);
// Applies a test (`is name`); an unknown test is an error.
absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& input, CallArgs& args);
// Attribute access `obj.name` (dict keys first, then methods of strings and dicts); Undefined when absent.
absl::StatusOr<Value> GetAttr(const Value& obj, const std::string& name);
// Subscript `obj[key]`; Undefined when absent.
absl::StatusOr<Value> GetItem(const Value& obj, const Value& key);
absl::StatusOr<Value> Slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// The global functions: range, namespace, dict, raise_exception, strftime_now.
Value MakeGlobal(const std::string& name);
// Python `in`.
absl::StatusOr<bool> Contains(const Value& container, const Value& item);
// Python <, for numbers and strings.
absl::StatusOr<bool> Less(const Value& a, const Value& b);
// Items of an iterable (list, string characters, dict keys); an error for other values.
absl::StatusOr<List> Iterate(const Value& v);
std::string KindName(const Value& v);

}  // namespace tandem::tokenizer::jinja
