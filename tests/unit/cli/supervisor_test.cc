#include "supervisor.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "support/status_matchers.h"

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
  EXPECT_ERROR(supervisor.Start({"nothing", {}, true}), absl::StatusCode::kInvalidArgument,
               "nothing: empty command line");
  EXPECT_ERROR(supervisor.Start({"missing", {"/nonexistent/tandem-binary"}, true}), absl::StatusCode::kInternal,
               "starting missing (/nonexistent/tandem-binary): ");
}

// Waits (polling) until `name` exits; returns its wait status, or -1 on timeout.
int WaitExit(Supervisor& supervisor, std::vector<int>& statuses, size_t count) {
  for (int i = 0; i < 500 && statuses.size() < count; ++i) {
    supervisor.Poll();
    std::this_thread::sleep_for(10ms);
  }
  return statuses.size() < count ? -1 : statuses.back();
}

// Issue 17 (13): `tandem serve` gives its workers the resolved config as descriptor 3 (a memfd)
// instead of a /tmp file it left behind.
TEST(SupervisorTest, PassesDescriptor3ToEveryStart) {
  const int fd = memfd_create("supervisor-test", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "hello\n", 6), 6);
  std::vector<int> statuses;
  Supervisor supervisor([&](const std::string&, int status, int) { statuses.push_back(status); });
  ProcessSpec spec{"reader", {"/bin/sh", "-c", "read x </dev/fd/3 && test \"$x\" = hello"}, false, ShareFd(fd)};
  ASSERT_TRUE(supervisor.Start(spec).ok());
  ASSERT_EQ(DescribeWaitStatus(WaitExit(supervisor, statuses, 1)), "exited with code 0");
  // The spec keeps the descriptor open for restarts.
  spec.name = "reader-again";
  ASSERT_TRUE(supervisor.Start(spec).ok());
  ASSERT_EQ(DescribeWaitStatus(WaitExit(supervisor, statuses, 2)), "exited with code 0");
}

// Issue 17 (2): a restarted worker inherited the frontend's HTTP listener (Asio opens sockets
// without close-on-exec). Children get descriptors 0-2 (and fd3) only, close-on-exec or not.
TEST(SupervisorTest, ChildInheritsOnlyStandardDescriptorsAndFd3) {
  int leak[2];
  ASSERT_EQ(pipe(leak), 0);  // not close-on-exec, like an Asio socket
  const int fd = memfd_create("supervisor-test", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::vector<int> statuses;
  Supervisor supervisor([&](const std::string&, int status, int) { statuses.push_back(status); });
  const std::string script = "test -e /proc/self/fd/3 && test ! -e /proc/self/fd/" + std::to_string(leak[0]) +
                             " && test ! -e /proc/self/fd/" + std::to_string(leak[1]) +
                             " && test $(ls /proc/self/fd | wc -l) -le 5";  // 0-3 and ls's own
  ASSERT_TRUE(supervisor.Start({"child", {"/bin/sh", "-c", script}, false, ShareFd(fd)}).ok());
  EXPECT_EQ(DescribeWaitStatus(WaitExit(supervisor, statuses, 1)), "exited with code 0");
  close(leak[0]);
  close(leak[1]);
}

// Issue 17 (2): workers outlived a killed `tandem serve`, re-parented to PID 1.
TEST(SupervisorTest, ChildGetsSigtermWhenTheStartingThreadEnds) {
  std::vector<int> statuses;
  Supervisor supervisor([&](const std::string&, int status, int) { statuses.push_back(status); });
  std::thread starter([&] { ASSERT_TRUE(supervisor.Start({"orphan", {"/bin/sleep", "30"}, false}).ok()); });
  starter.join();
  EXPECT_EQ(DescribeWaitStatus(WaitExit(supervisor, statuses, 1)), "killed by signal 15 (Terminated)");
}

// Issue 17 (10): the API keys were passed into the workers' environment.
TEST(SupervisorTest, ChildEnvironmentDropsAndAdds) {
  setenv("TANDEM_TEST_SECRET_KEYS", "sk-1", 1);
  setenv("TANDEM_TEST_KEPT", "yes", 1);
  const std::vector<std::string> env =
      ChildEnvironment({"TANDEM_TEST_SECRET_KEYS"}, {"TANDEM_TEST_TOKEN=t0k", "TANDEM_TEST_KEPT=replaced"});
  std::vector<int> statuses;
  Supervisor supervisor([&](const std::string&, int status, int) { statuses.push_back(status); });
  ProcessSpec spec{"env",
                   {"/bin/sh", "-c",
                    "test -z \"$TANDEM_TEST_SECRET_KEYS\" && test \"$TANDEM_TEST_TOKEN\" = t0k && "
                    "test \"$TANDEM_TEST_KEPT\" = replaced && test -n \"$PATH\""},
                   false};
  spec.env = env;
  ASSERT_TRUE(supervisor.Start(spec).ok());
  EXPECT_EQ(DescribeWaitStatus(WaitExit(supervisor, statuses, 1)), "exited with code 0");
  unsetenv("TANDEM_TEST_SECRET_KEYS");
  unsetenv("TANDEM_TEST_KEPT");
}

}  // namespace
}  // namespace tandem::cli
