#include "tandem/cluster/cluster_token.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace tandem::cluster {
namespace {

std::string& Token() {
  static std::string token;
  return token;
}

}  // namespace

void SetClusterToken(std::string token) { Token() = std::move(token); }

const std::string& ClusterToken() { return Token(); }

std::string ClusterTokenFromEnv(const std::string& env_name) {
  if (env_name.empty()) return "";
  const char* value = std::getenv(env_name.c_str());
  return value == nullptr ? "" : value;
}

absl::StatusOr<std::string> GenerateClusterToken() {
  unsigned char bytes[32];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    const ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::InternalError(absl::StrCat("getrandom for the cluster token: ", std::strerror(errno)));
    got += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

bool ClusterTokenMatches(std::string_view expected, std::string_view presented) {
  if (expected.empty()) return true;
  const size_t n = std::max(expected.size(), presented.size());
  unsigned char diff = expected.size() == presented.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < expected.size() ? static_cast<unsigned char>(expected[i]) : 0;
    const unsigned char y = i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

}  // namespace tandem::cluster
