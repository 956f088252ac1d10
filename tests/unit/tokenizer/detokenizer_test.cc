// Streaming detokenization: split characters, special tokens, stop strings across token boundaries.
#include "tandem/tokenizer/detokenizer.h"

#include <gtest/gtest.h>

#include "golden_fixtures.h"

namespace tandem::tokenizer {
namespace {

class DetokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto tok = testing::LoadHfFixture("qwen3");
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = std::move(tok).value().release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    tokenizer_ = nullptr;
  }
  std::vector<TokenId> Encode(const std::string& text) { return tokenizer_->Encode(text, false).value(); }

  // Streams `ids` and returns the emitted pieces (Finish() last).
  std::vector<std::string> Stream(IncrementalDetokenizer& d, const std::vector<TokenId>& ids) {
    std::vector<std::string> pieces;
    for (TokenId id : ids) pieces.push_back(d.Push(id));
    pieces.push_back(d.Finish());
    return pieces;
  }
  static std::string Join(const std::vector<std::string>& pieces) {
    std::string s;
    for (const auto& p : pieces) s += p;
    return s;
  }
  static Tokenizer* tokenizer_;
};
Tokenizer* DetokenizerTest::tokenizer_ = nullptr;

TEST_F(DetokenizerTest, HoldsBackSplitCharacters) {
  // A rare CJK character / emoji is several byte-level tokens; nothing is emitted mid-character.
  const std::string text = "a\xF0\xAA\x9B\x96\xE9\xBE\x98" "b";  // a𪛖龘b
  auto ids = Encode(text);
  ASSERT_GT(ids.size(), 4u);
  IncrementalDetokenizer d(*tokenizer_, {});
  auto pieces = Stream(d, ids);
  int empty = 0;
  for (const auto& p : pieces) {
    empty += p.empty();
    EXPECT_TRUE(tokenizer_->Encode(p, false).ok()) << "broken UTF-8 emitted";
  }
  EXPECT_GT(empty, 0) << "some tokens should complete no character";
  EXPECT_EQ(Join(pieces), text);
}

TEST_F(DetokenizerTest, IncompleteCharacterAtEndBecomesReplacement) {
  auto ids = Encode("\xF0\xAA\x9B\x96");  // 𪛖: three byte-level tokens
  ASSERT_GT(ids.size(), 1u);
  ids.pop_back();
  IncrementalDetokenizer d(*tokenizer_, {});
  auto pieces = Stream(d, ids);
  EXPECT_EQ(Join(pieces), tokenizer_->Decode(ids, false).value());
  EXPECT_NE(Join(pieces).find("\xEF\xBF\xBD"), std::string::npos);
}

TEST_F(DetokenizerTest, SkipsSpecialTokensWhenAsked) {
  auto ids = Encode("<|im_start|>assistant\nHi<|im_end|>");
  IncrementalDetokenizer skip(*tokenizer_, DetokenizerOptions{true, {}, false});
  EXPECT_EQ(Join(Stream(skip, ids)), "assistant\nHi");
  IncrementalDetokenizer keep(*tokenizer_, DetokenizerOptions{false, {}, false});
  EXPECT_EQ(Join(Stream(keep, ids)), "<|im_start|>assistant\nHi<|im_end|>");
}

TEST_F(DetokenizerTest, StopStringSpanningTokens) {
  const std::string text = "The answer is 42.\n\nObservation: done and more text";
  auto ids = Encode(text);
  DetokenizerOptions options;
  options.stop_strings = {"Observation:", "never"};
  IncrementalDetokenizer d(*tokenizer_, options);
  std::string out;
  size_t pushed = 0;
  for (TokenId id : ids) {
    out += d.Push(id);
    ++pushed;
    if (d.stopped()) break;
  }
  out += d.Finish();
  EXPECT_TRUE(d.stopped());
  EXPECT_EQ(d.matched_stop(), "Observation:");
  EXPECT_EQ(out, "The answer is 42.\n\n");
  EXPECT_LT(pushed, ids.size());
  EXPECT_EQ(d.Push(ids.back()), "");  // nothing after stopping
}

TEST_F(DetokenizerTest, StopStringIncludedWhenAsked) {
  auto ids = Encode("abc STOP def");
  DetokenizerOptions options{true, {"STOP"}, true};
  IncrementalDetokenizer d(*tokenizer_, options);
  EXPECT_EQ(Join(Stream(d, ids)), "abc STOP");
}

TEST_F(DetokenizerTest, PartialStopPrefixIsReleasedAtTheEnd) {
  // "Obs" could start "Observation:", so it is held back, then released by Finish().
  auto ids = Encode("see Obs");
  DetokenizerOptions options;
  options.stop_strings = {"Observation:"};
  IncrementalDetokenizer d(*tokenizer_, options);
  std::string streamed;
  for (TokenId id : ids) streamed += d.Push(id);
  EXPECT_EQ(streamed.find("Obs"), std::string::npos);
  streamed += d.Finish();
  EXPECT_EQ(streamed, "see Obs");
  EXPECT_FALSE(d.stopped());
}

TEST_F(DetokenizerTest, StopStringInsideOneToken) {
  auto ids = Encode("hello world");
  DetokenizerOptions options;
  options.stop_strings = {"lo w"};
  IncrementalDetokenizer d(*tokenizer_, options);
  EXPECT_EQ(Join(Stream(d, ids)), "hel");
}

TEST_F(DetokenizerTest, PromptContextDoesNotLeakIntoOutput) {
  auto prompt = Encode("User: hi\nAssistant:");
  auto gen = Encode(" Hello there");
  IncrementalDetokenizer d(*tokenizer_, {}, prompt);
  EXPECT_EQ(Join(Stream(d, gen)), " Hello there");
}

}  // namespace
}  // namespace tandem::tokenizer
