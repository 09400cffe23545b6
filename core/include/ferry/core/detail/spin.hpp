// ferry/core/detail/spin.hpp — ferry's one spin policy, used by cpu_pool's workers (waiting for
// their next job) and by the loop's inbox (waiting for completions), in the manner of oneTBB's
// `atomic_backoff`:
//  - a spin lasts at most its budget (`spin_budget`), which adapts between a floor (2 µs, or the
//    maximum if smaller) and the configured maximum (`runtime_options::spin`): doubled after a
//    spin that got what it waited for, halved after one that ended empty-handed;
//  - the clock is read once every 16 checks (`spin_pacer`);
//  - once 5 µs have passed without progress, the spinner yields its core between checks (on a
//    busy machine the thread it waits for may want that core).
// Every spin is bounded by time alone, never by another thread's progress.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace ferry::detail {

/// steady_clock, in nanoseconds since its epoch (a vDSO call on Linux: no system call).
inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// Tells the core that this thread is spin-waiting (frees resources for its sibling hyperthread
/// and avoids a memory-order mis-speculation on exit from the loop).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

/// How long the next spin may last. Not synchronised: one owner (a worker slot, the inbox).
class spin_budget {
 public:
  /// A spin never shrinks below this: one round trip of a job to a core that is awake.
  static constexpr std::int64_t floor_ns = 2'000;

  explicit spin_budget(std::int64_t max_ns = 0) noexcept : max_ns_(max_ns), ns_(max_ns) {}

  std::int64_t ns() const noexcept { return ns_; }
  void rewarded() noexcept { ns_ = std::min(max_ns_, ns_ * 2); }
  void unrewarded() noexcept { ns_ = std::max(std::min(floor_ns, max_ns_), ns_ / 2); }

 private:
  std::int64_t max_ns_;
  std::int64_t ns_;
};

/// The pace of one spin between two checks of what it waits for.
class spin_pacer {
 public:
  /// Past this without progress, the spinner yields its core between checks.
  static constexpr std::int64_t yield_after_ns = 5'000;

  /// `progress_ns`: the spin's start. `clock_every`: 16, or 1 to read the clock on every check.
  explicit spin_pacer(std::int64_t progress_ns, unsigned clock_every = 16) noexcept
      : clock_every_(clock_every), progress_ns_(progress_ns) {}

  /// True on the checks that read the clock (one in `clock_every`), into `now`; on the others,
  /// pauses the core and returns false.
  bool tick(std::int64_t& now) noexcept {
    if (++checks_ % clock_every_ != 0) {
      cpu_relax();
      return false;
    }
    now = now_ns();
    return true;
  }

  /// After a check that read the clock: yields the core once the spin has gone
  /// `yield_after_ns` without progress, pauses it otherwise.
  void rest(std::int64_t now) const noexcept {
    if (now - progress_ns_ > yield_after_ns) {
      std::this_thread::yield();
    } else {
      cpu_relax();
    }
  }

  void progressed(std::int64_t now) noexcept { progress_ns_ = now; }

 private:
  unsigned clock_every_;
  unsigned checks_ = 0;
  std::int64_t progress_ns_;
};

}  // namespace ferry::detail
