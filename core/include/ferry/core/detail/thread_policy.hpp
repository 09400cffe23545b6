// ferry/core/detail/thread_policy.hpp — the scheduling a pool's threads run at.
//
// A new thread inherits the scheduling policy, priority and nice value of the thread that
// starts it. oneTBB starts its workers from whichever thread first gives an arena work, and the
// blocking pool starts a thread from whichever thread submits when none is idle: an event loop
// thread, often. A loop put at SCHED_FIFO (`chrt -f -p 10 <tid>`, a normal step for a
// latency-critical server) would hand real-time priority to every worker it happens to start,
// and workers that never block then starve the loop's own process. So a pool records the
// scheduling of the thread that makes it, and each of its threads takes that scheduling when it
// starts serving the pool — whoever started it.
#pragma once

#include <cstdint>

namespace ferry::detail {

struct thread_policy {
  int policy = 0;        ///< SCHED_OTHER, SCHED_FIFO, ... (sched_getscheduler)
  int priority = 0;      ///< sched_priority (0 for the non-real-time policies)
  int nice = 0;          ///< Linux: the thread's own nice value (absolute)
  std::uint64_t id = 0;  ///< distinct per recorded policy: a thread applies each one once

  /// The calling thread's scheduling, with `nice_increment` added to its nice value (capped at
  /// 19).
  static thread_policy of_this_thread(int nice_increment = 0) noexcept;

  /// Gives the calling thread this scheduling, once per thread and policy (later calls with the
  /// same policy cost one thread-local read, so a program may still `chrt` a worker by hand).
  /// Best effort: lowering a priority always succeeds; raising one back (a nice value below the
  /// thread's, a real-time policy) needs privileges and is skipped without them. No-op off Linux.
  void apply_to_this_thread() const noexcept;
};

}  // namespace ferry::detail
