// Workers as separate `tandem worker` processes (KV over UCX between processes): a prefill + decode
// pair equals an aggregated worker token for token, and a prefill worker killed with SIGKILL while
// a remote prefill is in flight on it ends the decode side's request with a clear error, the decode
// worker holding no blocks afterwards and serving on.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tandem/cluster/worker_client.h"

extern char** environ;

namespace tandem::worker {
namespace {

const std::string kSourceDir = TANDEM_SOURCE_DIR;

// A `tandem worker` child process; killed (SIGKILL) and reaped on destruction.
class WorkerProcess {
 public:
  WorkerProcess(const std::string& config, const std::string& role, std::vector<std::string> extra,
                const std::string& listen = "127.0.0.1:0") {
    int out[2];
    if (pipe(out) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    std::vector<std::string> args = {TANDEM_BIN, "worker", "--role", role, "-c", config, "--listen", listen};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, TANDEM_BIN, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    if (rc != 0) {
      pid_ = -1;
      close(out[0]);
      return;
    }
    // "tandem worker ROLE listening on HOST:PORT"
    FILE* f = fdopen(out[0], "r");
    char line[512];
    while (f != nullptr && address_.empty() && std::fgets(line, sizeof(line), f) != nullptr) {
      const std::string s(line);  // log lines may come first
      const size_t at = s.find("tandem worker " + role + " listening on ");
      if (at == std::string::npos) continue;
      const size_t begin = s.find("listening on ", at) + 13;
      address_ = s.substr(begin, s.find_first_of("\r\n", begin) - begin);
    }
    // Keep draining its output so the child never blocks on a full pipe.
    if (f != nullptr) {
      drain_ = std::thread([f] {
        char buf[512];
        while (std::fgets(buf, sizeof(buf), f) != nullptr) std::fputs(buf, stderr);  // the worker's log
        std::fclose(f);
      });
    }
  }
  ~WorkerProcess() {
    Kill();
    if (drain_.joinable()) drain_.join();
  }
  void Signal(int sig) {
    if (pid_ > 0) kill(pid_, sig);
  }
  void Kill() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  // SIGTERM and wait: the worker's exit status (0 on a clean shutdown).
  int Terminate() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  const std::string& address() const { return address_; }

 private:
  pid_t pid_ = -1;
  std::string address_;
  std::thread drain_;
};

std::string WriteConfig(const std::string& name, const std::string& disaggregation = "{mode: always}") {
  const std::string path = ::testing::TempDir() + "/" + name + ".yaml";
  std::ofstream f(path);
  f << "model: {path: " << kSourceDir << "/tests/golden/models/llama, max_model_len: 256}\n"
    << "backend: cpu\n"
    << "disaggregation: " << disaggregation << "\n"
    << "pools:\n"
    << "  prefill: {max_num_batched_tokens: 64, max_num_seqs: 16}\n"
    << "  decode: {max_num_batched_tokens: 64, max_num_seqs: 16}\n"
    << "kv_cache: {block_size: 16, cpu_memory_mib: 2, prefix_caching: true}\n"
    << "transfer: {backend: ucx}\n"
    << "logging: {level: warn}\n";
  return path;
}

std::vector<int32_t> Prompt(int32_t len, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> p(static_cast<size_t>(len));
  for (auto& t : p) t = static_cast<int32_t>(rng() % 997) + 3;
  return p;
}

v1::WorkerGenerateRequest Request(const std::string& id, const std::vector<int32_t>& prompt, int max_tokens) {
  v1::WorkerGenerateRequest r;
  r.set_request_id(id);
  for (int32_t t : prompt) r.add_prompt_token_ids(t);
  r.mutable_sampling()->set_temperature(0.0f);
  r.mutable_sampling()->set_max_tokens(max_tokens);
  r.mutable_sampling()->set_ignore_eos(true);
  return r;
}

struct Result {
  std::vector<int32_t> tokens;
  v1::WorkerGenerateResponse last;
  absl::Status status;
};

Result Generate(cluster::WorkerClient& client, const v1::WorkerGenerateRequest& request) {
  Result r;
  r.status = client.Generate(request, [&](const v1::WorkerGenerateResponse& m) {
    r.tokens.insert(r.tokens.end(), m.token_ids().begin(), m.token_ids().end());
    r.last = m;
  });
  return r;
}

// The worker's next load report.
v1::LoadReport Load(cluster::WorkerClient& client) {
  v1::LoadReport out;
  (void)client.StreamLoad(10, [&](const v1::LoadReport& r) {
    out = r;
    return false;
  });
  return out;
}

// Freezes the prefill worker (SIGSTOP), so a remote prefill is certainly in flight when it dies, and
// sends `victim` to the decode worker on its own thread (its result into `result`); returns once the
// decode worker reports the request waiting for remote KV and its RemotePrefill call is out.
std::thread RequestWhilePrefillFrozen(WorkerProcess& prefill, cluster::WorkerClient& decode_client,
                                      v1::WorkerGenerateRequest victim, Result& result) {
  prefill.Signal(SIGSTOP);
  std::thread request([&decode_client, &result, victim = std::move(victim)] { result = Generate(decode_client, victim); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (Load(decode_client).num_waiting_for_remote_kv() < 1 && std::chrono::steady_clock::now() < deadline) {
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the RemotePrefill call is out
  return request;
}

TEST(WorkerProcessTest, SeparateProcessesOverUcxEqualAggregated) {
  const std::string config = WriteConfig("proc_equal");
  WorkerProcess both(config, "both", {});
  WorkerProcess prefill(config, "prefill", {});
  ASSERT_FALSE(both.address().empty());
  ASSERT_FALSE(prefill.address().empty());
  WorkerProcess decode(config, "decode", {"--prefill", prefill.address()});
  ASSERT_FALSE(decode.address().empty());
  cluster::WorkerClient agg_client(both.address()), decode_client(decode.address());
  auto info = decode_client.GetInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->role(), "decode");
  EXPECT_EQ(info->transport(), "ucx");
  for (int i = 0; i < 24; ++i) {
    SCOPED_TRACE(i);
    std::vector<int32_t> prompt = Prompt(1 + (i * 29) % 190, 300 + static_cast<uint32_t>(i));
    if (i % 3 == 0) {  // repeated prefix: prefix-cache hits on the decode worker
      prompt = Prompt(48, 7);
      const auto tail = Prompt(1 + i, 400 + static_cast<uint32_t>(i));
      prompt.insert(prompt.end(), tail.begin(), tail.end());
    }
    const Result want = Generate(agg_client, Request(absl::StrCat("a", i), prompt, 6));
    const Result got = Generate(decode_client, Request(absl::StrCat("d", i), prompt, 6));
    ASSERT_TRUE(want.status.ok()) << want.status;
    ASSERT_TRUE(got.status.ok()) << got.status;
    EXPECT_EQ(got.last.finish_reason(), v1::WORKER_FINISH_LENGTH) << got.last.error();
    EXPECT_TRUE(got.last.remote_prefill());
    EXPECT_EQ(got.tokens, want.tokens);
    if (i >= 3 && i % 3 == 0) {
      EXPECT_GE(got.last.num_cached_tokens(), 48);
    }
  }
  // The last request's blocks are freed on the engine thread after its final token went out, so a
  // report taken at once may still count them (seen: 7 blocks, one request's): poll, as below.
  v1::LoadReport load = Load(decode_client);
  for (int i = 0; i < 100 && load.kv_blocks_used() != 0; ++i) load = Load(decode_client);
  EXPECT_EQ(load.kv_blocks_used(), 0);
  EXPECT_EQ(load.remote_prefills(), 24);
  cluster::WorkerClient prefill_client(prefill.address());
  v1::LoadReport pload = Load(prefill_client);
  for (int i = 0; i < 100 && pload.kv_blocks_used() != 0; ++i) pload = Load(prefill_client);
  EXPECT_EQ(pload.kv_blocks_used(), 0);
  EXPECT_GT(pload.kv_bytes_sent(), 0u);
  EXPECT_EQ(decode.Terminate(), 0);
  EXPECT_EQ(prefill.Terminate(), 0);
}

// gRPC servers share a port by default (SO_REUSEPORT): a second worker told to listen on a taken
// port would take half of the first one's connections (seen in CI: a test's prefill worker and one
// that `tandem serve` started got one port, and a frozen worker's remote prefills were served by
// the other). Workers refuse such a port instead.
TEST(WorkerProcessTest, SecondWorkerOnATakenPortFailsToStart) {
  const std::string config = WriteConfig("proc_port");
  WorkerProcess first(config, "both", {});
  ASSERT_FALSE(first.address().empty());
  WorkerProcess second(config, "both", {}, first.address());
  EXPECT_TRUE(second.address().empty());
  EXPECT_EQ(second.Terminate(), 1);
  cluster::WorkerClient client(first.address());
  EXPECT_TRUE(client.GetInfo().ok());
  EXPECT_EQ(first.Terminate(), 0);
}

TEST(WorkerProcessTest, SigkilledPrefillWorkerEndsTheRequestWithAnErrorAndLeaksNoBlocks) {
  const std::string config = WriteConfig("proc_kill");
  WorkerProcess prefill(config, "prefill", {});
  ASSERT_FALSE(prefill.address().empty());
  WorkerProcess decode(config, "decode", {"--prefill", prefill.address()});
  ASSERT_FALSE(decode.address().empty());
  cluster::WorkerClient prefill_client(prefill.address()), decode_client(decode.address());
  // One request first, so the decode worker has checked the prefill worker's layout (GetInfo).
  const Result warm = Generate(decode_client, Request("warm", Prompt(40, 2), 2));
  ASSERT_TRUE(warm.status.ok()) << warm.status;
  ASSERT_EQ(warm.last.finish_reason(), v1::WORKER_FINISH_LENGTH) << warm.last.error();
  Result result;
  std::thread request = RequestWhilePrefillFrozen(prefill, decode_client, Request("victim", Prompt(120, 8), 8), result);
  const v1::LoadReport before = Load(decode_client);
  EXPECT_EQ(before.num_waiting_for_remote_kv(), 1);
  EXPECT_GE(before.kv_blocks_used(), 8);  // the prompt's 120 tokens: 8 blocks held for the hand-off
  prefill.Kill();
  request.join();
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.last.finish_reason(), v1::WORKER_FINISH_ERROR);
  EXPECT_NE(result.last.error().find("prefill worker " + prefill.address()), std::string::npos)
      << result.last.error();
  EXPECT_TRUE(result.tokens.empty());
  v1::LoadReport load = Load(decode_client);
  for (int i = 0; i < 100 && load.kv_blocks_used() != 0; ++i) load = Load(decode_client);
  EXPECT_EQ(load.kv_blocks_used(), 0);
  EXPECT_EQ(load.num_waiting_for_remote_kv(), 0);
  // The decode worker serves on (prefilling locally now that its prefill worker is gone).
  v1::WorkerGenerateRequest local = Request("after", Prompt(30, 9), 4);
  local.set_prefill_mode(v1::PREFILL_MODE_LOCAL);
  const Result after = Generate(decode_client, local);
  ASSERT_TRUE(after.status.ok()) << after.status;
  EXPECT_EQ(after.tokens.size(), 4u);
  EXPECT_EQ(decode.Terminate(), 0);
}

// disaggregation.on_prefill_failure: recompute: the same SIGKILL mid-prefill, and the decode worker
// prefills the request itself; the client gets every token, the same ones a local prefill gives.
TEST(WorkerProcessTest, SigkilledPrefillWorkerWithRecomputeServesTheRequestLocally) {
  const std::string config = WriteConfig("proc_recompute", "{mode: always, on_prefill_failure: recompute}");
  WorkerProcess prefill(config, "prefill", {});
  ASSERT_FALSE(prefill.address().empty());
  WorkerProcess decode(config, "decode", {"--prefill", prefill.address()});
  ASSERT_FALSE(decode.address().empty());
  cluster::WorkerClient decode_client(decode.address());
  const Result warm = Generate(decode_client, Request("warm", Prompt(40, 2), 2));
  ASSERT_TRUE(warm.status.ok()) << warm.status;
  Result result;
  std::thread request = RequestWhilePrefillFrozen(prefill, decode_client, Request("victim", Prompt(120, 8), 8), result);
  EXPECT_EQ(Load(decode_client).num_waiting_for_remote_kv(), 1);
  prefill.Kill();
  request.join();
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.last.finish_reason(), v1::WORKER_FINISH_LENGTH) << result.last.error();
  EXPECT_EQ(result.tokens.size(), 8u);
  v1::WorkerGenerateRequest local = Request("local", Prompt(120, 8), 8);
  local.set_prefill_mode(v1::PREFILL_MODE_LOCAL);
  const Result want = Generate(decode_client, local);
  ASSERT_TRUE(want.status.ok()) << want.status;
  EXPECT_EQ(result.tokens, want.tokens);
  v1::LoadReport load = Load(decode_client);
  for (int i = 0; i < 100 && load.kv_blocks_used() != 0; ++i) load = Load(decode_client);
  EXPECT_EQ(load.kv_blocks_used(), 0);
  EXPECT_EQ(load.num_waiting_for_remote_kv(), 0);
  EXPECT_EQ(load.remote_prefill_failures(), 1);
  EXPECT_EQ(decode.Terminate(), 0);
}

}  // namespace
}  // namespace tandem::worker
