// Runs a deployment's processes (frontend, prefill and decode workers) as children of
// `tandem serve`: starts each, restarts one that exits unexpectedly (with backoff, reporting
// the exit), and on Shutdown() sends SIGTERM to all, then SIGKILL after a grace period.
// A child inherits descriptors 0-2 (and ProcessSpec::fd3) only, and gets SIGTERM when the thread
// that started it ends (PR_SET_PDEATHSIG): call Start and Poll from a thread that lives as long as
// the children should, such as the main thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace tandem::cli {

// A descriptor shared by the specs that pass it to their children; closed with the last copy.
using SharedFd = std::shared_ptr<const int>;
SharedFd ShareFd(int fd);

struct ProcessSpec {
  std::string name;               // "prefill-0", "decode-1", "frontend" (log lines)
  std::vector<std::string> argv;  // argv[0] is the executable path
  bool restart = true;            // restart when it exits while the supervisor runs
  SharedFd fd3;                   // when set, the child's descriptor 3 (e.g. its config, read as /dev/fd/3)
  std::vector<std::string> env;   // the child's environment (NAME=VALUE each); empty: this process's
};

// This process's environment without the variables named in `drop`, plus `add` (NAME=VALUE each).
std::vector<std::string> ChildEnvironment(const std::vector<std::string>& drop, const std::vector<std::string>& add);

class Supervisor {
 public:
  using ExitReporter = std::function<void(const std::string& name, int wait_status, int restarts)>;

  explicit Supervisor(ExitReporter on_exit = nullptr);
  ~Supervisor();  // Shutdown()
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  absl::Status Start(const ProcessSpec& spec);

  // Reaps exited children and restarts those due; call regularly (e.g. every 100 ms). Returns the
  // number of children currently running.
  int Poll();

  // SIGTERM to every child, SIGKILL to those alive after `grace`, then reaps all.
  void Shutdown(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));

  pid_t pid_of(const std::string& name) const;
  int restarts_of(const std::string& name) const;

 private:
  struct Child {
    ProcessSpec spec;
    pid_t pid = -1;
    int restarts = 0;
    std::chrono::steady_clock::time_point restart_at;
  };
  absl::Status Spawn(Child& child);

  ExitReporter on_exit_;
  std::vector<Child> children_;
  bool shutting_down_ = false;
};

// Human-readable wait status: "exited with code 3" / "killed by signal 9 (Killed)".
std::string DescribeWaitStatus(int wait_status);

}  // namespace tandem::cli
