// ferry/core/detail/pool_access.hpp — the pools' job entry points, for ferry's own layers.
//
// `cpu_pool` and `blocking_pool` take work as `detail::job*` (intrusive, borrowed, never copied):
// the form the pool executor, offload and to_thread build on, not an application's interface
// (an application posts to `get_executor()`, or calls offload / to_thread). The pools keep
// these members private and befriend this accessor, which forwards to them unchanged: see each
// pool's header for what every call does and guarantees.
#pragma once

#include "ferry/core/detail/job.hpp"

namespace ferry::detail {

struct pool_access {
  /// `pool.submit(j)`: runs `j` on the pool; not subject to an admission bound.
  template <class Pool>
  static void submit(Pool& pool, job* j) {
    pool.submit(j);
  }

  /// `pool.submit_bounded(j)` (cpu_pool): runs `j` once an admission slot is free.
  template <class Pool>
  static void submit_bounded(Pool& pool, job* j) {
    pool.submit_bounded(j);
  }

  /// `pool.try_submit_bounded(j)` (cpu_pool): runs `j` if a slot is free now, else false.
  template <class Pool>
  [[nodiscard]] static bool try_submit_bounded(Pool& pool, job* j) {
    return pool.try_submit_bounded(j);
  }

  /// `pool.withdraw(j)` (cpu_pool): removes `j` if it still waits for a slot.
  template <class Pool>
  static bool withdraw(Pool& pool, job* j) noexcept {
    return pool.withdraw(j);
  }

  /// `pool.note_loop_lag(lag)` (cpu_pool): the runtime's loop ran `lag` late.
  template <class Pool, class Duration>
  static void note_loop_lag(Pool& pool, Duration lag) noexcept {
    pool.note_loop_lag(lag);
  }
};

}  // namespace ferry::detail
