#include <cmath>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "yaml_reader.h"

namespace tandem::config_internal {
namespace {

std::string_view KindName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
      return "nothing";
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
  }
  return "an unknown node";
}

std::string Found(const YAML::Node& node) {
  if (node.IsScalar()) return absl::StrCat("'", node.Scalar(), "'");
  return std::string(KindName(node));
}

}  // namespace

absl::Status YamlError(const YamlSource& source, const YAML::Node& node, const std::string& path,
                       const std::string& message) {
  if (source.overridden.count(path) > 0) {
    return absl::InvalidArgumentError(absl::StrCat("--set ", path, ": ", message));
  }
  const int line = node.IsDefined() ? node.Mark().line : -1;
  if (line >= 0) {
    return absl::InvalidArgumentError(absl::StrCat(source.name, ":", line + 1, ": ", path, ": ", message));
  }
  return absl::InvalidArgumentError(absl::StrCat(source.name, ": ", path, ": ", message));
}

MapReader::MapReader(const YamlSource* source, YAML::Node node, std::string path)
    : source_(source), node_(std::move(node)), path_(std::move(path)) {}

absl::Status MapReader::Validate() const {
  if (!node_.IsDefined() || node_.IsNull() || node_.IsMap()) return absl::OkStatus();
  return YamlError(*source_, node_, path_.empty() ? "<root>" : path_,
                   absl::StrCat("expected a mapping, found ", Found(node_)));
}

bool MapReader::Has(const std::string& key) const {
  return node_.IsMap() && node_[key].IsDefined() && !node_[key].IsNull();
}

absl::Status MapReader::Scalar(const std::string& key, std::string* out) {
  read_.insert(key);
  const YAML::Node value = node_[key];
  if (!value.IsScalar()) {
    return YamlError(*source_, value, Join(key), absl::StrCat("expected a scalar value, found ", Found(value)));
  }
  *out = value.Scalar();
  return absl::OkStatus();
}

absl::Status MapReader::Int(const std::string& key, int64_t* out, int64_t min, int64_t max) {
  read_.insert(key);
  if (!Has(key)) return absl::OkStatus();
  std::string text;
  if (auto status = Scalar(key, &text); !status.ok()) return status;
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value)) {
    return YamlError(*source_, node_[key], Join(key), absl::StrCat("expected an integer, found '", text, "'"));
  }
  if (value < min || value > max) {
    return YamlError(*source_, node_[key], Join(key),
                     absl::StrCat("expected an integer in [", min, ", ", max, "], found ", value));
  }
  *out = value;
  return absl::OkStatus();
}

absl::Status MapReader::Int(const std::string& key, int* out, int min, int max) {
  int64_t value = *out;
  if (auto status = Int(key, &value, min, max); !status.ok()) return status;
  *out = static_cast<int>(value);
  return absl::OkStatus();
}

absl::Status MapReader::Double(const std::string& key, double* out, double min, double max) {
  read_.insert(key);
  if (!Has(key)) return absl::OkStatus();
  std::string text;
  if (auto status = Scalar(key, &text); !status.ok()) return status;
  double value = 0;
  if (!absl::SimpleAtod(text, &value) || !std::isfinite(value)) {
    return YamlError(*source_, node_[key], Join(key), absl::StrCat("expected a number, found '", text, "'"));
  }
  if (value < min || value > max) {
    return YamlError(*source_, node_[key], Join(key),
                     absl::StrCat("expected a number in [", min, ", ", max, "], found ", text));
  }
  *out = value;
  return absl::OkStatus();
}

absl::Status MapReader::Bool(const std::string& key, bool* out) {
  read_.insert(key);
  if (!Has(key)) return absl::OkStatus();
  std::string text;
  if (auto status = Scalar(key, &text); !status.ok()) return status;
  if (text == "true") {
    *out = true;
  } else if (text == "false") {
    *out = false;
  } else {
    return YamlError(*source_, node_[key], Join(key), absl::StrCat("expected true or false, found '", text, "'"));
  }
  return absl::OkStatus();
}

absl::Status MapReader::String(const std::string& key, std::string* out, bool allow_empty) {
  read_.insert(key);
  if (!Has(key)) return absl::OkStatus();
  std::string text;
  if (auto status = Scalar(key, &text); !status.ok()) return status;
  if (text.empty() && !allow_empty) {
    return YamlError(*source_, node_[key], Join(key), "expected a non-empty string, found ''");
  }
  *out = text;
  return absl::OkStatus();
}

absl::Status MapReader::IntList(const std::string& key, std::vector<int>* out, int min, int max) {
  read_.insert(key);
  if (!Has(key)) return absl::OkStatus();
  const YAML::Node list = node_[key];
  if (!list.IsSequence()) {
    return YamlError(*source_, list, Join(key), absl::StrCat("expected a list of integers, found ", Found(list)));
  }
  std::vector<int> values;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string item_path = absl::StrCat(Join(key), "[", i, "]");
    int64_t value = 0;
    if (!list[i].IsScalar() || !absl::SimpleAtoi(list[i].Scalar(), &value)) {
      return YamlError(*source_, list[i], item_path, absl::StrCat("expected an integer, found ", Found(list[i])));
    }
    if (value < min || value > max) {
      return YamlError(*source_, list[i], item_path,
                       absl::StrCat("expected an integer in [", min, ", ", max, "], found ", value));
    }
    values.push_back(static_cast<int>(value));
  }
  *out = std::move(values);
  return absl::OkStatus();
}

absl::Status MapReader::StringList(const std::string& key, std::vector<std::string>* out) {
  read_.insert(key);
  if (!Has(key)) return absl::OkStatus();
  const YAML::Node list = node_[key];
  if (!list.IsSequence()) {
    return YamlError(*source_, list, Join(key), absl::StrCat("expected a list of strings, found ", Found(list)));
  }
  std::vector<std::string> values;
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (!list[i].IsScalar() || list[i].Scalar().empty()) {
      return YamlError(*source_, list[i], absl::StrCat(Join(key), "[", i, "]"),
                       absl::StrCat("expected a non-empty string, found ", Found(list[i])));
    }
    values.push_back(list[i].Scalar());
  }
  *out = std::move(values);
  return absl::OkStatus();
}

MapReader MapReader::Child(const std::string& key) {
  read_.insert(key);
  YAML::Node child = node_.IsMap() ? node_[key] : YAML::Node();
  return MapReader(source_, child, Join(key));
}

absl::Status MapReader::ChildList(const std::string& key, std::vector<MapReader>* out) {
  read_.insert(key);
  if (!Has(key)) return absl::OkStatus();
  const YAML::Node list = node_[key];
  if (!list.IsSequence()) {
    return YamlError(*source_, list, Join(key), absl::StrCat("expected a list, found ", Found(list)));
  }
  for (std::size_t i = 0; i < list.size(); ++i) {
    MapReader item(source_, list[i], absl::StrCat(Join(key), "[", i, "]"));
    if (!list[i].IsMap()) {
      return YamlError(*source_, list[i], item.path(), absl::StrCat("expected a mapping, found ", Found(list[i])));
    }
    out->push_back(std::move(item));
  }
  return absl::OkStatus();
}

absl::Status MapReader::Finish() const {
  if (!node_.IsMap()) return absl::OkStatus();
  for (const auto& entry : node_) {
    const std::string key = entry.first.Scalar();
    if (read_.count(key) == 0) {
      std::string known;
      for (const auto& name : read_) known += (known.empty() ? "" : ", ") + name;
      return YamlError(*source_, entry.first, Join(key),
                       absl::StrCat("unknown key (valid keys here: ", known, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyOverrides(YAML::Node root, const std::vector<std::string>& overrides, YamlSource* source) {
  for (const std::string& entry : overrides) {
    const std::size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--set ", entry, ": expected KEY.PATH=VALUE (e.g. pools.decode.replicas=3)"));
    }
    const std::string path = entry.substr(0, eq);
    const std::string text = entry.substr(eq + 1);
    YAML::Node value;
    try {
      value = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("--set ", path, ": value is not valid YAML: ", e.msg));
    }
    std::vector<std::string> parts = absl::StrSplit(path, '.');
    YAML::Node node = root;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      if (parts[i].empty()) return absl::InvalidArgumentError(absl::StrCat("--set ", path, ": empty key segment"));
      YAML::Node next = node[parts[i]];
      if (next.IsDefined() && !next.IsNull() && !next.IsMap()) {
        return absl::InvalidArgumentError(absl::StrCat("--set ", path, ": '", parts[i], "' is not a mapping"));
      }
      if (!next.IsDefined() || next.IsNull()) node[parts[i]] = YAML::Node(YAML::NodeType::Map);
      node.reset(node[parts[i]]);
    }
    if (parts.back().empty()) return absl::InvalidArgumentError(absl::StrCat("--set ", path, ": empty key"));
    node[parts.back()] = value;
    source->overridden.insert(path);
  }
  return absl::OkStatus();
}

}  // namespace tandem::config_internal
