#include "side_channel.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace tandem::transfer {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kMaxFrameBytes = 64u << 20;

absl::Status Errno(const char* what) { return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno))); }

absl::Status SetNonBlocking(int fd) {
  const int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return Errno("fcntl(O_NONBLOCK)");
  return absl::OkStatus();
}

int RemainingMs(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

}  // namespace

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    Reset();
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

void Fd::Reset() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

absl::StatusOr<Fd> ListenTcp(uint16_t* port) {
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Errno("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = 0;
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return Errno("bind");
  if (listen(fd.get(), 64) != 0) return Errno("listen");
  socklen_t len = sizeof(addr);
  if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return Errno("getsockname");
  *port = ntohs(addr.sin_port);
  if (absl::Status s = SetNonBlocking(fd.get()); !s.ok()) return s;
  return fd;
}

absl::StatusOr<std::optional<Fd>> AcceptTcp(int listen_fd) {
  const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) return std::nullopt;
    return Errno("accept");
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return std::optional<Fd>(Fd(fd));
}

absl::StatusOr<Fd> ConnectTcp(const std::string& host, uint16_t port, int timeout_ms) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("side channel: '", host, "' is not an IPv4 address"));
  }
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Errno("socket");
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS) return Errno(absl::StrCat("connect to ", host, ":", port).c_str());
    pollfd p{fd.get(), POLLOUT, 0};
    if (poll(&p, 1, timeout_ms) != 1) {
      return absl::DeadlineExceededError(absl::StrCat("connect to ", host, ":", port, ": no answer in ",
                                                      timeout_ms, " ms"));
    }
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      return absl::UnavailableError(absl::StrCat("connect to ", host, ":", port, ": ", std::strerror(err)));
    }
  }
  const int one = 1;
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

std::vector<std::string> LocalIpv4Addresses() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) == 0) {
    for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
      if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
      if ((a->ifa_flags & IFF_UP) == 0 || (a->ifa_flags & IFF_LOOPBACK) != 0) continue;
      char buf[INET_ADDRSTRLEN] = {};
      const auto* in = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
      if (inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf)) != nullptr) out.emplace_back(buf);
    }
    freeifaddrs(list);
  }
  out.emplace_back("127.0.0.1");
  return out;
}

absl::Status SendFrame(int fd, uint32_t type, std::string_view payload, int timeout_ms) {
  std::string frame(8, '\0');
  const uint32_t length = static_cast<uint32_t>(payload.size());
  std::memcpy(frame.data(), &type, 4);
  std::memcpy(frame.data() + 4, &length, 4);
  frame.append(payload);
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  std::size_t sent = 0;
  while (sent < frame.size()) {
    const ssize_t n = send(fd, frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return Errno("side channel send");
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, RemainingMs(deadline)) <= 0 && Clock::now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("side channel send: peer not reading for ", timeout_ms, " ms"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Frame> RecvFrame(int fd, int timeout_ms) {
  FrameReader reader;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    const absl::Status s = reader.ReadAvailable(fd);
    // A frame that arrived just before the peer closed still counts (a refusal, say).
    if (std::optional<Frame> f = reader.Next(); f.has_value()) return *std::move(f);
    if (!s.ok()) return s;
    if (Clock::now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("side channel: no reply in ", timeout_ms, " ms"));
    }
    pollfd p{fd, POLLIN, 0};
    poll(&p, 1, RemainingMs(deadline));
  }
}

absl::Status FrameReader::ReadAvailable(int fd) {
  char buf[65536];
  while (true) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      buffer_.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) return absl::UnavailableError("side channel: the peer closed the connection");
    if (errno == EAGAIN || errno == EWOULDBLOCK) return absl::OkStatus();
    if (errno == EINTR) continue;
    return Errno("side channel recv");
  }
}

std::optional<Frame> FrameReader::Next() {
  if (buffer_.size() < 8) return std::nullopt;
  uint32_t type = 0, length = 0;
  std::memcpy(&type, buffer_.data(), 4);
  std::memcpy(&length, buffer_.data() + 4, 4);
  if (length > kMaxFrameBytes) {
    buffer_.clear();
    return Frame{0, {}};  // type 0 is never valid: the caller drops the connection
  }
  if (buffer_.size() < 8 + static_cast<std::size_t>(length)) return std::nullopt;
  Frame f{type, buffer_.substr(8, length)};
  buffer_.erase(0, 8 + static_cast<std::size_t>(length));
  return f;
}

PayloadWriter& PayloadWriter::U32(uint32_t v) {
  data_.append(reinterpret_cast<const char*>(&v), 4);
  return *this;
}

PayloadWriter& PayloadWriter::U64(uint64_t v) {
  data_.append(reinterpret_cast<const char*>(&v), 8);
  return *this;
}

PayloadWriter& PayloadWriter::Str(std::string_view s) {
  U32(static_cast<uint32_t>(s.size()));
  data_.append(s);
  return *this;
}

bool PayloadReader::U32(uint32_t* v) {
  if (data_.size() < 4) return false;
  std::memcpy(v, data_.data(), 4);
  data_.remove_prefix(4);
  return true;
}

bool PayloadReader::U64(uint64_t* v) {
  if (data_.size() < 8) return false;
  std::memcpy(v, data_.data(), 8);
  data_.remove_prefix(8);
  return true;
}

bool PayloadReader::Str(std::string* s) {
  uint32_t n = 0;
  if (!U32(&n) || data_.size() < n) return false;
  s->assign(data_.data(), n);
  data_.remove_prefix(n);
  return true;
}

}  // namespace tandem::transfer
