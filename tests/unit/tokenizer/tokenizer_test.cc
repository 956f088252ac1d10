// Loading, special tokens, error paths and GGUF vocabularies of the tokenizer.
#include "tandem/tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "golden_fixtures.h"
#include "support/status_matchers.h"
#include "tandem/model/gguf.h"

namespace tandem::tokenizer {
namespace {

TEST(Tokenizer, Llama3SpecialTokens) {
  auto tok = testing::LoadHfFixture("llama3");
  ASSERT_TRUE(tok.ok()) << tok.status();
  const Tokenizer& t = **tok;
  EXPECT_EQ(t.vocab_size(), 128256);
  EXPECT_EQ(t.bos_token(), "<|begin_of_text|>");
  EXPECT_EQ(t.bos_id(), 128000);
  EXPECT_EQ(t.eos_id(), 128001);
  const auto& stops = t.stop_ids();
  EXPECT_NE(std::find(stops.begin(), stops.end(), 128009), stops.end()) << "<|eot_id|> ends a turn";
  EXPECT_TRUE(t.IsSpecial(128009));
  EXPECT_FALSE(t.IsSpecial(9906));
  EXPECT_EQ(t.TokenToPiece(9906).value(), "Hello");
  EXPECT_EQ(t.PieceToToken("Hello"), 9906);
  EXPECT_EQ(t.PieceToToken("<|eot_id|>"), 128009);
  EXPECT_EQ(t.PieceToToken("definitely not a token"), -1);
  EXPECT_ERROR(t.TokenToPiece(200000), absl::StatusCode::kOutOfRange, "token id 200000 is not in the vocabulary");
  EXPECT_TRUE(t.has_chat_template());
}

TEST(Tokenizer, QwenAndDeepSeekSpecialTokens) {
  auto qwen = testing::LoadHfFixture("qwen3");
  ASSERT_TRUE(qwen.ok()) << qwen.status();
  EXPECT_EQ((*qwen)->bos_id(), -1);
  EXPECT_EQ((*qwen)->eos_token(), "<|im_end|>");
  EXPECT_EQ((*qwen)->eos_id(), 151645);
  auto ds = testing::LoadHfFixture("deepseek_v3");
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ((*ds)->bos_id(), 0);
  EXPECT_EQ((*ds)->eos_id(), 1);
}

TEST(Tokenizer, RejectsInvalidUtf8AndSkipsUnknownIds) {
  auto tok = testing::LoadHfFixture("qwen3");
  ASSERT_TRUE(tok.ok());
  auto bad = (*tok)->Encode("abc\xFF\xFE", false);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  // Ids past the vocabulary (models pad their embedding) decode to nothing, as `tokenizers` does.
  EXPECT_EQ((*tok)->Decode({9707, 151900, 11}, false).value(), "Hello,");
}

TEST(Tokenizer, ErrorsNameWhatIsUnsupported) {
  nlohmann::json tokenizer = {
      {"model", {{"type", "BPE"}, {"vocab", {{"a", 0}}}, {"merges", nlohmann::json::array()}}},
      {"normalizer", {{"type", "BertNormalizer"}}},
  };
  auto t = Tokenizer::FromJson(tokenizer, nlohmann::json::object());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("BertNormalizer"), std::string::npos) << t.status();

  tokenizer["normalizer"] = nullptr;
  tokenizer["model"]["type"] = "WordPiece";
  t = Tokenizer::FromJson(tokenizer, nlohmann::json::object());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("WordPiece"), std::string::npos) << t.status();

  auto missing = Tokenizer::FromHfDir("/nonexistent/dir");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);

  tokenizer["model"]["type"] = "BPE";
  tokenizer["model"]["merges"] = {"a b"};
  t = Tokenizer::FromJson(tokenizer, nlohmann::json::object());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("not in the vocabulary"), std::string::npos) << t.status();
}

TEST(Tokenizer, ChatTemplateNeedsArrayOfMessages) {
  auto tok = testing::LoadHfFixture("qwen3");
  ASSERT_TRUE(tok.ok());
  auto r = (*tok)->ApplyChatTemplate(nlohmann::json::object(), true);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  // Extra variables reach the template (Qwen3's enable_thinking switch).
  nlohmann::json messages = {{{"role", "user"}, {"content", "hi"}}};
  auto off = (*tok)->ApplyChatTemplate(messages, true, {{"enable_thinking", false}});
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ(*off, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

// Encode is const and shares the word cache between threads: results must not depend on it.
TEST(Tokenizer, ConcurrentEncodesAgree) {
  auto tok = testing::LoadHfFixture("llama3");
  ASSERT_TRUE(tok.ok());
  auto corpus = testing::ReadJson(testing::GoldenDir() + "/corpus.json");
  std::vector<std::string> lines;
  for (const auto& l : corpus) lines.push_back(l.get<std::string>());
  std::vector<std::vector<TokenId>> expected;
  for (const auto& l : lines) expected.push_back((*tok)->Encode(l, true).value());
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        for (size_t i = 0; i < lines.size(); ++i) {
          size_t k = (i + static_cast<size_t>(t) * 7 + static_cast<size_t>(round)) % lines.size();
          if ((*tok)->Encode(lines[k], true).value() != expected[k]) ++mismatches[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

// A sentencepiece (`llama`) GGUF vocabulary: merges follow scores, unknown characters fall back to bytes.
model::GgufMetadata SpmMetadata() {
  model::GgufMetadata m;
  m.tokenizer_model = "llama";
  auto add = [&](const std::string& t, float score, int type) {
    m.tokens.push_back(t);
    m.scores.push_back(score);
    m.token_types.push_back(type);
  };
  add("<unk>", 0, 2);
  add("<s>", 0, 3);
  add("</s>", 0, 3);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    add(name, 0, 6);
  }
  const std::string sp = "\xE2\x96\x81";  // ▁
  for (const char* c : {"h", "e", "l", "o", "w", "r", "d"}) add(c, -10, 1);
  add(sp, -5, 1);
  add("ll", -3, 1);
  add("he", -2, 1);
  add("llo", -1, 1);
  add("hello", -0.5f, 1);
  add(sp + "hello", -0.1f, 1);
  add("or", -4, 1);
  add(sp + "w", -4, 1);
  m.bos_token_id = 1;
  m.eos_token_id = 2;
  m.unk_token_id = 0;
  m.chat_template = "{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}";
  return m;
}

TEST(TokenizerGguf, SentencepieceVocabulary) {
  auto tok = Tokenizer::FromGguf(SpmMetadata());
  ASSERT_TRUE(tok.ok()) << tok.status();
  const Tokenizer& t = **tok;
  auto ids = t.Encode("hello world\xC3\xA9", true).value();
  std::vector<std::string> pieces;
  for (TokenId id : ids) pieces.push_back(t.TokenToPiece(id).value());
  const std::string sp = "\xE2\x96\x81";
  EXPECT_EQ(pieces, (std::vector<std::string>{"<s>", sp + "hello", sp + "w", "or", "l", "d", "<0xC3>", "<0xA9>"}));
  EXPECT_EQ(t.Decode(ids, true).value(), "hello world\xC3\xA9");
  EXPECT_EQ(t.Decode(ids, false).value(), "<s> hello world\xC3\xA9");
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_token(), "</s>");
  EXPECT_EQ(t.ApplyChatTemplate(nlohmann::json::array({{{"role", "user"}, {"content", "x"}}}), false).value(),
            "[user] x");
}

TEST(TokenizerGguf, RejectsUnknownModelsAndBadIds) {
  model::GgufMetadata m = SpmMetadata();
  m.tokenizer_model = "bert";
  auto t = Tokenizer::FromGguf(m);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("bert"), std::string::npos);
  m = SpmMetadata();
  m.eos_token_id = 100000;
  EXPECT_ERROR(Tokenizer::FromGguf(m), absl::StatusCode::kInvalidArgument,
               "GGUF eos_token_id 100000 is outside the vocabulary");
  m = SpmMetadata();
  m.tokenizer_model = "gpt2";
  m.tokenizer_pre = "some-new-pre";
  t = Tokenizer::FromGguf(m);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("some-new-pre"), std::string::npos);
}

// A gpt2-kind GGUF vocabulary made from a fixture's tokenizer.json must encode as that tokenizer.json
// does: checks the pre-tokenizer llama.cpp's tokenizer.ggml.pre names.
model::GgufMetadata Gpt2MetadataFromTokenizerJson(const std::string& fixture, const std::string& pre) {
  // nlohmann::json, not ordered_json: the latter's linear key lookup is quadratic on a 128K vocabulary.
  std::ifstream in(testing::FixtureDir(fixture) + "/tokenizer.json", std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const nlohmann::json j = nlohmann::json::parse(ss.str());
  model::GgufMetadata m;
  m.tokenizer_model = "gpt2";
  m.tokenizer_pre = pre;
  for (const auto& [token, id] : j["model"]["vocab"].items()) {
    size_t i = id.get<size_t>();
    if (i >= m.tokens.size()) m.tokens.resize(i + 1);
    m.tokens[i] = token;
  }
  m.token_types.assign(m.tokens.size(), 1);
  for (const auto& a : j["added_tokens"]) {
    size_t i = a["id"].get<size_t>();
    if (i >= m.tokens.size()) {
      m.tokens.resize(i + 1);
      m.token_types.resize(i + 1, 1);
    }
    m.tokens[i] = a["content"].get<std::string>();
    m.token_types[i] = a["special"].get<bool>() ? 3 : 4;
  }
  for (const auto& merge : j["model"]["merges"]) {
    m.merges.push_back(merge.is_string() ? merge.get<std::string>()
                                         : merge[0].get<std::string>() + " " + merge[1].get<std::string>());
  }
  return m;
}

TEST(TokenizerGguf, Gpt2PreTokenizersMatchTheirTokenizerJson) {
  auto corpus = testing::ReadJson(testing::GoldenDir() + "/corpus.json");
  for (const auto& [fixture, pre] : std::vector<std::pair<std::string, std::string>>{
           {"llama3", "llama-bpe"}, {"qwen3", "qwen2"}, {"deepseek_v3", "deepseek-v3"}}) {
    auto from_gguf = Tokenizer::FromGguf(Gpt2MetadataFromTokenizerJson(fixture, pre));
    ASSERT_TRUE(from_gguf.ok()) << fixture << ": " << from_gguf.status();
    auto from_json = testing::LoadHfFixture(fixture);
    ASSERT_TRUE(from_json.ok());
    int same = 0;
    for (const auto& line : corpus) {
      const std::string text = line.get<std::string>();
      auto a = (*from_gguf)->Encode(text, false).value();
      auto b = (*from_json)->Encode(text, false).value();
      EXPECT_EQ(a, b) << fixture << ": " << text.substr(0, 80);
      same += a == b;
    }
    std::printf("[gguf %s as %s] %d/%zu corpus lines match tokenizer.json\n", fixture.c_str(), pre.c_str(), same,
                corpus.size());
  }
}

TEST(TokenizerGguf, SmolLm2FromModelPath) {
  const std::string path = testing::SmolLm2GgufPath();
  if (!testing::FileExists(path)) GTEST_SKIP() << path << " is missing (run scripts/fetch_model.sh)";
  auto tok = Tokenizer::FromModelPath(path);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->vocab_size(), 49152);
  EXPECT_EQ((*tok)->eos_token(), "<|im_end|>");
  EXPECT_EQ((*tok)->Encode("Hello world 123", false).value(), (std::vector<TokenId>{19556, 905, 216, 33, 34, 35}));
}

}  // namespace
}  // namespace tandem::tokenizer
