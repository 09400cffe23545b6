// ferry/core/detail/admission_control.hpp — the adaptive admission limit of a cpu_pool.
//
// Fed with measurements, not a clock: the pool reports each admitted job's wait for a worker
// (`on_start`), each admission that found the limit reached (`on_full`), and the runtime the
// loop's lag (`on_loop_lag`), each with the time it happened. Every `interval` the first report
// past the interval's end adjusts the limit (see admission.hpp for the rule, docs/design.md for
// the reasoning):
//
//   d = max(min(waits in the interval), max(loop lags in the interval))
//   d > target                         L <- max(L_min, L - max(1, L / 10))
//   d <= target / 2, limit reached     L <- min(L_max, L + max(1, L / 8))
//   d <= target, limit reached         L <- min(L_max, L + 1)
//   otherwise                          L unchanged
//
// An interval with no wait measured adjusts nothing but the lag's cut (no job started: nothing
// says the queue is short). Tests drive it with their own times (admission_control_test.cpp).
//
// Thread safety: every member may be called concurrently. One caller at a time adjusts (a
// try-lock: the others go on without waiting); the measurements are relaxed atomics, so a
// measurement racing with the adjustment may count in the next interval instead.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace ferry::detail {

class admission_control {
 public:
  struct config {
    std::int64_t target_ns = 5'000'000;
    std::int64_t interval_ns = 100'000'000;
    std::size_t min_limit = 1;
    std::size_t max_limit = 1;
    std::size_t initial_limit = 1;
    std::int64_t start_ns = 0;  // when the first interval begins (the caller's clock)
  };

  explicit admission_control(const config& c) noexcept;

  /// The current limit.
  std::size_t limit() const noexcept { return limit_.load(std::memory_order_relaxed); }

  /// An admitted job started after waiting `wait_ns` for a worker, at `now_ns`. True when this
  /// call raised the limit: the caller admits whoever waits for a slot.
  /// A start past the interval's end adjusts first: its wait counts in the next interval.
  bool on_start(std::int64_t wait_ns, std::int64_t now_ns) noexcept {
    const bool raised = now_ns >= interval_end_.load(std::memory_order_relaxed) && adjust(now_ns);
    std::int64_t seen = interval_min_.load(std::memory_order_relaxed);
    while (wait_ns < seen &&
           !interval_min_.compare_exchange_weak(seen, wait_ns, std::memory_order_relaxed)) {
    }
    return raised;
  }

  /// An admission found the limit reached (it waits, or was refused).
  void on_full() noexcept {
    if (!full_.load(std::memory_order_relaxed)) full_.store(true, std::memory_order_relaxed);
  }

  /// The loop ran `lag_ns` late at `now_ns` (the runtime's lag probe). True when the limit rose.
  /// Like a start, one past the interval's end adjusts first.
  bool on_loop_lag(std::int64_t lag_ns, std::int64_t now_ns) noexcept;

  /// The delay the last adjustment acted on (0 before the first).
  std::int64_t queue_delay_ns() const noexcept {
    return last_delay_.load(std::memory_order_relaxed);
  }

  const config& settings() const noexcept { return config_; }

 private:
  static constexpr std::int64_t none = std::numeric_limits<std::int64_t>::max();

  bool adjust(std::int64_t now_ns) noexcept;

  const config config_;
  std::atomic<std::size_t> limit_;
  std::atomic<std::int64_t> interval_end_;
  std::atomic<std::int64_t> interval_min_{none};  // the smallest wait of the interval
  std::atomic<std::int64_t> interval_lag_{0};     // the largest loop lag of the interval
  std::atomic<std::int64_t> last_delay_{0};
  std::atomic<bool> full_{false};
  std::atomic<bool> adjusting_{false};
};

}  // namespace ferry::detail
