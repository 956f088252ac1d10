// Admission control (frontend.max_queue_wait_s): a request is admitted only when it can be expected
// to start, i.e. get its first token, within the configured wait; beyond that the client gets 429
// with Retry-After instead of a place at the end of a queue it would wait minutes in.
//
// Expected wait of a new request = (requests already waiting + 1) x the mean interval between
// starts while requests waited. That interval is the rate at which the engine takes queued work, a
// measure of capacity (slots free as running requests end) that holds whatever the load was when it
// was measured; it is the mean over the last 64 such intervals, so a step that starts many requests
// at once counts as what it is. Until an interval has been seen (no queue has formed yet) the
// estimate is 0; either way, a queue whose oldest request has waited the limit already is full.
// Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>

namespace tandem::frontend {

class AdmissionControl {
 public:
  // `max_wait_s` 0: admit everything (nothing is measured either).
  explicit AdmissionControl(double max_wait_s) : max_wait_s_(max_wait_s) {}

  struct Decision {
    bool admit = true;
    double expected_wait_s = 0;  // max(the estimate, the oldest waiting request's wait so far)
    int retry_after_s = 0;       // when refused: about when the queue is short enough again (1..60)
  };
  Decision Check(double now_s) const;

  // `ticket` (increasing with arrival) was admitted at `now_s` and waits for its first token.
  void Queued(uint64_t ticket, double now_s);
  // Its first token came: one start, measured. No-op for a ticket not waiting.
  void Started(uint64_t ticket, double now_s);
  // It ended without a token (error, cancel): it no longer waits, nothing is measured.
  void Left(uint64_t ticket);

  size_t waiting() const;
  double mean_start_interval_s() const;  // 0 until measured

 private:
  static constexpr size_t kWindow = 64;
  const double max_wait_s_;
  mutable std::mutex mu_;
  std::map<uint64_t, double> waiting_;  // ticket -> when queued; begin() is the oldest
  double chain_s_ = -1;                 // the previous start with requests still waiting; -1: none
  std::deque<double> intervals_;        // the last kWindow intervals between such starts
  double interval_sum_ = 0;
};

}  // namespace tandem::frontend
