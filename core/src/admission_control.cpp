// ferry/core/src/admission_control.cpp — the adaptive admission limit (admission_control.hpp).
#include "ferry/core/detail/admission_control.hpp"

#include <algorithm>

namespace ferry::detail {

admission_control::admission_control(const config& c) noexcept
    : config_(c),
      limit_(std::clamp(c.initial_limit, c.min_limit, c.max_limit)),
      interval_end_(c.start_ns + c.interval_ns) {}

bool admission_control::on_loop_lag(std::int64_t lag_ns, std::int64_t now_ns) noexcept {
  const bool raised = now_ns >= interval_end_.load(std::memory_order_relaxed) && adjust(now_ns);
  std::int64_t seen = interval_lag_.load(std::memory_order_relaxed);
  while (lag_ns > seen &&
         !interval_lag_.compare_exchange_weak(seen, lag_ns, std::memory_order_relaxed)) {
  }
  return raised;
}

bool admission_control::adjust(std::int64_t now_ns) noexcept {
  if (adjusting_.exchange(true, std::memory_order_acquire)) return false;  // another adjusts
  bool raised = false;
  if (now_ns >= interval_end_.load(std::memory_order_relaxed)) {
    interval_end_.store(now_ns + config_.interval_ns, std::memory_order_relaxed);
    const std::int64_t wait = interval_min_.exchange(none, std::memory_order_relaxed);
    const std::int64_t lag = interval_lag_.exchange(0, std::memory_order_relaxed);
    const bool full = full_.exchange(false, std::memory_order_relaxed);
    const std::size_t limit = limit_.load(std::memory_order_relaxed);
    std::size_t next = limit;
    if (lag > config_.target_ns || (wait != none && wait > config_.target_ns)) {
      // A standing queue (or a late loop): shed a tenth of the limit.
      const std::int64_t delay = std::max(lag, wait == none ? 0 : wait);
      last_delay_.store(delay, std::memory_order_relaxed);
      const std::size_t cut = std::max<std::size_t>(1, limit / 10);
      next = limit > config_.min_limit + cut ? limit - cut : config_.min_limit;
    } else if (wait != none) {
      const std::int64_t delay = std::max(lag, wait);
      last_delay_.store(delay, std::memory_order_relaxed);
      if (full) {
        const std::size_t step =
            delay * 2 <= config_.target_ns ? std::max<std::size_t>(1, limit / 8) : 1;
        next = std::min(config_.max_limit, limit + step);
      }
    }
    if (next != limit) limit_.store(next, std::memory_order_relaxed);
    raised = next > limit;
  }
  adjusting_.store(false, std::memory_order_release);
  return raised;
}

}  // namespace ferry::detail
