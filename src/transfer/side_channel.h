// A small TCP side channel of framed messages, for transports whose data path cannot carry their
// own control messages (NCCL is two-sided: the receiver must be told which receives to post).
// Frame: [u32 type][u32 payload length][payload], little-endian host order (both ends are x86-64 or
// arm64 Linux; the hello exchange rejects a peer whose magic reads differently).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tandem::transfer {

// Owns one file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset();

 private:
  int fd_ = -1;
};

struct Frame {
  uint32_t type = 0;
  std::string payload;
};

// A non-blocking TCP socket listening on every interface at an ephemeral port.
absl::StatusOr<Fd> ListenTcp(uint16_t* port);
// Accepts one pending connection (non-blocking); nullopt when none is pending.
absl::StatusOr<std::optional<Fd>> AcceptTcp(int listen_fd);
// Connects to host:port within `timeout_ms`; the socket is left non-blocking.
absl::StatusOr<Fd> ConnectTcp(const std::string& host, uint16_t port, int timeout_ms);
// This host's IPv4 addresses, non-loopback first, 127.0.0.1 last. Reads interfaces, never DNS.
std::vector<std::string> LocalIpv4Addresses();

// Writes one frame to a non-blocking socket, waiting at most `timeout_ms` for buffer space.
absl::Status SendFrame(int fd, uint32_t type, std::string_view payload, int timeout_ms);
// Reads one frame from a non-blocking socket, waiting at most `timeout_ms` (for handshakes).
absl::StatusOr<Frame> RecvFrame(int fd, int timeout_ms);

// Reassembles frames from a non-blocking socket as bytes arrive.
class FrameReader {
 public:
  // Reads whatever is available; an error when the peer closed the connection or it broke.
  absl::Status ReadAvailable(int fd);
  std::optional<Frame> Next();

 private:
  std::string buffer_;
};

// Little helpers to build and parse payloads.
class PayloadWriter {
 public:
  PayloadWriter& U32(uint32_t v);
  PayloadWriter& U64(uint64_t v);
  PayloadWriter& Str(std::string_view s);  // u32 length + bytes
  const std::string& data() const { return data_; }

 private:
  std::string data_;
};

class PayloadReader {
 public:
  explicit PayloadReader(std::string_view data) : data_(data) {}
  bool U32(uint32_t* v);
  bool U64(uint64_t* v);
  bool Str(std::string* s);
  bool done() const { return data_.empty(); }

 private:
  std::string_view data_;
};

}  // namespace tandem::transfer
