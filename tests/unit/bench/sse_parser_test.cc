#include "tandem/bench/sse_parser.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tandem::bench {
namespace {

std::vector<std::string> FeedAll(SseParser& p, const std::vector<std::string>& pieces) {
  std::vector<std::string> all;
  for (const std::string& piece : pieces) {
    auto events = p.Feed(piece);
    EXPECT_TRUE(events.ok()) << events.status();
    if (events.ok()) all.insert(all.end(), events->begin(), events->end());
  }
  return all;
}

TEST(SseParserTest, EventsSplitAtEveryByteComeOutWhole) {
  const std::string stream = "data: {\"a\":1}\n\ndata: {\"b\":\"é\"}\n\ndata: [DONE]\n\n";
  for (size_t split = 0; split <= stream.size(); ++split) {
    SseParser p;
    auto events = FeedAll(p, {stream.substr(0, split), stream.substr(split)});
    ASSERT_EQ(events.size(), 3u) << "split at " << split;
    EXPECT_EQ(events[0], "{\"a\":1}");
    EXPECT_EQ(events[1], "{\"b\":\"é\"}");
    EXPECT_EQ(events[2], "[DONE]");
    EXPECT_FALSE(p.HasPartialEvent());
  }
}

TEST(SseParserTest, CrLfCrCommentsFieldsAndMultiLineData) {
  SseParser p;
  auto events = FeedAll(p, {": keep-alive\r\n\r\n", "event: message\r\nid: 7\r\ndata:x\r\ndata: y\r\n\r\n",
                            "retry: 10\rdata: z\r\r", "data\n\n"});
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0], "x\ny");  // no space after the colon is fine; lines join with \n
  EXPECT_EQ(events[1], "z");
  EXPECT_EQ(events[2], "");  // a bare `data` field is an empty data line
}

TEST(SseParserTest, CutOffStreamIsVisible) {
  SseParser p;
  auto events = FeedAll(p, {"data: {\"a\":1}\n\ndata: {\"b\""});
  EXPECT_EQ(events.size(), 1u);
  EXPECT_TRUE(p.HasPartialEvent());
  SseParser q;
  FeedAll(q, {"data: {}\n"});  // a data line without the blank line that ends the event
  EXPECT_TRUE(q.HasPartialEvent());
}

TEST(SseParserTest, RefusesAnEndlessLine) {
  SseParser p;
  const std::string chunk(1 << 20, 'x');
  absl::Status last;
  for (int i = 0; i < 20 && last.ok(); ++i) last = p.Feed(chunk).status();
  EXPECT_FALSE(last.ok());
  EXPECT_NE(last.message().find("expected lines of at most"), std::string::npos) << last;
}

}  // namespace
}  // namespace tandem::bench
