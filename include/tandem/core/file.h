// Whole-file reads and writes with errors that name the path.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tandem {

// The bytes of `path`; NotFound "<path>: cannot open" when it cannot be opened.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Replaces `path` with `text`; DataLoss "<path>: write failed" (disk full, no permission).
absl::Status WriteStringToFile(const std::string& path, const std::string& text);

}  // namespace tandem
