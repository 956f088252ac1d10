// Embedded and static discovery, and the WorkerInfo JSON form.
#include "tandem/cluster/discovery.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "support/status_matchers.h"

namespace tandem::cluster {
namespace {

TEST(WorkerInfoTest, JsonRoundTrip) {
  WorkerInfo w{.id = "decode-0",
               .role = WorkerRole::kDecode,
               .address = "10.0.0.5:9000",
               .model = "SmolLM2-135M",
               .metadata = {{"block_size", "16"}, {"devices", "0,1"}}};
  absl::StatusOr<WorkerInfo> back = DecodeWorkerInfo(EncodeWorkerInfo(w));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, w);
}

TEST(WorkerInfoTest, BadJsonSaysWhatWasExpected) {
  EXPECT_NE(DecodeWorkerInfo("not json").status().message().find("expected a JSON object"),
            std::string::npos);
  absl::StatusOr<WorkerInfo> bad_role = DecodeWorkerInfo(R"({"id":"a","role":"cook","address":"h:1"})");
  EXPECT_EQ(bad_role.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_role.status().message().find("'cook'"), std::string::npos);
  EXPECT_ERROR(DecodeWorkerInfo(R"({"id":"a","role":"both"})"), absl::StatusCode::kInvalidArgument,
               "worker info: expected string field 'address'");  // no address
}

TEST(EmbeddedDiscoveryTest, RegisterWatchDeregister) {
  std::unique_ptr<Discovery> d = MakeEmbeddedDiscovery();
  EXPECT_EQ(d->type(), DiscoveryType::kEmbedded);
  ASSERT_TRUE(d->Register({.id = "p0", .role = WorkerRole::kPrefill, .address = "127.0.0.1:7001"}).ok());
  std::vector<std::string> added;
  std::vector<std::string> removed;
  const WatchId id = d->Watch({.on_added = [&](const WorkerInfo& w) { added.push_back(w.id); },
                               .on_removed = [&](const WorkerInfo& w) { removed.push_back(w.id); }});
  EXPECT_EQ(added, std::vector<std::string>{"p0"});  // the current set first
  const uint64_t v = d->Snapshot().version;
  ASSERT_TRUE(d->Register({.id = "d0", .role = WorkerRole::kDecode, .address = "127.0.0.1:7002"}).ok());
  EXPECT_GT(d->WaitForChange(v, absl::ZeroDuration()), v);
  EXPECT_EQ(added, (std::vector<std::string>{"p0", "d0"}));
  // Registering the same info again is not a change.
  const uint64_t v2 = d->Snapshot().version;
  ASSERT_TRUE(d->Register({.id = "d0", .role = WorkerRole::kDecode, .address = "127.0.0.1:7002"}).ok());
  EXPECT_EQ(d->Snapshot().version, v2);
  ASSERT_TRUE(d->Deregister("p0").ok());
  EXPECT_EQ(removed, std::vector<std::string>{"p0"});
  EXPECT_EQ(d->Deregister("p0").code(), absl::StatusCode::kNotFound);
  const WorkerSnapshot s = d->Snapshot();
  ASSERT_EQ(s.workers.size(), 1u);
  EXPECT_EQ(s.workers[0].id, "d0");
  d->Unwatch(id);
  ASSERT_TRUE(d->Register({.id = "d1", .role = WorkerRole::kDecode, .address = "127.0.0.1:7003"}).ok());
  EXPECT_EQ(added.size(), 2u);  // unwatched: no more calls
  EXPECT_EQ(d->Register({.id = "", .role = WorkerRole::kDecode, .address = "x:1"}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(StaticDiscoveryTest, ListedWorkersAppear) {
  DiscoverySection section;
  section.type = DiscoveryType::kStatic;
  section.static_workers = {
      {"prefill", "10.0.0.1:9000"}, {"decode", "10.0.0.2:9000"}, {"decode", "10.0.0.3:9000"}};
  absl::StatusOr<std::unique_ptr<Discovery>> d = MakeDiscovery(section, "m");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ((*d)->type(), DiscoveryType::kStatic);
  WorkerSnapshot s = (*d)->Snapshot();
  ASSERT_EQ(s.workers.size(), 3u);
  EXPECT_EQ(s.workers[0].id, "decode-1");
  EXPECT_EQ(s.workers[0].address, "10.0.0.2:9000");
  EXPECT_EQ(s.workers[0].role, WorkerRole::kDecode);
  EXPECT_EQ(s.workers[2].id, "prefill-0");
  EXPECT_EQ(s.workers[2].role, WorkerRole::kPrefill);
  EXPECT_EQ(s.workers[2].model, "m");

  std::vector<std::string> added;
  (*d)->Watch({.on_added = [&](const WorkerInfo& w) { added.push_back(w.address); }, .on_removed = nullptr});
  EXPECT_EQ(added.size(), 3u);

  // A listed worker registering fills in its id and metadata; an unlisted one or a wrong role fails.
  ASSERT_TRUE((*d)->Register({.id = "worker-a",
                              .role = WorkerRole::kDecode,
                              .address = "10.0.0.3:9000",
                              .model = "m",
                              .metadata = {{"block_size", "16"}}})
                  .ok());
  s = (*d)->Snapshot();
  ASSERT_EQ(s.workers.size(), 3u);
  EXPECT_EQ(s.workers[2].id, "worker-a");
  EXPECT_EQ((*d)->Register({.id = "x", .role = WorkerRole::kDecode, .address = "10.9.9.9:1"}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*d)->Register({.id = "x", .role = WorkerRole::kDecode, .address = "10.0.0.1:9000"}).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(StaticDiscoveryTest, BadEntriesAreErrors) {
  DiscoverySection section;
  section.static_workers = {{"decode", "h:1"}, {"decode", "h:1"}};
  EXPECT_EQ(MakeStaticDiscovery(section).status().code(), absl::StatusCode::kInvalidArgument);
  section.static_workers = {{"chef", "h:1"}};
  absl::StatusOr<std::unique_ptr<Discovery>> d = MakeStaticDiscovery(section);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("discovery.workers[0]"), std::string::npos);
}

}  // namespace
}  // namespace tandem::cluster
