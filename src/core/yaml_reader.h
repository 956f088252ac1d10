// A strict reader over a parsed YAML mapping: every key read is recorded, so unknown keys can be
// reported; every error names the file, line and full key path (or the --set override it came from).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "yaml-cpp/yaml.h"

namespace tandem::config_internal {

struct YamlSource {
  std::string name;                 // the file, for messages
  std::set<std::string> overridden;  // key paths set on the command line
};

// Formats "FILE:LINE: PATH: MESSAGE" (or "--set PATH: MESSAGE" for an override).
absl::Status YamlError(const YamlSource& source, const YAML::Node& node, const std::string& path,
                       const std::string& message);

template <typename E>
using EnumTable = std::vector<std::pair<const char*, E>>;

class MapReader {
 public:
  // `node` must be a mapping (or null/absent, which reads as empty).
  MapReader(const YamlSource* source, YAML::Node node, std::string path);

  // Checks that the node is a mapping; call first.
  absl::Status Validate() const;

  bool Has(const std::string& key) const;
  absl::Status Int(const std::string& key, int64_t* out, int64_t min, int64_t max);
  absl::Status Int(const std::string& key, int* out, int min, int max);
  absl::Status Double(const std::string& key, double* out, double min, double max);
  absl::Status Bool(const std::string& key, bool* out);
  absl::Status String(const std::string& key, std::string* out, bool allow_empty);
  absl::Status IntList(const std::string& key, std::vector<int>* out, int min, int max);
  absl::Status StringList(const std::string& key, std::vector<std::string>* out);

  template <typename E>
  absl::Status Enum(const std::string& key, E* out, const EnumTable<E>& table) {
    std::string text;
    if (!Has(key)) return absl::OkStatus();
    if (auto status = String(key, &text, false); !status.ok()) return status;
    std::string expected;
    for (const auto& [name, value] : table) {
      if (text == name) {
        *out = value;
        return absl::OkStatus();
      }
      expected += expected.empty() ? "" : ", ";
      expected += name;
    }
    return YamlError(*source_, node_[key], Join(key), "expected one of " + expected + ", found '" + text + "'");
  }

  // A nested mapping (absent reads as empty).
  MapReader Child(const std::string& key);
  // A sequence of mappings.
  absl::Status ChildList(const std::string& key, std::vector<MapReader>* out);

  // Errors on the first key that was never read.
  absl::Status Finish() const;

  const std::string& path() const { return path_; }
  const YamlSource& source() const { return *source_; }
  YAML::Node node() const { return node_; }
  std::string Join(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

 private:
  absl::Status Scalar(const std::string& key, std::string* out);

  const YamlSource* source_;
  YAML::Node node_;
  std::string path_;
  std::set<std::string> read_;
};

// Applies "a.b.c=value" overrides (value parsed as YAML) to `root`, recording each path in `source`.
absl::Status ApplyOverrides(YAML::Node root, const std::vector<std::string>& overrides, YamlSource* source);

}  // namespace tandem::config_internal
