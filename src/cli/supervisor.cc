#include "supervisor.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace tandem::cli {

Supervisor::Supervisor(ExitReporter on_exit) : on_exit_(std::move(on_exit)) {}

Supervisor::~Supervisor() { Shutdown(); }

absl::Status Supervisor::Spawn(Child& child) {
  std::vector<char*> argv;
  for (std::string& arg : child.spec.argv) argv.push_back(arg.data());
  argv.push_back(nullptr);
  // Each child leads its own process group, so signals reach its whole tree (a worker's helpers
  // too) and a terminal's Ctrl-C reaches only `tandem serve`, which shuts the children down.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid = -1;
  const int err = posix_spawn(&pid, argv[0], nullptr, &attr, argv.data(), environ);
  posix_spawnattr_destroy(&attr);
  if (err != 0) {
    return absl::InternalError(absl::StrCat("starting ", child.spec.name, " (", child.spec.argv[0],
                                            "): ", std::strerror(err)));
  }
  child.pid = pid;
  return absl::OkStatus();
}

absl::Status Supervisor::Start(const ProcessSpec& spec) {
  if (spec.argv.empty()) return absl::InvalidArgumentError(absl::StrCat(spec.name, ": empty command line"));
  if (pid_of(spec.name) > 0) return absl::AlreadyExistsError(absl::StrCat(spec.name, " is already running"));
  children_.push_back({spec, -1, 0, {}});
  return Spawn(children_.back());
}

int Supervisor::Poll() {
  const auto now = std::chrono::steady_clock::now();
  int running = 0;
  for (Child& child : children_) {
    if (child.pid > 0) {
      int status = 0;
      const pid_t r = waitpid(child.pid, &status, WNOHANG);
      if (r == child.pid) {
        child.pid = -1;
        if (on_exit_) on_exit_(child.spec.name, status, child.restarts);
        // Backoff: 0.5 s, 1 s, 2 s ... capped at 10 s.
        const int shift = std::min(child.restarts, 5);
        child.restart_at = now + std::chrono::milliseconds(std::min(500 << shift, 10000));
      }
    }
    if (child.pid < 0 && child.spec.restart && !shutting_down_ && now >= child.restart_at) {
      if (Spawn(child).ok()) ++child.restarts;
    }
    if (child.pid > 0) ++running;
  }
  return running;
}

void Supervisor::Shutdown(std::chrono::milliseconds grace) {
  shutting_down_ = true;
  for (Child& child : children_) {
    if (child.pid > 0) kill(-child.pid, SIGTERM);
  }
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (true) {
    bool alive = false;
    for (Child& child : children_) {
      if (child.pid <= 0) continue;
      int status = 0;
      if (waitpid(child.pid, &status, WNOHANG) == child.pid) {
        child.pid = -1;
      } else {
        alive = true;
      }
    }
    if (!alive) return;
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (Child& child : children_) {
    if (child.pid > 0) {
      kill(-child.pid, SIGKILL);
      int status = 0;
      waitpid(child.pid, &status, 0);
      child.pid = -1;
    }
  }
}

pid_t Supervisor::pid_of(const std::string& name) const {
  for (const Child& child : children_) {
    if (child.spec.name == name) return child.pid;
  }
  return -1;
}

int Supervisor::restarts_of(const std::string& name) const {
  for (const Child& child : children_) {
    if (child.spec.name == name) return child.restarts;
  }
  return 0;
}

std::string DescribeWaitStatus(int wait_status) {
  if (WIFEXITED(wait_status)) return absl::StrCat("exited with code ", WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    const int sig = WTERMSIG(wait_status);
    return absl::StrCat("killed by signal ", sig, " (", strsignal(sig), ")");
  }
  return absl::StrCat("ended with wait status ", wait_status);
}

}  // namespace tandem::cli
