// ferry/core/detail/spin.hpp — the two primitives of ferry's bounded spins: a cheap monotonic
// clock and a CPU pause. Used by cpu_pool's workers and by the loop's inbox.
#pragma once

#include <chrono>
#include <cstdint>

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

}  // namespace ferry::detail
