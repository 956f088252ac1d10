// Encode/decode and chat templates against goldens generated with the Python `tokenizers` and
// `jinja2` packages (tests/golden/tokenizer/generate_goldens.py).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <map>

#include "golden_fixtures.h"
#include "tandem/core/status.h"
#include "tandem/model/gguf.h"
#include "tandem/tokenizer/detokenizer.h"

namespace tandem::tokenizer {
namespace {

using testing::FileExists;
using testing::GoldenDir;
using testing::ReadJson;

class TokenizerGolden : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string name = GetParam();
    golden_ = ReadJson(GoldenDir() + "/" + name + ".golden.json");
    corpus_ = ReadJson(GoldenDir() + "/corpus.json");
    conversations_ = ReadJson(GoldenDir() + "/conversations.json");
    static std::map<std::string, std::shared_ptr<Tokenizer>> loaded;
    if (!loaded.count(name)) {
      auto tok = LoadForGolden(name);
      if (!tok.ok() && tok.status().code() == absl::StatusCode::kNotFound) GTEST_SKIP() << tok.status();
      ASSERT_TRUE(tok.ok()) << tok.status();
      loaded[name] = std::move(tok).value();
    }
    tokenizer_ = loaded[name];
  }
  static absl::StatusOr<std::unique_ptr<Tokenizer>> LoadForGolden(const std::string& name);

  nlohmann::ordered_json golden_, corpus_, conversations_;
  std::shared_ptr<Tokenizer> tokenizer_;
};

std::string Printable(const std::string& s) {
  std::string out = s.substr(0, 120);
  return out + (s.size() > 120 ? "..." : "");
}

TEST_P(TokenizerGolden, EncodeDecodeMatchesTokenizers) {
  const auto& encodings = golden_["encodings"];
  ASSERT_EQ(encodings.size(), corpus_.size());
  int passed = 0, total = 0;
  for (size_t i = 0; i < corpus_.size(); ++i) {
    const std::string text = corpus_[i].get<std::string>();
    const auto& g = encodings[i];
    auto ids = tokenizer_->Encode(text, false);
    ASSERT_TRUE(ids.ok()) << ids.status();
    const auto expected = g["ids"].get<std::vector<TokenId>>();
    const auto expected_special =
        g["ids_with_special"].is_null() ? expected : g["ids_with_special"].get<std::vector<TokenId>>();
    auto ids_special = tokenizer_->Encode(text, true);
    ASSERT_TRUE(ids_special.ok()) << ids_special.status();
    auto decoded = tokenizer_->Decode(expected, false);
    auto decoded_skip = tokenizer_->Decode(expected_special, true);
    ASSERT_TRUE(decoded.ok() && decoded_skip.ok());
    bool ok = true;
    ok &= *ids == expected;
    ok &= *ids_special == expected_special;
    ok &= *decoded == g["decoded"].get<std::string>();
    ok &= *decoded_skip == g["decoded_skip_special"].get<std::string>();
    EXPECT_EQ(*ids, expected) << "line " << i << ": " << Printable(text);
    EXPECT_EQ(*ids_special, expected_special) << "line " << i << " (special): " << Printable(text);
    EXPECT_EQ(*decoded, g["decoded"].get<std::string>()) << "line " << i;
    EXPECT_EQ(*decoded_skip, g["decoded_skip_special"].get<std::string>()) << "line " << i;
    passed += ok;
    ++total;
  }
  std::printf("[golden %s] encode/decode: %d/%d corpus lines match\n", GetParam().c_str(), passed, total);
}

TEST_P(TokenizerGolden, ChatTemplateMatchesJinja2) {
  int passed = 0, total = 0;
  for (const auto& r : golden_["chat"]) {
    const std::string conv_name = r["conversation"].get<std::string>();
    const bool add_generation_prompt = r["add_generation_prompt"].get<bool>();
    nlohmann::ordered_json conv;
    for (const auto& c : conversations_) {
      if (c["name"].get<std::string>() == conv_name) conv = c;
    }
    nlohmann::ordered_json extra = nlohmann::ordered_json::object();
    if (conv.contains("tools")) extra["tools"] = conv["tools"];
    auto rendered = tokenizer_->ApplyChatTemplate(conv["messages"], add_generation_prompt, extra);
    bool ok;
    if (r["error"].is_null()) {
      ok = rendered.ok() && *rendered == r["text"].get<std::string>();
      EXPECT_TRUE(rendered.ok()) << conv_name << ": " << rendered.status();
      if (rendered.ok()) {
        EXPECT_EQ(*rendered, r["text"].get<std::string>()) << conv_name << " gen=" << add_generation_prompt;
      }
    } else {
      ok = !rendered.ok();
      EXPECT_FALSE(rendered.ok()) << conv_name << ": jinja2 failed with " << r["error"];
    }
    passed += ok;
    ++total;
  }
  std::printf("[golden %s] chat template: %d/%d renders match\n", GetParam().c_str(), passed, total);
}

// Streams every corpus line token by token and checks the pieces reassemble the full decode.
TEST_P(TokenizerGolden, DetokenizerReassemblesEveryLine) {
  int passed = 0, total = 0;
  for (size_t i = 0; i < corpus_.size(); ++i) {
    const std::string text = corpus_[i].get<std::string>();
    auto ids = tokenizer_->Encode(text, false);
    ASSERT_TRUE(ids.ok());
    for (bool skip : {false, true}) {
      IncrementalDetokenizer detok(*tokenizer_, DetokenizerOptions{skip, {}, false});
      std::string streamed;
      for (TokenId id : *ids) {
        std::string piece = detok.Push(id);
        // Every emitted piece is whole UTF-8.
        EXPECT_TRUE(tokenizer_->Encode(piece, false).ok()) << "line " << i << " emitted broken UTF-8";
        streamed += piece;
      }
      streamed += detok.Finish();
      auto full = tokenizer_->Decode(*ids, skip);
      ASSERT_TRUE(full.ok());
      EXPECT_EQ(streamed, *full) << "line " << i << " skip=" << skip;
      passed += streamed == *full;
      ++total;
    }
  }
  std::printf("[golden %s] detokenizer: %d/%d streams reassemble\n", GetParam().c_str(), passed, total);
}

// A long run of one character must not make the merge loop quadratic (timing printed, not asserted).
TEST_P(TokenizerGolden, LongRunEncodesQuickly) {
  for (const char* unit : {"a", " ", "\xE4\xB8\x80", "7"}) {
    std::string text;
    while (text.size() < 100 * 1024) text += unit;
    auto start = std::chrono::steady_clock::now();
    auto ids = tokenizer_->Encode(text, false);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    ASSERT_TRUE(ids.ok());
    EXPECT_FALSE(ids->empty());
    auto back = tokenizer_->Decode(*ids, false);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, text);
    std::printf("[golden %s] 100 KiB of '%s': %zu tokens in %.1f ms\n", GetParam().c_str(),
                unit[0] == ' ' ? "space" : unit, ids->size(), ms);
  }
}

// Loaded once per process: the vocabularies take a few hundred milliseconds each.
absl::StatusOr<std::unique_ptr<Tokenizer>> TokenizerGolden::LoadForGolden(const std::string& name) {
  if (name == "spm_tiny") return Tokenizer::FromHfDir(GoldenDir() + "/spm_tiny");
  if (name != "smollm2") return testing::LoadHfFixture(name);
  const std::string path = testing::SmolLm2GgufPath();
  if (!FileExists(path)) return absl::NotFoundError(path + " is missing (run scripts/fetch_model.sh)");
  TANDEM_ASSIGN_OR_RETURN(auto file, model::GgufFile::Open(path));
  TANDEM_ASSIGN_OR_RETURN(auto metadata, model::ReadGgufMetadata(*file));
  return Tokenizer::FromGguf(metadata);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TokenizerGolden, ::testing::Values("llama3", "qwen3", "deepseek_v3", "smollm2", "spm_tiny"),
                         [](const ::testing::TestParamInfo<std::string>& param_info) { return param_info.param; });

}  // namespace
}  // namespace tandem::tokenizer
