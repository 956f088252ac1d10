#include "decoder.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "byte_level.h"
#include "normalizer.h"
#include "regex.h"
#include "tandem/core/status.h"
#include "utf8.h"

namespace tandem::tokenizer {
namespace {

class ByteLevelDecoder : public Decoder {
 public:
  std::vector<std::string> DecodeChain(std::vector<std::string> tokens) const override {
    std::string bytes;
    for (const auto& t : tokens) {
      if (auto b = ByteLevelToBytes(t)) {
        bytes += *b;
      } else {
        bytes += t;
      }
    }
    return {Utf8Lossy(bytes)};
  }
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::unique_ptr<Regex> regex, std::string content)
      : regex_(std::move(regex)), content_(std::move(content)) {}
  std::vector<std::string> DecodeChain(std::vector<std::string> tokens) const override {
    std::vector<std::pair<size_t, size_t>> matches;
    for (auto& t : tokens) {
      matches.clear();
      regex_->FindAll(t, &matches);
      if (matches.empty()) continue;
      std::string out;
      size_t prev = 0;
      for (auto [s, e] : matches) {
        out.append(t, prev, s - prev);
        out += content_;
        prev = e;
      }
      out.append(t, prev, std::string::npos);
      t = std::move(out);
    }
    return tokens;
  }

 private:
  std::unique_ptr<Regex> regex_;
  std::string content_;
};

// Tokens <0xXX> become bytes; a run of them that is not valid UTF-8 becomes one U+FFFD per byte.
class ByteFallbackDecoder : public Decoder {
 public:
  std::vector<std::string> DecodeChain(std::vector<std::string> tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    size_t pending_count = 0;
    auto flush = [&]() {
      if (pending_count == 0) return;
      if (IsValidUtf8(pending)) {
        out.push_back(pending);
      } else {
        for (size_t i = 0; i < pending_count; ++i) out.push_back("\xEF\xBF\xBD");
      }
      pending.clear();
      pending_count = 0;
    };
    for (auto& t : tokens) {
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
        int value = 0;
        bool ok = true;
        for (int k = 3; k < 5; ++k) {
          char c = t[k];
          int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
          if (d < 0) ok = false;
          value = value * 16 + d;
        }
        if (ok) {
          pending.push_back(static_cast<char>(value));
          ++pending_count;
          continue;
        }
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    return out;
  }
};

class FuseDecoder : public Decoder {
 public:
  std::vector<std::string> DecodeChain(std::vector<std::string> tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    return {all};
  }
};

// Removes up to `start` leading and `stop` trailing occurrences of `content` from every token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, int start, int stop) : content_(std::move(content)), start_(start), stop_(stop) {}
  std::vector<std::string> DecodeChain(std::vector<std::string> tokens) const override {
    for (auto& t : tokens) {
      size_t b = 0, e = t.size();
      for (int i = 0; i < start_ && e - b >= content_.size() && t.compare(b, content_.size(), content_) == 0; ++i) {
        b += content_.size();
      }
      for (int i = 0; i < stop_ && e - b >= content_.size() &&
                      t.compare(e - content_.size(), content_.size(), content_) == 0;
           ++i) {
        e -= content_.size();
      }
      t = t.substr(b, e - b);
    }
    return tokens;
  }

 private:
  std::string content_;
  int start_, stop_;
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first) : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  std::vector<std::string> DecodeChain(std::vector<std::string> tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (size_t p = 0; p < t.size();) {
        if (t.compare(p, replacement_.size(), replacement_) == 0) {
          if (!(i == 0 && strip_first_)) out.push_back(' ');
          p += replacement_.size();
        } else {
          out.push_back(t[p++]);
        }
      }
      tokens[i] = std::move(out);
    }
    return tokens;
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  std::vector<std::string> DecodeChain(std::vector<std::string> tokens) const override {
    for (const auto& p : parts_) tokens = p->DecodeChain(std::move(tokens));
    return tokens;
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Decoder>> ParseDecoder(const nlohmann::json& j) {
  if (j.is_null()) return std::unique_ptr<Decoder>();
  const std::string type = j.value("type", "");
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    return std::make_unique<StripDecoder>(j.at("content").get<std::string>(), j.value("start", 0), j.value("stop", 0));
  }
  if (type == "Replace") {
    TANDEM_ASSIGN_OR_RETURN(auto regex, ParsePattern(j.at("pattern")));
    return std::make_unique<ReplaceDecoder>(std::move(regex), j.at("content").get<std::string>());
  }
  if (type == "Metaspace") {
    bool strip_first = true;
    if (j.contains("prepend_scheme")) {
      strip_first = j["prepend_scheme"].get<std::string>() != "never";
    } else {
      strip_first = j.value("add_prefix_space", true);
    }
    return std::make_unique<MetaspaceDecoder>(j.value("replacement", "\xE2\x96\x81"), strip_first);
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> parts;
    for (const auto& p : j.at("decoders")) {
      TANDEM_ASSIGN_OR_RETURN(auto d, ParseDecoder(p));
      if (d) parts.push_back(std::move(d));
    }
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  return absl::UnimplementedError(absl::StrCat("unsupported decoder type '", type,
                                               "' (supported: ByteLevel, ByteFallback, Fuse, Strip, Replace, "
                                               "Metaspace, Sequence)"));
}

}  // namespace tandem::tokenizer
