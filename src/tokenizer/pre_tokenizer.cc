#include "pre_tokenizer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "normalizer.h"
#include "regex.h"
#include "tandem/core/status.h"
#include "utf8.h"

namespace tandem::tokenizer {

const char kGpt2Pattern[] = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

using Span = std::pair<size_t, size_t>;
struct Part {
  Span span;
  bool is_match;
};

// Applies a split behavior to a partition of [0, n) into matched and unmatched parts (as `tokenizers`
// SplitDelimiterBehavior does) and appends the resulting non-empty pieces.
void ApplyBehavior(const PreToken& piece, std::vector<Part>& parts, SplitBehavior behavior,
                   std::vector<PreToken>* out) {
  std::vector<Span> spans;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const auto& p : parts)
        if (!p.is_match) spans.push_back(p.span);
      break;
    case SplitBehavior::kIsolated:
      for (const auto& p : parts) spans.push_back(p.span);
      break;
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const auto& p : parts) {
        if (p.is_match && !previous_match && !spans.empty()) {
          spans.back().second = p.span.second;
        } else {
          spans.push_back(p.span);
        }
        previous_match = p.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->is_match && !previous_match && !spans.empty()) {
          spans.back().first = it->span.first;
        } else {
          spans.push_back(it->span);
        }
        previous_match = it->is_match;
      }
      std::reverse(spans.begin(), spans.end());
      break;
    }
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const auto& p : parts) {
        if (p.is_match == previous_match && !spans.empty()) {
          spans.back().second = p.span.second;
        } else {
          spans.push_back(p.span);
        }
        previous_match = p.is_match;
      }
      break;
    }
  }
  for (const auto& [s, e] : spans) {
    if (e > s) out->push_back(PreToken{piece.text.substr(s, e - s), piece.at_start && s == 0});
  }
}

// Partitions `text` into matches of `matches` and the gaps between them.
std::vector<Part> Partition(size_t n, const std::vector<Span>& matches, bool invert) {
  std::vector<Part> parts;
  size_t prev = 0;
  for (auto [s, e] : matches) {
    if (s > prev) parts.push_back({{prev, s}, invert});
    parts.push_back({{s, e}, !invert});
    prev = e;
  }
  if (prev < n) parts.push_back({{prev, n}, invert});
  return parts;
}

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(std::unique_ptr<Regex> regex, SplitBehavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    std::vector<PreToken> out;
    out.reserve(pieces->size() * 2);
    std::vector<Span> matches;
    for (const auto& piece : *pieces) {
      matches.clear();
      regex_->FindAll(piece.text, &matches);
      auto parts = Partition(piece.text.size(), matches, invert_);
      ApplyBehavior(piece, parts, behavior_, &out);
    }
    *pieces = std::move(out);
  }

 private:
  std::unique_ptr<Regex> regex_;
  SplitBehavior behavior_;
  bool invert_;
};

// Splits on characters with a predicate (Digits: numeric characters).
class DigitsPreTokenizer : public PreTokenizer {
 public:
  explicit DigitsPreTokenizer(bool individual) : individual_(individual) {}
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    std::vector<PreToken> out;
    for (const auto& piece : *pieces) {
      std::vector<Part> parts;
      const std::string& t = piece.text;
      for (size_t i = 0; i < t.size();) {
        size_t len = 0;
        bool numeric = IsUnicodeNumeric(DecodeUtf8(t, i, &len));
        parts.push_back({{i, i + len}, numeric});
        i += len;
      }
      // Merge runs of non-matches first (gaps between matches are single parts in `tokenizers`).
      std::vector<Part> merged;
      for (const auto& p : parts) {
        if (!merged.empty() && !p.is_match && !merged.back().is_match) {
          merged.back().span.second = p.span.second;
        } else {
          merged.push_back(p);
        }
      }
      ApplyBehavior(piece, merged, individual_ ? SplitBehavior::kIsolated : SplitBehavior::kContiguous, &out);
    }
    *pieces = std::move(out);
  }

 private:
  bool individual_;
};

class WhitespaceSplitPreTokenizer : public PreTokenizer {
 public:
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    std::vector<PreToken> out;
    for (const auto& piece : *pieces) {
      const std::string& t = piece.text;
      size_t start = std::string::npos;
      for (size_t i = 0; i <= t.size();) {
        size_t len = 1;
        bool ws = i == t.size() || IsUnicodeWhitespace(DecodeUtf8(t, i, &len));
        if (ws && start != std::string::npos) {
          out.push_back(PreToken{t.substr(start, i - start), piece.at_start && start == 0});
          start = std::string::npos;
        } else if (!ws && start == std::string::npos) {
          start = i;
        }
        i += len;
      }
    }
    *pieces = std::move(out);
  }
};

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::unique_ptr<Regex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    if (add_prefix_space_) {
      for (auto& p : *pieces) {
        if (p.text.empty() || p.text[0] != ' ') {
          std::string prefixed(1, ' ');
          prefixed += p.text;
          p.text = std::move(prefixed);
        }
      }
    }
    if (!regex_) return;
    std::vector<PreToken> out;
    std::vector<Span> matches;
    for (const auto& piece : *pieces) {
      matches.clear();
      regex_->FindAll(piece.text, &matches);
      auto parts = Partition(piece.text.size(), matches, false);
      ApplyBehavior(piece, parts, SplitBehavior::kIsolated, &out);
    }
    *pieces = std::move(out);
  }
  // The mapping of bytes to printable characters is done by the BPE model on raw bytes.
  bool byte_level() const override { return true; }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  enum class Prepend { kAlways, kFirst, kNever };
  MetaspacePreTokenizer(std::string replacement, Prepend prepend, bool split)
      : replacement_(std::move(replacement)), prepend_(prepend), split_(split) {}
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    std::vector<PreToken> out;
    for (auto& piece : *pieces) {
      std::string t;
      for (char c : piece.text) {
        if (c == ' ') {
          t += replacement_;
        } else {
          t.push_back(c);
        }
      }
      bool prepend = false;
      switch (prepend_) {
        case Prepend::kAlways:
          prepend = true;
          break;
        case Prepend::kFirst:
          prepend = piece.at_start;
          break;
        case Prepend::kNever:
          break;
      }
      if (prepend && t.compare(0, replacement_.size(), replacement_) != 0) {
        std::string prefixed = replacement_;
        prefixed += t;
        t = std::move(prefixed);
      }
      PreToken rewritten{std::move(t), piece.at_start};
      if (!split_) {
        out.push_back(std::move(rewritten));
        continue;
      }
      std::vector<Span> matches;
      for (size_t pos = rewritten.text.find(replacement_); pos != std::string::npos;
           pos = rewritten.text.find(replacement_, pos + replacement_.size())) {
        matches.emplace_back(pos, pos + replacement_.size());
      }
      auto parts = Partition(rewritten.text.size(), matches, false);
      ApplyBehavior(rewritten, parts, SplitBehavior::kMergedWithNext, &out);
    }
    *pieces = std::move(out);
  }

 private:
  std::string replacement_;
  Prepend prepend_;
  bool split_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    for (const auto& p : parts_) p->PreTokenize(pieces);
  }
  bool byte_level() const override { return !parts_.empty() && parts_.back()->byte_level(); }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

absl::StatusOr<SplitBehavior> ParseBehavior(const std::string& s) {
  if (s == "Removed") return SplitBehavior::kRemoved;
  if (s == "Isolated") return SplitBehavior::kIsolated;
  if (s == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (s == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (s == "Contiguous") return SplitBehavior::kContiguous;
  return absl::InvalidArgumentError(absl::StrCat("unknown Split behavior '", s, "'"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const nlohmann::json& j) {
  if (j.is_null()) return std::unique_ptr<PreTokenizer>();
  const std::string type = j.value("type", "");
  if (type == "Split") {
    TANDEM_ASSIGN_OR_RETURN(auto regex, ParsePattern(j.at("pattern")));
    TANDEM_ASSIGN_OR_RETURN(auto behavior, ParseBehavior(j.value("behavior", "Isolated")));
    return std::make_unique<SplitPreTokenizer>(std::move(regex), behavior, j.value("invert", false));
  }
  if (type == "ByteLevel") {
    std::unique_ptr<Regex> regex;
    if (j.value("use_regex", true)) {
      TANDEM_ASSIGN_OR_RETURN(regex, Regex::Compile(kGpt2Pattern));
    }
    return std::make_unique<ByteLevelPreTokenizer>(j.value("add_prefix_space", true), std::move(regex));
  }
  if (type == "Digits") return std::make_unique<DigitsPreTokenizer>(j.value("individual_digits", false));
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplitPreTokenizer>();
  if (type == "Metaspace") {
    std::string replacement = j.value("replacement", "\xE2\x96\x81");
    auto prepend = MetaspacePreTokenizer::Prepend::kAlways;
    if (j.contains("prepend_scheme")) {
      const std::string scheme = j["prepend_scheme"].get<std::string>();
      if (scheme == "first") {
        prepend = MetaspacePreTokenizer::Prepend::kFirst;
      } else if (scheme == "never") {
        prepend = MetaspacePreTokenizer::Prepend::kNever;
      } else if (scheme != "always") {
        return absl::InvalidArgumentError(absl::StrCat("unknown Metaspace prepend_scheme '", scheme, "'"));
      }
    } else if (!j.value("add_prefix_space", true)) {
      prepend = MetaspacePreTokenizer::Prepend::kNever;
    }
    return std::make_unique<MetaspacePreTokenizer>(replacement, prepend, j.value("split", true));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (const auto& p : j.at("pretokenizers")) {
      TANDEM_ASSIGN_OR_RETURN(auto pt, ParsePreTokenizer(p));
      if (pt) parts.push_back(std::move(pt));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  return absl::UnimplementedError(absl::StrCat("unsupported pre_tokenizer type '", type,
                                               "' (supported: Split, ByteLevel, Digits, Metaspace, "
                                               "WhitespaceSplit, Sequence)"));
}

}  // namespace tandem::tokenizer
