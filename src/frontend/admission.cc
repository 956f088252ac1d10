#include "tandem/frontend/admission.h"

#include <algorithm>
#include <cmath>

namespace tandem::frontend {

AdmissionControl::Decision AdmissionControl::Check(double now_s) const {
  Decision d;
  if (max_wait_s_ <= 0) return d;
  std::lock_guard<std::mutex> lock(mu_);
  const double mean = intervals_.empty() ? 0 : interval_sum_ / static_cast<double>(intervals_.size());
  const double estimate = static_cast<double>(waiting_.size() + 1) * mean;
  const double oldest = waiting_.empty() ? 0 : now_s - waiting_.begin()->second;
  d.expected_wait_s = std::max(estimate, oldest);
  if (d.expected_wait_s <= max_wait_s_) return d;
  d.admit = false;
  d.retry_after_s = static_cast<int>(std::clamp(std::ceil(d.expected_wait_s - max_wait_s_), 1.0, 60.0));
  return d;
}

void AdmissionControl::Queued(uint64_t ticket, double now_s) {
  if (max_wait_s_ <= 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  waiting_.emplace(ticket, now_s);
}

void AdmissionControl::Started(uint64_t ticket, double now_s) {
  if (max_wait_s_ <= 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = waiting_.find(ticket);
  if (it == waiting_.end()) return;
  waiting_.erase(it);
  if (chain_s_ >= 0) {
    const double interval = std::max(0.0, now_s - chain_s_);
    intervals_.push_back(interval);
    interval_sum_ += interval;
    if (intervals_.size() > kWindow) {
      interval_sum_ -= intervals_.front();
      intervals_.pop_front();
    }
  }
  // Only starts while others wait measure capacity: an idle engine starts a request at once.
  chain_s_ = waiting_.empty() ? -1 : now_s;
}

void AdmissionControl::Left(uint64_t ticket) {
  if (max_wait_s_ <= 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  waiting_.erase(ticket);
  if (waiting_.empty()) chain_s_ = -1;
}

size_t AdmissionControl::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_.size();
}

double AdmissionControl::mean_start_interval_s() const {
  std::lock_guard<std::mutex> lock(mu_);
  return intervals_.empty() ? 0 : interval_sum_ / static_cast<double>(intervals_.size());
}

}  // namespace tandem::frontend
