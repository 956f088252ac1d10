#define PCRE2_CODE_UNIT_WIDTH 8
#include "regex.h"

#include <pcre2.h>

#include "absl/strings/str_cat.h"

namespace tandem::tokenizer {

struct Regex::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Impl() {
    if (code != nullptr) pcre2_code_free(code);
  }
};

namespace {

// Per-thread match data, reused across calls (sized for the largest pattern seen).
struct MatchData {
  pcre2_match_data* data = nullptr;
  ~MatchData() {
    if (data != nullptr) pcre2_match_data_free(data);
  }
};

pcre2_match_data* ThreadMatchData() {
  thread_local MatchData md;
  if (md.data == nullptr) md.data = pcre2_match_data_create(32, nullptr);
  return md.data;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Regex>> Regex::Compile(const std::string& pattern, bool literal) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   literal ? (PCRE2_UTF | PCRE2_LITERAL) : (PCRE2_UTF | PCRE2_UCP), &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR buffer[256];
    pcre2_get_error_message(error, buffer, sizeof(buffer));
    return absl::InvalidArgumentError(absl::StrCat("regex '", pattern, "' does not compile at offset ", offset,
                                                   ": ", reinterpret_cast<const char*>(buffer)));
  }
  auto regex = std::unique_ptr<Regex>(new Regex());
  regex->impl_ = std::make_unique<Impl>();
  regex->impl_->code = code;
  regex->impl_->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return regex;
}

Regex::~Regex() = default;

void Regex::FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>* matches) const {
  pcre2_match_data* md = ThreadMatchData();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos <= text.size()) {
    int rc = impl_->jit ? pcre2_jit_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr)
                        : pcre2_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0) break;
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t start = ov[0], end = ov[1];
    if (end == start) {
      // Empty match: step over one character so the search always advances.
      if (start >= text.size()) break;
      size_t step = 1;
      while (start + step < text.size() && (static_cast<unsigned char>(text[start + step]) & 0xC0) == 0x80) ++step;
      pos = start + step;
      continue;
    }
    matches->emplace_back(start, end);
    pos = end;
  }
}

}  // namespace tandem::tokenizer
