// DiscoveryBinding keeps the router's workers equal to a discovery's live set: over the embedded
// registry, workers that register are routed to at once, and a worker that leaves is never picked
// again.
#include "tandem/router/discovery_binding.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace tandem::router {
namespace {

cluster::WorkerInfo Worker(const std::string& id, cluster::WorkerRole role, int port) {
  return cluster::WorkerInfo{.id = id, .role = role, .address = absl::StrCat("127.0.0.1:", port), .model = "m"};
}

TEST(DiscoveryBindingTest, TheRouterFollowsJoinsAndLeaves) {
  std::unique_ptr<cluster::Discovery> discovery = cluster::MakeEmbeddedDiscovery();
  ASSERT_TRUE(discovery->Register(Worker("decode-a", cluster::WorkerRole::kDecode, 9001)).ok());
  RouterOptions options;
  options.policy = RouterPolicy::kRoundRobin;
  Router router(options);
  {
    DiscoveryBinding binding(router, *discovery);
    // Present before the binding: added at once.
    EXPECT_EQ(router.WorkerIds(), std::vector<std::string>{"decode-a"});
    ASSERT_TRUE(discovery->Register(Worker("decode-b", cluster::WorkerRole::kDecode, 9002)).ok());
    ASSERT_TRUE(discovery->Register(Worker("prefill-c", cluster::WorkerRole::kPrefill, 9003)).ok());
    EXPECT_EQ(router.WorkerIds(), (std::vector<std::string>{"decode-a", "decode-b", "prefill-c"}));
    EXPECT_EQ(router.RoutePrefill(std::vector<int32_t>{1})->worker_id, "prefill-c");

    ASSERT_TRUE(discovery->Deregister("decode-a").ok());
    EXPECT_EQ(router.WorkerIds(), (std::vector<std::string>{"decode-b", "prefill-c"}));
    for (int i = 0; i < 10; ++i) EXPECT_EQ(router.RouteDecode(std::vector<int32_t>{1, 2, 3})->worker_id, "decode-b");

    ASSERT_TRUE(discovery->Deregister("decode-b").ok());
    const absl::StatusOr<RouteResult> none = router.RouteDecode(std::vector<int32_t>{1});
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.status().code(), absl::StatusCode::kUnavailable);
  }
  // Unsubscribed with the binding gone: later changes no longer reach the router.
  ASSERT_TRUE(discovery->Register(Worker("decode-d", cluster::WorkerRole::kDecode, 9004)).ok());
  EXPECT_EQ(router.WorkerIds(), std::vector<std::string>{"prefill-c"});
}

}  // namespace
}  // namespace tandem::router
