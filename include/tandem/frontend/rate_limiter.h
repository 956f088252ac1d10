// Per-API-key rate limits (frontend.rate_limit): two token buckets per key, refilled continuously —
// requests (requests_per_minute) and tokens (tokens_per_minute; a request is charged its prompt tokens
// plus max_tokens for each sequence it asks for, when it is admitted). A bucket holds at most one
// minute's allowance, its burst. A request over either limit is refused whole (nothing is charged)
// with the seconds until both buckets hold enough: the frontend answers 429 with Retry-After. A
// request that needs more tokens than a whole minute's allowance can never pass: it is told so.
// Keys are the configured API keys, so the set of buckets is bounded (only authorized requests get
// here); with API keys off every client shares the one bucket of the key "". Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <string>

namespace tandem::frontend {

class RateLimiter {
 public:
  // 0 turns a limit off.
  RateLimiter(double requests_per_minute, double tokens_per_minute);

  bool enabled() const { return requests_per_minute_ > 0 || tokens_per_minute_ > 0; }

  struct Decision {
    bool admit = true;
    bool never = false;        // more tokens than a minute's allowance: no wait will do
    double retry_after_s = 0;  // when refused: until both buckets hold enough
    const char* limit = "";    // the limit that refused: "requests_per_minute" or "tokens_per_minute"
    double per_minute = 0;     // ... and its value
  };
  // Charges `key` one request and `tokens` tokens at monotonic time `now_s` if both buckets hold
  // enough; otherwise charges nothing.
  Decision Admit(const std::string& key, double tokens, double now_s);

 private:
  struct Buckets {
    double requests = 0, tokens = 0;  // what is left
    double at_s = 0;                  // when they were last refilled
  };
  const double requests_per_minute_, tokens_per_minute_;
  std::mutex mu_;
  std::map<std::string, Buckets> keys_;
};

}  // namespace tandem::frontend
