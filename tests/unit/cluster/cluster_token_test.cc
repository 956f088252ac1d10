#include "tandem/cluster/cluster_token.h"

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace tandem::cluster {
namespace {

// Issue 17 (10): any process that reached a worker's port could call it.
TEST(ClusterTokenTest, MatchesOnlyTheSameToken) {
  EXPECT_TRUE(ClusterTokenMatches("s3cret", "s3cret"));
  EXPECT_FALSE(ClusterTokenMatches("s3cret", ""));
  EXPECT_FALSE(ClusterTokenMatches("s3cret", "s3cre"));
  EXPECT_FALSE(ClusterTokenMatches("s3cret", "s3cret!"));
  EXPECT_FALSE(ClusterTokenMatches("s3cret", "S3cret"));
  EXPECT_TRUE(ClusterTokenMatches("", "anything"));  // no token configured
}

TEST(ClusterTokenTest, GeneratedTokensAreLongAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 16; ++i) {
    absl::StatusOr<std::string> token = GenerateClusterToken();
    ASSERT_TRUE(token.ok()) << token.status();
    EXPECT_EQ(token->size(), 64u);
    EXPECT_EQ(token->find_first_not_of("0123456789abcdef"), std::string::npos);
    seen.insert(*token);
  }
  EXPECT_EQ(seen.size(), 16u);
}

TEST(ClusterTokenTest, FromEnvironment) {
  setenv("TANDEM_TEST_CLUSTER_TOKEN", "abc", 1);
  EXPECT_EQ(ClusterTokenFromEnv("TANDEM_TEST_CLUSTER_TOKEN"), "abc");
  unsetenv("TANDEM_TEST_CLUSTER_TOKEN");
  EXPECT_EQ(ClusterTokenFromEnv("TANDEM_TEST_CLUSTER_TOKEN"), "");
  EXPECT_EQ(ClusterTokenFromEnv(""), "");
}

}  // namespace
}  // namespace tandem::cluster
