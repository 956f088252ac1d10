// The parsers that map a file take a path: each input is written to one memory-backed file first.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace tandem::fuzz {

inline const std::string& InputPath() {
  static const std::string path = "/dev/shm/tandem-fuzz-" + std::to_string(getpid());
  return path;
}

inline bool WriteInput(const uint8_t* data, size_t size) {
  const int fd = open(InputPath().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  size_t done = 0;
  while (done < size) {
    const ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  close(fd);
  return done == size;
}

}  // namespace tandem::fuzz
