#include "tandem/bench/report.h"

#include "gtest/gtest.h"
#include "support/status_matchers.h"

namespace tandem::bench {
namespace {

// A request that started at `start`, got tokens at `times`, ended at `end`.
RequestRecord Req(double start, std::vector<double> times, double end, int64_t usage_out = -1) {
  RequestRecord r;
  r.result.ok = true;
  r.result.start_s = start;
  r.result.content_times = std::move(times);
  r.result.end_s = end;
  r.result.usage_completion_tokens = usage_out;
  r.prompt.input_tokens = 10;
  return r;
}

TEST(ReportTest, PerRequestFigures) {
  RequestMetrics m = MeasureRequest(Req(1.0, {1.2, 1.25, 1.35, 1.40}, 1.41), Slo{});
  ASSERT_TRUE(m.ok);
  EXPECT_NEAR(m.ttft_ms, 200, 1e-9);
  ASSERT_EQ(m.itl_ms.size(), 3u);
  EXPECT_NEAR(m.itl_ms[0], 50, 1e-9);
  EXPECT_NEAR(m.itl_ms[1], 100, 1e-9);
  EXPECT_NEAR(m.tpot_ms, 200.0 / 3, 1e-9);  // (1.40 - 1.20) / (4 - 1)
  EXPECT_NEAR(m.e2e_ms, 410, 1e-9);
  EXPECT_EQ(m.output_tokens, 4);
  // The server's usage wins over counted events (an event may carry several tokens).
  EXPECT_EQ(MeasureRequest(Req(0, {0.1, 0.2}, 0.3, 9), Slo{}).output_tokens, 9);
  EXPECT_NEAR(MeasureRequest(Req(0, {0.1, 0.5}, 0.5, 9), Slo{}).tpot_ms, 50, 1e-9);
}

TEST(ReportTest, GoodputCountsRequestsMeetingEverySlo) {
  RunRecord run;
  run.requests.push_back(Req(0, {0.1, 0.12, 0.14}, 0.15));  // ttft 100, tpot 20: good
  run.requests.push_back(Req(0, {0.6, 0.62, 0.64}, 0.65));  // ttft 600: misses ttft
  run.requests.push_back(Req(0, {0.1, 0.2, 0.3}, 0.35));    // tpot 100: misses itl
  RequestRecord failed;
  failed.result.ok = false;
  failed.result.error = "HTTP 503: busy";
  run.requests.push_back(failed);
  run.duration_s = 2.0;
  auto slo = Slo::Parse("ttft_ms=500,itl_ms=50");
  ASSERT_TRUE(slo.ok());
  Summary s = Summarize(run, *slo);
  EXPECT_EQ(s.completed, 3);
  EXPECT_EQ(s.failed, 1);
  EXPECT_EQ(s.good, 1);
  ASSERT_TRUE(s.goodput.has_value());
  EXPECT_DOUBLE_EQ(*s.goodput, 0.5);
  EXPECT_DOUBLE_EQ(s.request_throughput, 1.5);
  EXPECT_DOUBLE_EQ(s.output_throughput, 9 / 2.0);
  EXPECT_DOUBLE_EQ(s.total_throughput, (9 + 30) / 2.0);
  ASSERT_EQ(s.first_errors.size(), 1u);
  EXPECT_EQ(s.first_errors[0], "HTTP 503: busy");
  const std::string table = FormatTable(s, *slo);
  EXPECT_NE(table.find("Goodput (req/s):"), std::string::npos) << table;
  EXPECT_NE(table.find("1 of 4 met ttft<=500ms itl<=50ms"), std::string::npos) << table;
  EXPECT_EQ(SummaryJson(s, *slo)["goodput"].get<double>(), 0.5);
}

TEST(ReportTest, SloParsing) {
  EXPECT_ERROR(Slo::Parse(""), absl::StatusCode::kInvalidArgument,
               "--slo: expected at least one of ttft_ms=, itl_ms=, e2e_ms=");
  EXPECT_ERROR(Slo::Parse("ttft=5"), absl::StatusCode::kInvalidArgument,
               "--slo: expected keys ttft_ms, itl_ms (or tpot_ms), e2e_ms; found 'ttft'");
  EXPECT_ERROR(Slo::Parse("ttft_ms=-1"), absl::StatusCode::kInvalidArgument,
               "expected KEY=MILLISECONDS (positive), found 'ttft_ms=-1'");
  EXPECT_ERROR(Slo::Parse("ttft_ms=abc"), absl::StatusCode::kInvalidArgument,
               "expected KEY=MILLISECONDS (positive), found 'ttft_ms=abc'");
  auto slo = Slo::Parse("tpot_ms=40,e2e_ms=9000");
  ASSERT_TRUE(slo.ok());
  EXPECT_EQ(*slo->itl_ms, 40);
  EXPECT_EQ(*slo->e2e_ms, 9000);
  EXPECT_FALSE(slo->ttft_ms.has_value());
}

}  // namespace
}  // namespace tandem::bench
