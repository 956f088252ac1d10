// The TCP side channel the nccl transport uses for its hello, write descriptors and acks: frames
// survive being split and batched, payloads round-trip, and a closed peer is an error, not a hang.
#include "side_channel.h"

#include <unistd.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "support/status_matchers.h"

namespace tandem::transfer {
namespace {

struct Pair {
  Fd listener, client, server;
};

Pair Connected() {
  Pair p;
  uint16_t port = 0;
  auto listener = ListenTcp(&port);
  EXPECT_TRUE(listener.ok()) << listener.status();
  p.listener = *std::move(listener);
  auto client = ConnectTcp("127.0.0.1", port, 2000);
  EXPECT_TRUE(client.ok()) << client.status();
  p.client = *std::move(client);
  for (int i = 0; i < 2000 && !p.server.valid(); ++i) {
    auto accepted = AcceptTcp(p.listener.get());
    EXPECT_TRUE(accepted.ok());
    if (accepted.ok() && accepted->has_value()) p.server = std::move(**accepted);
    if (!p.server.valid()) usleep(1000);
  }
  EXPECT_TRUE(p.server.valid());
  return p;
}

TEST(SideChannelTest, FramesRoundTripInOrder) {
  Pair p = Connected();
  const std::string big(3 << 20, 'q');  // larger than a socket buffer: sent in pieces
  ASSERT_TRUE(SendFrame(p.client.get(), 3, PayloadWriter().U64(42).U32(7).Str("note").data(), 1000).ok());
  ASSERT_TRUE(SendFrame(p.client.get(), 4, "", 1000).ok());
  // The big frame needs the reader to drain the socket as it is written.
  FrameReader reader;
  std::vector<Frame> frames;
  std::thread writer([&] { EXPECT_TRUE(SendFrame(p.client.get(), 5, big, 5000).ok()); });
  for (int i = 0; i < 100000 && frames.size() < 3; ++i) {
    ASSERT_TRUE(reader.ReadAvailable(p.server.get()).ok());
    while (auto f = reader.Next()) frames.push_back(*std::move(f));
    if (frames.size() < 3) usleep(100);
  }
  writer.join();
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].type, 3u);
  PayloadReader r(frames[0].payload);
  uint64_t a = 0;
  uint32_t b = 0;
  std::string s;
  ASSERT_TRUE(r.U64(&a) && r.U32(&b) && r.Str(&s));
  EXPECT_TRUE(r.done());
  EXPECT_EQ(a, 42u);
  EXPECT_EQ(b, 7u);
  EXPECT_EQ(s, "note");
  EXPECT_EQ(frames[1].type, 4u);
  EXPECT_TRUE(frames[1].payload.empty());
  EXPECT_EQ(frames[2].payload, big);
  uint32_t extra = 0;
  EXPECT_FALSE(r.U32(&extra)) << "reading past the payload must fail";
}

TEST(SideChannelTest, ClosedPeerAndSilenceAreErrors) {
  Pair p = Connected();
  auto none = RecvFrame(p.server.get(), 50);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kDeadlineExceeded);
  p.client.Reset();
  FrameReader reader;
  absl::Status s;
  for (int i = 0; i < 1000 && s.ok(); ++i) {
    s = reader.ReadAvailable(p.server.get());
    usleep(1000);
  }
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_ERROR(ConnectTcp("not-an-ip", 1, 100), absl::StatusCode::kInvalidArgument,
               "side channel: 'not-an-ip' is not an IPv4 address");
  const std::vector<std::string> hosts = LocalIpv4Addresses();
  ASSERT_FALSE(hosts.empty());
  EXPECT_EQ(hosts.back(), "127.0.0.1");
}

}  // namespace
}  // namespace tandem::transfer
