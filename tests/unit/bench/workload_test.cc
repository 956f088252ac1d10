#include "tandem/bench/workload.h"

#include <algorithm>
#include <fstream>
#include <set>

#include "golden_fixtures.h"
#include "gtest/gtest.h"
#include "support/status_matchers.h"

namespace tandem::bench {
namespace {

using tokenizer::testing::LoadHfFixture;

int64_t Count(const tokenizer::Tokenizer& tok, const std::string& text) {
  return static_cast<int64_t>(tok.Encode(text, false).value().size());
}

TEST(WorkloadTest, LengthDistributions) {
  EXPECT_EQ(LengthDist::Parse("128").value().kind, LengthDist::Kind::kFixed);
  EXPECT_ERROR(LengthDist::Parse("0"), absl::StatusCode::kInvalidArgument, "found a value below 1");
  EXPECT_ERROR(LengthDist::Parse("uniform:10"), absl::StatusCode::kInvalidArgument, "uniform takes MIN:MAX");
  EXPECT_ERROR(LengthDist::Parse("uniform:20:10"), absl::StatusCode::kInvalidArgument, "found MIN < 1 or MAX < MIN");
  EXPECT_ERROR(LengthDist::Parse("normal:abc:1"), absl::StatusCode::kInvalidArgument, "found 'abc'");
  EXPECT_ERROR(LengthDist::Parse("gamma:1:2"), absl::StatusCode::kInvalidArgument, "found 'gamma'");
  std::mt19937_64 rng(1);
  LengthDist u = LengthDist::Parse("uniform:10:20").value();
  LengthDist n = LengthDist::Parse("normal:100:10").value();
  double sum = 0;
  for (int i = 0; i < 2000; ++i) {
    const int64_t v = u.Sample(rng);
    ASSERT_GE(v, 10);
    ASSERT_LE(v, 20);
    sum += static_cast<double>(n.Sample(rng));
  }
  EXPECT_NEAR(sum / 2000, 100, 1.5);
}

TEST(WorkloadTest, SyntheticPromptsAreTokenExactAndSeeded) {
  auto tok = LoadHfFixture("llama3");
  ASSERT_TRUE(tok.ok()) << tok.status();
  WorkloadSpec spec;
  spec.num_requests = 20;
  spec.seed = 7;
  spec.input_len = LengthDist::Parse("uniform:1:300").value();
  spec.output_len = LengthDist::Parse("normal:64:8").value();
  auto a = MakeWorkload(spec, **tok);
  auto b = MakeWorkload(spec, **tok);
  ASSERT_TRUE(a.ok()) << a.status();
  for (size_t i = 0; i < a->size(); ++i) {
    const BenchPrompt& p = (*a)[i];
    EXPECT_EQ(p.prompt, (*b)[i].prompt);                // same seed, same workload
    EXPECT_EQ(p.input_tokens, Count(**tok, p.prompt));  // the recorded count is the real one
    EXPECT_GE(p.input_tokens, 1);
    EXPECT_LE(p.input_tokens, 300);
    EXPECT_GE(p.output_tokens, 1);
  }
  // Token-exact: ask fixed lengths and get them.
  spec.input_len = LengthDist::Parse("97").value();
  auto fixed = MakeWorkload(spec, **tok);
  ASSERT_TRUE(fixed.ok());
  ASSERT_EQ(fixed->size(), 20u);
  for (const BenchPrompt& p : *fixed) {
    EXPECT_EQ(p.input_tokens, 97);
    EXPECT_EQ(Count(**tok, p.prompt), 97);
  }
  spec.seed = 8;
  EXPECT_NE(MakeWorkload(spec, **tok).value()[0].prompt, (*fixed)[0].prompt);
}

TEST(WorkloadTest, PrefixAndLongMixes) {
  auto tok = LoadHfFixture("llama3");
  ASSERT_TRUE(tok.ok()) << tok.status();
  WorkloadSpec spec;
  spec.kind = WorkloadKind::kPrefix;
  spec.num_requests = 12;
  spec.prefix_len = 200;
  spec.num_prefixes = 2;
  spec.input_len = LengthDist::Parse("20").value();
  spec.output_len = LengthDist::Parse("8").value();
  auto w = MakeWorkload(spec, **tok);
  ASSERT_TRUE(w.ok()) << w.status();
  std::set<int32_t> ids;
  for (const BenchPrompt& p : *w) {
    ids.insert(p.prefix_id);
    const BenchPrompt& first_same =
        *std::find_if(w->begin(), w->end(), [&](const BenchPrompt& q) { return q.prefix_id == p.prefix_id; });
    // Requests with the same prefix id share the first 200 tokens' text.
    EXPECT_EQ(p.prompt.substr(0, p.prompt.find("\n\n")),
              first_same.prompt.substr(0, first_same.prompt.find("\n\n")));
    EXPECT_NEAR(static_cast<double>(p.input_tokens), 222, 4);
  }
  EXPECT_EQ(ids, (std::set<int32_t>{0, 1}));

  spec.kind = WorkloadKind::kLong;
  spec.num_requests = 40;
  spec.long_fraction = 0.25;
  spec.long_input_len = LengthDist::Parse("400").value();
  auto l = MakeWorkload(spec, **tok);
  ASSERT_TRUE(l.ok()) << l.status();
  int longs = 0;
  for (const BenchPrompt& p : *l) longs += p.input_tokens == 400;
  EXPECT_GT(longs, 3);
  EXPECT_LT(longs, 20);
  spec.long_fraction = 1.5;
  EXPECT_ERROR(MakeWorkload(spec, **tok), absl::StatusCode::kInvalidArgument,
               "--long-fraction: expected 0 to 1, found 1.5");
}

TEST(WorkloadTest, ShareGpt) {
  auto tok = LoadHfFixture("llama3");
  ASSERT_TRUE(tok.ok()) << tok.status();
  const std::string path = ::testing::TempDir() + "/sharegpt.json";
  std::ofstream(path) << R"([
    {"id": "a", "conversations": [{"from": "human", "value": "Tell me about the river and the old mill."},
                                  {"from": "gpt", "value": "The river ran past the mill for a hundred years and more."}]},
    {"id": "b", "conversations": [{"from": "human", "value": "hi"}]},
    {"id": "c", "conversations": [{"from": "human", "value": "Why is the sky blue on a clear day?"},
                                  {"from": "gpt", "value": "Rayleigh scattering of sunlight by the air's molecules."}]}
  ])";
  WorkloadSpec spec;
  spec.kind = WorkloadKind::kShareGpt;
  spec.dataset_path = path;
  spec.num_requests = 5;
  spec.output_len_given = false;
  auto w = MakeWorkload(spec, **tok);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_EQ(w->size(), 5u);  // two usable conversations, repeated
  for (const BenchPrompt& p : *w) {
    EXPECT_TRUE(p.prompt.rfind("Tell me", 0) == 0 || p.prompt.rfind("Why is", 0) == 0) << p.prompt;
    EXPECT_EQ(p.input_tokens, Count(**tok, p.prompt));
    EXPECT_GE(p.output_tokens, 9);  // the recorded answer's tokens
  }
  spec.dataset_path = ::testing::TempDir() + "/missing.json";
  EXPECT_NE(MakeWorkload(spec, **tok).status().message().find("cannot open"), std::string::npos);
  std::ofstream(path) << R"({"not": "a list"})";
  spec.dataset_path = path;
  EXPECT_NE(MakeWorkload(spec, **tok).status().message().find("expected a ShareGPT JSON array"),
            std::string::npos);
}

}  // namespace
}  // namespace tandem::bench
