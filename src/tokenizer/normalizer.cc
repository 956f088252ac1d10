#include "normalizer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "regex.h"
#include "tandem/core/status.h"
#include "utf8.h"

namespace tandem::tokenizer {
namespace {

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(int options) : options_(options) {}
  std::string Normalize(std::string text) const override {
    // ASCII is invariant under every normalization form.
    bool ascii = true;
    for (char c : text) {
      if (static_cast<unsigned char>(c) >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii || text.empty()) return text;
    utf8proc_uint8_t* out = nullptr;
    utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                      static_cast<utf8proc_ssize_t>(text.size()), &out,
                                      static_cast<utf8proc_option_t>(options_ | UTF8PROC_STABLE));
    if (n < 0) return text;  // input is validated before normalization; keep it unchanged otherwise
    std::string result(reinterpret_cast<char*>(out), static_cast<size_t>(n));
    std::free(out);
    return result;
  }

 private:
  int options_;
};

class LowercaseNormalizer : public Normalizer {
 public:
  std::string Normalize(std::string text) const override {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      size_t len = 0;
      char32_t cp = DecodeUtf8(text, i, &len);
      AppendUtf8(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))), &out);
      i += len;
    }
    return out;
  }
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(std::unique_ptr<Regex> regex, std::string content)
      : regex_(std::move(regex)), content_(std::move(content)) {}
  std::string Normalize(std::string text) const override {
    std::vector<std::pair<size_t, size_t>> matches;
    regex_->FindAll(text, &matches);
    if (matches.empty()) return text;
    std::string out;
    size_t prev = 0;
    for (auto [s, e] : matches) {
      out.append(text, prev, s - prev);
      out += content_;
      prev = e;
    }
    out.append(text, prev, std::string::npos);
    return out;
  }

 private:
  std::unique_ptr<Regex> regex_;
  std::string content_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string Normalize(std::string text) const override {
    if (text.empty()) return text;
    return prefix_ + text;
  }

 private:
  std::string prefix_;
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  std::string Normalize(std::string text) const override {
    size_t start = 0, end = text.size();
    if (left_) {
      while (start < end) {
        size_t len = 0;
        if (!IsUnicodeWhitespace(DecodeUtf8(text, start, &len))) break;
        start += len;
      }
    }
    if (right_) {
      while (end > start) {
        size_t b = end - 1;
        while (b > start && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
        size_t len = 0;
        if (!IsUnicodeWhitespace(DecodeUtf8(text, b, &len))) break;
        end = b;
      }
    }
    return text.substr(start, end - start);
  }

 private:
  bool left_, right_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  std::string Normalize(std::string text) const override {
    for (const auto& p : parts_) text = p->Normalize(std::move(text));
    return text;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Regex>> ParsePattern(const nlohmann::json& pattern) {
  if (pattern.contains("Regex")) return Regex::Compile(pattern["Regex"].get<std::string>());
  if (pattern.contains("String")) return Regex::Compile(pattern["String"].get<std::string>(), /*literal=*/true);
  return absl::InvalidArgumentError(absl::StrCat("expected a pattern {\"Regex\"|\"String\": ...}, found ",
                                                 pattern.dump()));
}

absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const nlohmann::json& j) {
  if (j.is_null()) return std::unique_ptr<Normalizer>();
  const std::string type = j.value("type", "");
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(UTF8PROC_COMPOSE);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(UTF8PROC_DECOMPOSE);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(j.at("prepend").get<std::string>());
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(j.value("strip_left", true), j.value("strip_right", true));
  }
  if (type == "Replace") {
    TANDEM_ASSIGN_OR_RETURN(auto regex, ParsePattern(j.at("pattern")));
    return std::make_unique<ReplaceNormalizer>(std::move(regex), j.at("content").get<std::string>());
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const auto& p : j.at("normalizers")) {
      TANDEM_ASSIGN_OR_RETURN(auto n, ParseNormalizer(p));
      if (n) parts.push_back(std::move(n));
    }
    if (parts.empty()) return std::unique_ptr<Normalizer>();
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  return absl::UnimplementedError(absl::StrCat("unsupported normalizer type '", type,
                                               "' (supported: NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Strip, "
                                               "Replace, Sequence)"));
}

}  // namespace tandem::tokenizer
