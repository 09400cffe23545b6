// ferry/io/detail/deadline.hpp — durations to timer expiries, saturated instead of overflowing.
//
// A caller may pass any duration — `std::chrono::hours::max()`, a huge floating-point one — to
// `sleep` or `timeout`: it means "practically never", so it is clamped to the largest expiry the
// steady clock can hold, never wrapped into the past (which would fire at once).
#pragma once

#include <chrono>

namespace ferry::detail {

/// `d` in nanoseconds, saturated instead of overflowing.
template <class Rep, class Period>
std::chrono::nanoseconds saturating_nanoseconds(std::chrono::duration<Rep, Period> d) {
  using wide = std::chrono::duration<long double, std::nano>;
  const wide w = std::chrono::duration_cast<wide>(d);
  if (w >= wide(std::chrono::nanoseconds::max())) return std::chrono::nanoseconds::max();
  if (w <= wide(std::chrono::nanoseconds::min())) return std::chrono::nanoseconds::min();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d);
}

/// The steady-clock time `d` from now: now for a zero or negative `d`, the clock's maximum when
/// `d` reaches past it.
inline std::chrono::steady_clock::time_point deadline_after(std::chrono::nanoseconds d) {
  using clock = std::chrono::steady_clock;
  const clock::time_point now = clock::now();
  if (d <= std::chrono::nanoseconds::zero()) return now;
  if (d >= std::chrono::duration_cast<std::chrono::nanoseconds>(clock::time_point::max() - now)) {
    return clock::time_point::max();
  }
  return now + std::chrono::duration_cast<clock::duration>(d);
}

}  // namespace ferry::detail
