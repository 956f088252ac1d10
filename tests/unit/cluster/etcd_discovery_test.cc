// etcd discovery against a real etcd server started by the test on free loopback ports.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tandem/cluster/discovery.h"

namespace tandem::cluster {
namespace {

constexpr const char* kEtcdBinary = "/usr/bin/etcd";
constexpr int kLeaseTtlS = 2;

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::string FindEtcd() {
  if (const char* env = std::getenv("TANDEM_ETCD")) return env;
  if (access(kEtcdBinary, X_OK) == 0) return kEtcdBinary;
  for (const char* dir : {"/usr/local/bin", "/usr/sbin"}) {
    std::string p = absl::StrCat(dir, "/etcd");
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

// One etcd member on loopback with a temporary data dir; killed and removed on destruction.
class EtcdServer {
 public:
  bool Start(const std::string& binary) {
    char tmpl[] = "/tmp/tandem-etcd-XXXXXX";
    dir_ = mkdtemp(tmpl);
    client_port_ = FreePort();
    const int peer_port = FreePort();
    const std::string client = absl::StrCat("http://127.0.0.1:", client_port_);
    const std::string peer = absl::StrCat("http://127.0.0.1:", peer_port);
    args_ = {binary,
             "--name",
             "default",
             "--data-dir",
             dir_ + "/data",
             "--listen-client-urls",
             client,
             "--advertise-client-urls",
             client,
             "--listen-peer-urls",
             peer,
             "--initial-advertise-peer-urls",
             peer,
             "--initial-cluster",
             absl::StrCat("default=", peer)};
    return Spawn();
  }

  // SIGKILL, as a crash would; the data dir stays.
  void Kill() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

  // Starts again on the same ports and data.
  bool Restart() { return Spawn(); }

  // fork + exec rather than posix_spawn: the child dies with this test process (PR_SET_PDEATHSIG), so
  // an aborted or timed-out test leaves no etcd behind, and it inherits no descriptor beyond stdio.
  bool Spawn() {
    std::vector<char*> argv;
    for (std::string& a : args_) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string log = dir_ + "/etcd.log";
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(1);  // the test died before prctl
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(1);
      close_range(3, ~0U, 0);
      execv(argv[0], argv.data());
      _exit(127);
    }
    return true;
  }

  ~EtcdServer() {
    Kill();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::string endpoint() const { return absl::StrCat("http://127.0.0.1:", client_port_); }
  std::string log_path() const { return dir_ + "/etcd.log"; }

 private:
  pid_t pid_ = -1;
  std::vector<std::string> args_;
  std::string dir_;
  int client_port_ = 0;
};

// Records a watcher's callbacks.
struct Seen {
  std::mutex mu;
  std::set<std::string> live;
  std::vector<std::string> log;  // "+id" / "-id"

  WatchCallbacks Callbacks() {
    return {.on_added =
                [this](const WorkerInfo& w) {
                  std::lock_guard<std::mutex> lock(mu);
                  live.insert(w.id);
                  log.push_back("+" + w.id);
                },
            .on_removed =
                [this](const WorkerInfo& w) {
                  std::lock_guard<std::mutex> lock(mu);
                  live.erase(w.id);
                  log.push_back("-" + w.id);
                }};
  }
  bool Has(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu);
    return live.contains(id);
  }
};

// Polls `pred` until true or `timeout`; returns the seconds it took, or -1.
double WaitFor(const std::function<bool()>& pred, double timeout_s) {
  const auto start = std::chrono::steady_clock::now();
  while (true) {
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (pred()) return t;
    if (t > timeout_s) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

class EtcdDiscoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string binary = FindEtcd();
    if (binary.empty()) {
      GTEST_SKIP() << "etcd binary not found (looked for " << kEtcdBinary
                   << ", /usr/local/bin/etcd, $TANDEM_ETCD); scripts/setup.sh installs etcd-server";
    }
    ASSERT_TRUE(server_.Start(binary));
    options_.endpoints = {server_.endpoint()};
    options_.prefix = "/tandem-test";
    options_.lease_ttl_s = kLeaseTtlS;
    options_.rpc_timeout = absl::Seconds(2);
    // etcd needs a moment to elect itself leader; a discovery can be made once it answers Range.
    const double ready = WaitFor(
        [&] {
          auto d = MakeEtcdDiscovery(options_);
          return d.ok();
        },
        15);
    ASSERT_GE(ready, 0) << "etcd did not come up; see " << server_.log_path();
  }

  absl::StatusOr<std::unique_ptr<Discovery>> Make(bool revoke_on_close = true) {
    EtcdDiscoveryOptions o = options_;
    o.revoke_on_close = revoke_on_close;
    return MakeEtcdDiscovery(o);
  }

  EtcdServer server_;
  EtcdDiscoveryOptions options_;
};

WorkerInfo Worker(const std::string& id, WorkerRole role, int port) {
  return WorkerInfo{.id = id,
                    .role = role,
                    .address = absl::StrCat("127.0.0.1:", port),
                    .model = "m",
                    .metadata = {{"block_size", "16"}}};
}

TEST_F(EtcdDiscoveryTest, WorkersJoinLeaveAndExpire) {
  Seen seen;  // declared first: it must outlive the watcher's thread
  auto watcher = Make();
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  (*watcher)->Watch(seen.Callbacks());

  auto a = Make(/*revoke_on_close=*/false);  // "crashes": its lease must expire on its own
  auto b = Make();
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->Register(Worker("decode-a", WorkerRole::kDecode, 9001)).ok());
  ASSERT_TRUE((*b)->Register(Worker("decode-b", WorkerRole::kDecode, 9002)).ok());
  const auto registered = std::chrono::steady_clock::now();
  const double both = WaitFor([&] { return seen.Has("decode-a") && seen.Has("decode-b"); }, 5);
  ASSERT_GE(both, 0) << "the watcher did not see both workers";
  std::printf("watcher saw two registrations after %.3f s\n", both);
  const WorkerSnapshot snap = (*watcher)->Snapshot();
  ASSERT_EQ(snap.workers.size(), 2u);
  EXPECT_EQ(snap.workers[0], Worker("decode-a", WorkerRole::kDecode, 9001));  // the JSON value survives etcd

  // A late watcher lists the current set.
  auto late = Make();
  ASSERT_TRUE(late.ok());
  EXPECT_EQ((*late)->Snapshot().workers.size(), 2u);

  // decode-a stops keeping its lease alive, as a killed process would: it leaves within ttl + margin.
  a->reset();
  const double gone = WaitFor([&] { return !seen.Has("decode-a"); }, kLeaseTtlS + 3.0);
  ASSERT_GE(gone, 0) << "decode-a was still listed " << kLeaseTtlS + 3 << " s after its keep-alive stopped";
  std::printf("decode-a left %.3f s after its keep-alive stopped (lease ttl %d s)\n", gone, kLeaseTtlS);
  EXPECT_EQ((*watcher)->Snapshot().workers, std::vector<WorkerInfo>{Worker("decode-b", WorkerRole::kDecode, 9002)});

  // decode-b's keep-alive holds it past several ttls.
  std::this_thread::sleep_until(registered + std::chrono::seconds(2 * kLeaseTtlS + 1));
  EXPECT_TRUE(seen.Has("decode-b"));
  EXPECT_EQ((*late)->Snapshot().workers.size(), 1u);

  // A new worker is seen at once.
  auto c = Make();
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->Register(Worker("prefill-c", WorkerRole::kPrefill, 9003)).ok());
  const double joined = WaitFor([&] { return seen.Has("prefill-c"); }, 2);
  ASSERT_GE(joined, 0);
  std::printf("prefill-c was seen %.3f s after registering\n", joined);
  EXPECT_LT(joined, 1.0);

  // Deregistering revokes the lease: decode-b leaves at once.
  ASSERT_TRUE((*b)->Deregister("decode-b").ok());
  const double left = WaitFor([&] { return !seen.Has("decode-b"); }, 2);
  ASSERT_GE(left, 0);
  EXPECT_LT(left, 1.0);
  EXPECT_EQ((*b)->Deregister("decode-b").code(), absl::StatusCode::kNotFound);

  // Closing a discovery with revoke_on_close revokes too.
  c->reset();
  EXPECT_GE(WaitFor([&] { return !seen.Has("prefill-c"); }, 2), 0);
  {
    std::lock_guard<std::mutex> lock(seen.mu);
    EXPECT_EQ(seen.log, (std::vector<std::string>{"+decode-a", "+decode-b", "-decode-a", "+prefill-c",
                                                  "-decode-b", "-prefill-c"}));
  }
}

TEST_F(EtcdDiscoveryTest, ReRegisteringUpdatesTheEntry) {
  auto d = Make();
  ASSERT_TRUE(d.ok());
  WorkerInfo w = Worker("both-0", WorkerRole::kBoth, 9100);
  ASSERT_TRUE((*d)->Register(w).ok());
  ASSERT_GE(WaitFor([&] { return (*d)->Snapshot().workers.size() == 1; }, 2), 0);
  w.metadata["load"] = "busy";
  ASSERT_TRUE((*d)->Register(w).ok());
  ASSERT_GE(WaitFor(
                [&] {
                  WorkerSnapshot s = (*d)->Snapshot();
                  return s.workers.size() == 1 && s.workers[0].metadata.contains("load");
                },
                2),
            0);
  // The old lease was revoked but the key lives on under the new one, past the ttl.
  std::this_thread::sleep_for(std::chrono::seconds(kLeaseTtlS + 1));
  EXPECT_EQ((*d)->Snapshot().workers.size(), 1u);
}

// etcd crashes and comes back: registered workers keep their entries (etcd keeps leases across a
// restart and the keep-alive resumes), the watcher re-lists and re-watches, and a worker that
// joins after the restart is seen.
TEST_F(EtcdDiscoveryTest, SurvivesAnEtcdRestart) {
  Seen seen;  // declared first: it must outlive the watcher's thread
  auto watcher = Make();
  auto w = Make();
  ASSERT_TRUE(watcher.ok() && w.ok());
  (*watcher)->Watch(seen.Callbacks());
  ASSERT_TRUE((*w)->Register(Worker("decode-0", WorkerRole::kDecode, 9200)).ok());
  ASSERT_GE(WaitFor([&] { return seen.Has("decode-0"); }, 2), 0);

  server_.Kill();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_TRUE(seen.Has("decode-0"));  // an etcd outage does not empty the routing set
  ASSERT_TRUE(server_.Restart());

  auto late = Make();  // waits for etcd to answer again
  for (int i = 0; i < 20 && !late.ok(); ++i) late = Make();
  ASSERT_TRUE(late.ok()) << late.status();
  ASSERT_TRUE((*late)->Register(Worker("decode-1", WorkerRole::kDecode, 9201)).ok());
  const double seen_new = WaitFor([&] { return seen.Has("decode-1"); }, 8);
  ASSERT_GE(seen_new, 0) << "the watcher did not recover after the etcd restart";
  std::printf("after the etcd restart the watcher saw a new worker within %.3f s\n", seen_new);
  // decode-0's lease is still kept alive: it outlives a ttl after the restart.
  std::this_thread::sleep_for(std::chrono::seconds(kLeaseTtlS + 1));
  EXPECT_TRUE(seen.Has("decode-0"));
  EXPECT_EQ((*late)->Snapshot().workers.size(), 2u);
}

// A worker whose lease disappears behind its back (revoked by an operator, or expired during a
// partition) registers again on its next keep-alive.
TEST_F(EtcdDiscoveryTest, LostLeaseIsRegisteredAgain) {
  if (access("/usr/bin/etcdctl", X_OK) != 0) GTEST_SKIP() << "etcdctl (etcd-client) not installed";
  Seen seen;  // declared first: it must outlive the watcher's thread
  auto watcher = Make();
  auto w = Make();
  ASSERT_TRUE(watcher.ok() && w.ok());
  (*watcher)->Watch(seen.Callbacks());
  ASSERT_TRUE((*w)->Register(Worker("prefill-0", WorkerRole::kPrefill, 9300)).ok());
  ASSERT_GE(WaitFor([&] { return seen.Has("prefill-0"); }, 2), 0);
  const std::string ctl = absl::StrCat("ETCDCTL_API=3 /usr/bin/etcdctl --endpoints=", server_.endpoint());
  const std::string cmd = absl::StrCat(ctl, " lease list | tail -n +2 | while read id rest; do ", ctl,
                                       " lease revoke $id >/dev/null; done");
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  ASSERT_GE(WaitFor(
                [&] {
                  std::lock_guard<std::mutex> lock(seen.mu);
                  return std::find(seen.log.begin(), seen.log.end(), "-prefill-0") != seen.log.end();
                },
                3),
            0)
      << "revoking the lease did not remove the key";
  const double back = WaitFor([&] { return seen.Has("prefill-0"); }, kLeaseTtlS + 2.0);
  ASSERT_GE(back, 0) << "the worker did not register again";
  std::printf("prefill-0 registered again %.3f s after losing its lease\n", back);
}

TEST(EtcdDiscoveryConfigTest, UnreachableEndpointIsUnavailable) {
  EtcdDiscoveryOptions o;
  o.endpoints = {absl::StrCat("http://127.0.0.1:", FreePort())};
  o.rpc_timeout = absl::Milliseconds(300);
  auto d = MakeEtcdDiscovery(o);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kUnavailable);
  o.endpoints = {"https://127.0.0.1:2379"};
  EXPECT_EQ(MakeEtcdDiscovery(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.endpoints = {"127.0.0.1"};
  EXPECT_EQ(MakeEtcdDiscovery(o).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem::cluster
