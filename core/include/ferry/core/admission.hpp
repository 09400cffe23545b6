// ferry/core/admission.hpp — how a cpu_pool bounds the work it admits (offload, try_offload).
//
//   ferry::runtime rt;                                                    // adaptive (default)
//   ferry::runtime rt({.admission = ferry::admission_policy::fixed(64)}); // at most 64
//   ferry::runtime rt({.admission = ferry::admission_policy::unbounded()});
//
// A pool admits bounded submissions (`offload`, `try_offload`) up to a limit on how many are
// queued or running on its workers at once; the others wait in a FIFO admission queue
// (`offload`) or are refused at once (`try_offload`, and `offload` with `reject_when_full`).
//
//  - adaptive: the limit follows the queueing delay. The pool measures how long each admitted
//    job waits for a worker; every `interval` it takes the smallest of those waits (the delay
//    that no job escaped: a standing queue, as CoDel senses it) and the loop's lag, when the
//    runtime measures it. Above `target`, the limit drops by a tenth (at least 1, never below the
//    number of workers); at most half the target while the limit was reached, it grows by an
//    eighth (at least 1), and by 1 up to the target. So the queue in front of the workers holds
//    about `target` of work whatever the jobs cost, the workers never run dry for want of
//    admitted work, and what the queue cannot serve in time is refused (`try_offload`) or waits
//    outside it (`offload`), where a cancellation or deadline removes it before it costs a
//    worker anything. docs/design.md ("Admission") gives the reasoning and the figures.
//  - fixed: at most `limit` (>= 1), as `cpu_pool(threads, limit)`.
//  - unbounded: everything is admitted at once; nothing waits in ferry, the queue is oneTBB's.
//
// A runtime's pool is adaptive by default; a cpu_pool constructed on its own is unbounded unless
// it is given a bound or a policy.
#pragma once

#include <chrono>
#include <cstddef>

namespace ferry {

struct admission_policy {
  enum class mode : unsigned char { adaptive, fixed, unbounded };

  mode kind = mode::adaptive;
  /// fixed: the bound (>= 1). adaptive: the most the limit may grow to (0 = 256 per worker).
  std::size_t limit = 0;
  /// adaptive: the queueing delay to keep the pool's queue under (> 0, at most 10 s).
  std::chrono::nanoseconds target = std::chrono::milliseconds(5);
  /// adaptive: how often the limit is adjusted (>= 1 ms, at most 10 s).
  std::chrono::nanoseconds interval = std::chrono::milliseconds(100);
  /// When the limit is reached, `offload` too completes at once with `ferry::offload_rejected`
  /// instead of waiting for a slot (what `try_offload` always does). For a server that sheds.
  bool reject_when_full = false;

  static admission_policy adaptive(std::chrono::nanoseconds target = std::chrono::milliseconds(5)) {
    admission_policy p;
    p.target = target;
    return p;
  }
  static admission_policy fixed(std::size_t limit) {
    admission_policy p;
    p.kind = mode::fixed;
    p.limit = limit;
    return p;
  }
  static admission_policy unbounded() {
    admission_policy p;
    p.kind = mode::unbounded;
    return p;
  }
};

}  // namespace ferry
