// The tokenizers of real models (Llama 3, Qwen3, DeepSeek-V3: the unpacked test fixtures) on any
// bytes. The first byte picks the tokenizer and the mode; the rest is the input:
//   encode: any text encodes (valid UTF-8) or is refused as invalid UTF-8, never anything else; what
//           Llama 3 encodes (byte-level BPE, no normalizer) decodes back to the same text.
//   decode: any ids (past the vocabulary too) decode to valid UTF-8, and streaming them through the
//           incremental detokenizer emits exactly that text, never a broken character on the way.
// A violated property aborts (libFuzzer reports it as a crash with the input).
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "tandem/tokenizer/detokenizer.h"
#include "tandem/tokenizer/tokenizer.h"
#include "utf8.h"

namespace {

using tandem::tokenizer::Tokenizer;
using tandem::tokenizer::TokenId;

const char* const kNames[] = {"llama3", "qwen3", "deepseek_v3"};
constexpr int kLlama3 = 0;

std::vector<std::unique_ptr<Tokenizer>>& Tokenizers() {
  static std::vector<std::unique_ptr<Tokenizer>> all = [] {
    std::vector<std::unique_ptr<Tokenizer>> out;
    for (const char* name : kNames) {
      auto t = Tokenizer::FromHfDir(std::string(TANDEM_FUZZ_TOKENIZER_DIR) + "/" + name);
      if (!t.ok()) {
        std::fprintf(stderr, "fuzz_tokenizer: %s: %s\n", name, std::string(t.status().message()).c_str());
        std::abort();
      }
      out.push_back(*std::move(t));
    }
    return out;
  }();
  return all;
}

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_tokenizer: %s: %s\n", what, detail.c_str());
  std::abort();
}

void CheckEncode(const Tokenizer& t, bool llama3, const std::string& text, bool add_special) {
  auto ids = t.Encode(text, add_special);
  const bool valid = tandem::tokenizer::IsValidUtf8(text);
  if (!valid) {
    if (ids.ok() || ids.status().code() != absl::StatusCode::kInvalidArgument) {
      Fail("invalid UTF-8 not refused", ids.ok() ? "encoded" : std::string(ids.status().message()));
    }
    return;
  }
  if (!ids.ok()) Fail("valid UTF-8 not encoded", std::string(ids.status().message()));
  if (!llama3 || add_special) return;
  auto back = t.Decode(*ids, /*skip_special_tokens=*/false);
  if (!back.ok()) Fail("decode of encoded ids", std::string(back.status().message()));
  if (*back != text) Fail("llama3 round trip", "\"" + text + "\" came back as \"" + *back + "\"");
}

void CheckDecode(const Tokenizer& t, const uint8_t* data, size_t size, bool skip_special) {
  std::vector<TokenId> ids;
  const uint32_t span = static_cast<uint32_t>(t.vocab_size()) + 300;  // some ids past the vocabulary
  for (size_t i = 0; i + 3 <= size; i += 3) {
    ids.push_back(static_cast<TokenId>((data[i] | data[i + 1] << 8 | data[i + 2] << 16) % span));
  }
  auto text = t.Decode(ids, skip_special);
  if (!text.ok()) Fail("decode", std::string(text.status().message()));
  if (!tandem::tokenizer::IsValidUtf8(*text)) Fail("decode gave invalid UTF-8", *text);
  tandem::tokenizer::IncrementalDetokenizer detok(t, {.skip_special_tokens = skip_special});
  std::string streamed;
  for (TokenId id : ids) {
    const std::string piece = detok.Push(id);
    if (!tandem::tokenizer::IsValidUtf8(piece)) Fail("streamed piece is invalid UTF-8", piece);
    streamed += piece;
  }
  streamed += detok.Finish();
  if (streamed != *text) Fail("streamed text differs from decode", "\"" + streamed + "\" vs \"" + *text + "\"");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int which = (data[0] & 3) % 3;
  const bool decode = data[0] & 4, flag = data[0] & 8;
  const Tokenizer& t = *Tokenizers()[static_cast<size_t>(which)];
  if (decode) {
    CheckDecode(t, data + 1, size - 1, flag);
  } else {
    CheckEncode(t, which == kLlama3, std::string(reinterpret_cast<const char*>(data + 1), size - 1), flag);
  }
  return 0;
}
