// Renders a parsed template against a set of variables.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "jinja_ast.h"
#include "jinja_value.h"

namespace tandem::tokenizer::jinja {

// `variables` must be a dict value (the template's globals).
absl::StatusOr<std::string> Render(const Template& tmpl, const Value& variables);

}  // namespace tandem::tokenizer::jinja
