#include "supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
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

std::vector<std::string> ChildEnvironment(const std::vector<std::string>& drop, const std::vector<std::string>& add) {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string var(*e);
    const std::string name = var.substr(0, var.find('='));
    bool dropped = false;
    for (const std::string& d : drop) dropped |= !d.empty() && d == name;
    for (const std::string& a : add) dropped |= a.substr(0, a.find('=')) == name;  // replaced below
    if (!dropped) out.push_back(var);
  }
  out.insert(out.end(), add.begin(), add.end());
  return out;
}

SharedFd ShareFd(int fd) {
  return SharedFd(new int(fd), [](const int* p) {
    if (*p >= 0) close(*p);
    delete p;
  });
}

// Closes every descriptor from `first` up, except `except`. Async-signal-safe (used between fork and
// exec): close_range, or a loop up to the descriptor limit where the kernel lacks it.
bool CloseFrom(int first, int except) {
  auto close_span = [](unsigned lo, unsigned hi) {
    if (lo > hi) return true;
    if (syscall(SYS_close_range, lo, hi, 0) == 0) return true;
    if (errno != ENOSYS) return false;
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return false;
    const unsigned end = hi < limit.rlim_cur ? hi : static_cast<unsigned>(limit.rlim_cur - 1);
    for (unsigned fd = lo; fd <= end; ++fd) close(static_cast<int>(fd));
    return true;
  };
  return close_span(static_cast<unsigned>(first), static_cast<unsigned>(except) - 1) &&
         close_span(static_cast<unsigned>(except) + 1, ~0U);
}

// fork + exec rather than posix_spawn: the child must be set up in ways posix_spawn can't express.
// Between fork and exec the child only makes async-signal-safe calls (another thread may have held
// a lock at the fork). A close-on-exec pipe reports a failed exec: the child writes its errno; a
// successful exec closes the pipe, and the parent reads end of file.
absl::Status Supervisor::Spawn(Child& child) {
  std::vector<char*> argv;
  for (std::string& arg : child.spec.argv) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (std::string& var : child.spec.env) envp.push_back(var.data());
  envp.push_back(nullptr);
  char** const env = child.spec.env.empty() ? environ : envp.data();
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("starting ", child.spec.name, ": pipe: ", std::strerror(errno)));
  }
  const int fd3 = child.spec.fd3 ? *child.spec.fd3 : -1;
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    // The report pipe moves above the descriptors the child keeps (it closes at exec).
    const int keep = fd3 >= 0 ? 4 : 3;  // the child keeps 0, 1, 2 (and 3)
    int report_fd = report[1];
    if (report_fd < keep) report_fd = fcntl(report_fd, F_DUPFD_CLOEXEC, keep);
    // Each child leads its own process group, so signals reach its whole tree (a worker's helpers
    // too) and a terminal's Ctrl-C reaches only `tandem serve`, which shuts the children down.
    bool ok = report_fd >= keep && setpgid(0, 0) == 0;
    if (ok && fd3 >= 0) ok = fd3 == 3 ? fcntl(3, F_SETFD, 0) == 0 : dup2(fd3, 3) == 3;  // dup2 clears CLOEXEC
    // The child gets nothing else of this process's: not the frontend's listening socket (a child
    // holding it would keep the port after the frontend died), connections, pipes or files, whether
    // or not they were opened close-on-exec.
    if (ok) ok = CloseFrom(keep, report_fd);
    // The child dies with the thread that started it, so workers never outlive `tandem serve`
    // (SIGTERM: a worker shuts down as on Ctrl-C). Had the parent died already, the child was
    // re-parented before the prctl and exits here.
    if (ok) ok = prctl(PR_SET_PDEATHSIG, SIGTERM) == 0 && getppid() == parent;
    if (ok) execve(argv[0], argv.data(), env);
    const int err = errno;
    ssize_t unused = write(report_fd, &err, sizeof(err));
    (void)unused;
    _exit(127);
  }
  const int fork_errno = errno;
  close(report[1]);
  if (pid < 0) {
    close(report[0]);
    return absl::InternalError(
        absl::StrCat("starting ", child.spec.name, ": fork: ", std::strerror(fork_errno)));
  }
  int err = 0;
  ssize_t n = 0;
  do {
    n = read(report[0], &err, sizeof(err));
  } while (n < 0 && errno == EINTR);
  close(report[0]);
  if (n == static_cast<ssize_t>(sizeof(err))) {
    int status = 0;
    waitpid(pid, &status, 0);
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
