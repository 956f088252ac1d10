#include "tandem/frontend/rate_limiter.h"

#include <algorithm>

namespace tandem::frontend {

RateLimiter::RateLimiter(double requests_per_minute, double tokens_per_minute)
    : requests_per_minute_(std::max(0.0, requests_per_minute)), tokens_per_minute_(std::max(0.0, tokens_per_minute)) {}

RateLimiter::Decision RateLimiter::Admit(const std::string& key, double tokens, double now_s) {
  Decision d;
  if (!enabled()) return d;
  if (tokens_per_minute_ > 0 && tokens > tokens_per_minute_) {
    d.admit = false;
    d.never = true;
    d.limit = "tokens_per_minute";
    d.per_minute = tokens_per_minute_;
    return d;
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, fresh] = keys_.try_emplace(key);
  Buckets& b = it->second;
  if (fresh) {  // a new key starts with a full minute's allowance
    b.requests = requests_per_minute_;
    b.tokens = tokens_per_minute_;
  } else {
    const double minutes = std::max(0.0, now_s - b.at_s) / 60.0;
    b.requests = std::min(requests_per_minute_, b.requests + minutes * requests_per_minute_);
    b.tokens = std::min(tokens_per_minute_, b.tokens + minutes * tokens_per_minute_);
  }
  b.at_s = now_s;
  // Seconds until a bucket refilled at `per_minute` holds `need` (0 when it does, or the limit is off).
  const auto wait_s = [](double have, double need, double per_minute) {
    return per_minute <= 0 || have >= need ? 0.0 : (need - have) * 60.0 / per_minute;
  };
  const double request_wait = wait_s(b.requests, 1.0, requests_per_minute_);
  const double token_wait = wait_s(b.tokens, tokens, tokens_per_minute_);
  if (request_wait > 0 || token_wait > 0) {
    d.admit = false;
    d.retry_after_s = std::max(request_wait, token_wait);
    const bool by_requests = request_wait >= token_wait;
    d.limit = by_requests ? "requests_per_minute" : "tokens_per_minute";
    d.per_minute = by_requests ? requests_per_minute_ : tokens_per_minute_;
    return d;
  }
  if (requests_per_minute_ > 0) b.requests -= 1.0;
  if (tokens_per_minute_ > 0) b.tokens -= tokens;
  return d;
}

}  // namespace tandem::frontend
