#include "supervisor.h"

#include <signal.h>

#include <thread>

#include "gtest/gtest.h"

namespace tandem::cli {
namespace {

using namespace std::chrono_literals;

TEST(SupervisorTest, RestartsACrashedChildAndReportsHowItEnded) {
  std::vector<std::string> reports;
  Supervisor supervisor([&](const std::string& name, int status, int) {
    reports.push_back(name + ": " + DescribeWaitStatus(status));
  });
  ASSERT_TRUE(supervisor.Start({"worker", {"/bin/sleep", "30"}, true}).ok());
  const pid_t first = supervisor.pid_of("worker");
  ASSERT_GT(first, 0);
  ASSERT_EQ(kill(first, SIGKILL), 0);
  for (int i = 0; i < 100 && supervisor.restarts_of("worker") == 0; ++i) {
    supervisor.Poll();
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(supervisor.restarts_of("worker"), 1);
  EXPECT_GT(supervisor.pid_of("worker"), 0);
  EXPECT_NE(supervisor.pid_of("worker"), first);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0], "worker: killed by signal 9 (Killed)");
  supervisor.Shutdown(2000ms);
  EXPECT_EQ(supervisor.pid_of("worker"), -1);
}

TEST(SupervisorTest, OneShotChildIsNotRestarted) {
  int exits = 0;
  Supervisor supervisor([&](const std::string&, int status, int) {
    EXPECT_EQ(DescribeWaitStatus(status), "exited with code 3");
    ++exits;
  });
  ASSERT_TRUE(supervisor.Start({"job", {"/bin/sh", "-c", "exit 3"}, false}).ok());
  for (int i = 0; i < 100 && exits == 0; ++i) {
    supervisor.Poll();
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(exits, 1);
  EXPECT_EQ(supervisor.Poll(), 0);
  EXPECT_EQ(supervisor.restarts_of("job"), 0);
}

TEST(SupervisorTest, ShutdownKillsChildrenThatIgnoreSigterm) {
  Supervisor supervisor;
  ASSERT_TRUE(supervisor.Start({"stubborn", {"/bin/sh", "-c", "trap '' TERM; sleep 30"}, true}).ok());
  std::this_thread::sleep_for(100ms);  // let the shell install its trap
  const auto t0 = std::chrono::steady_clock::now();
  supervisor.Shutdown(300ms);
  EXPECT_EQ(supervisor.pid_of("stubborn"), -1);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST(SupervisorTest, BadCommandIsAnError) {
  Supervisor supervisor;
  EXPECT_FALSE(supervisor.Start({"nothing", {}, true}).ok());
  EXPECT_FALSE(supervisor.Start({"missing", {"/nonexistent/tandem-binary"}, true}).ok());
}

}  // namespace
}  // namespace tandem::cli
