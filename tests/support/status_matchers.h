// Error assertions for tests: a failed absl::Status or StatusOr must have the expected code and a
// message containing the expected words, so a test of an error checks which error it is.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace tandem::testing {

inline const absl::Status& StatusOf(const absl::Status& s) { return s; }

template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

// Success when `s` failed with `code` and its message contains `part`; otherwise a failure that
// prints what was expected and the actual status.
inline ::testing::AssertionResult IsError(const absl::Status& s, absl::StatusCode code, std::string_view part) {
  const std::string_view message(s.message().data(), s.message().size());
  if (!s.ok() && s.code() == code && message.find(part) != std::string_view::npos) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "expected an error " << absl::StatusCodeToString(code) << " containing \""
                                       << part << "\", found " << (s.ok() ? std::string("OK") : s.ToString());
}

}  // namespace tandem::testing

#define EXPECT_ERROR(expr, code, part) \
  EXPECT_TRUE(::tandem::testing::IsError(::tandem::testing::StatusOf(expr), (code), (part)))
#define ASSERT_ERROR(expr, code, part) \
  ASSERT_TRUE(::tandem::testing::IsError(::tandem::testing::StatusOf(expr), (code), (part)))
