// ferry/core/cpu_pool.hpp — the work-stealing CPU pool, on a oneTBB task arena.
//
// cpu_pool runs CPU-bound work on `threads` oneTBB workers. Work submitted from outside the pool
// (an I/O thread, any thread) enters the arena's FIFO queue; work spawned inside it
// (`tbb::parallel_for`, `tbb::task_group`) is stolen by idle workers of the same arena. Every
// submitted function runs inside `tbb::this_task_arena::isolate`, so a worker that waits inside
// one function (a nested `parallel_for`) only picks up that function's own subtasks, never an
// unrelated submission: nested waits cannot deadlock or stack up.
//
// All `threads` workers serve submitted work. (oneTBB's defaults give work enqueued from a
// non-TBB thread one worker fewer than the machine has cores: `task_arena(n)` reserves a slot
// for an external thread and the global worker limit is cores - 1. cpu_pool reserves no slot and
// raises `global_control::max_allowed_parallelism` to cover every live pool.)
//
// Admission: bounded submissions (`submit_bounded`: offload) are queued or running in the arena
// at most `max_in_flight()` at a time; the others wait in a FIFO admission queue, which costs the
// submitter nothing but a lock (no thread blocks). `withdraw` removes a waiting one;
// `try_submit_bounded` (try_offload) refuses instead of waiting. The limit is fixed
// (`max_in_flight = N`, or `admission_policy::fixed(N)`), none (unbounded, the default of a pool
// constructed on its own), or adaptive (`admission_policy::adaptive()`, a runtime's default): it
// follows the time admitted jobs wait for a worker (admission.hpp, detail/admission_control.hpp).
//
// Hot hand-off: a worker that finishes a job while nothing is queued does not go straight back
// to oneTBB (where it would soon sleep, and a sleeping thread is slow to wake: see
// docs/performance.md): it spins for a bounded, adaptive time on a slot of its own, and `submit`
// hands the next job straight into a waiting worker's slot — one CAS, no oneTBB task, no wake-up.
// The spin lasts at most `spin` (constructor), shrinks by half each time it ends without a job and
// doubles back each time one arrives, and stops as soon as something is queued in the arena or the
// pool is destroyed. An idle pool spins for nothing: only the end of a job starts a spin.
//
// Batches: a submission that no spinning worker takes goes into a bounded lock-free FIFO of the
// pool's (4,096 jobs), served by at most `threads` oneTBB tasks that each run jobs until it is
// empty — one oneTBB task per batch of submissions, not per job. A pusher adds such a task only
// while fewer than `threads` exist; a task that finds the queue empty leaves only after looking
// again (no job is left without one, no thread waits for another). When the queue is full, a job
// gets a oneTBB task of its own.
//
// Thread safety: distinct objects: safe. Shared objects: every member function is safe to call
// concurrently, except the destructor.
//
// Lifetime: the destructor waits until every submitted job has run (jobs that submit more work
// keep it waiting), then destroys the arena. It must not be called from one of the pool's own
// threads. A job is borrowed: the pool never copies or frees it.
//
// Complexity: `submit` is lock-free on ferry's side: two relaxed counter increments, a
// steady-clock read (for the queue-wait histogram) and a seq_cst load of the spinner count; then
// either one CAS into a spinning worker's slot (no oneTBB task, no wake-up), or one CAS and a
// store into the batch queue plus a load of the queue-task count (oneTBB's enqueue only when
// fewer than `threads` queue tasks exist), or, with the queue full, a seq_cst increment plus
// oneTBB's enqueue, which takes a task object from oneTBB's per-thread small-object pool.
// `submit_bounded` adds one CAS while a slot is free; only a submission that finds every slot
// taken takes the admission lock.
#pragma once

#include <oneapi/tbb/task_arena.h>

#include <atomic>
#include <boost/asio/execution_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "ferry/core/admission.hpp"
#include "ferry/core/detail/job.hpp"
#include "ferry/core/detail/pool_access.hpp"
#include "ferry/core/detail/pool_executor.hpp"
#include "ferry/core/detail/thread_policy.hpp"
#include "ferry/core/histogram.hpp"
#include "ferry/detail/thread_annotations.hpp"

namespace ferry {
namespace detail {
class admission_control;
}  // namespace detail

/// A snapshot of a cpu_pool's counters (each read relaxed: consistent enough for monitoring,
/// not a linearizable view).
struct cpu_pool_stats {
  std::size_t threads = 0;        ///< workers serving the arena
  std::size_t max_in_flight = 0;  ///< the admission limit now; 0 = unbounded
  std::uint64_t submitted = 0;    ///< jobs handed to the pool, bounded or not
  std::uint64_t completed = 0;    ///< jobs that are done in any way: their work ran, or skipped
  std::uint64_t failed = 0;       ///< of those, jobs whose work ran and threw (offload: f threw)
  std::uint64_t skipped = 0;      ///< of those, jobs whose work never ran (cancelled first)
  std::uint64_t handed_off = 0;   ///< jobs handed straight to a spinning worker
  std::size_t in_flight = 0;      ///< admitted to the arena, not finished
  std::size_t waiting = 0;        ///< waiting for an admission slot
  std::uint64_t admitted = 0;     ///< bounded jobs given an admission slot
  std::uint64_t rejected = 0;     ///< `try_submit_bounded` calls refused: every slot was taken
  /// Adaptive admission: the queueing delay its last adjustment acted on (the smallest wait
  /// for a worker of an interval, or the loop's lag when larger); 0 otherwise.
  std::chrono::nanoseconds queue_delay{0};
  histogram_snapshot queue_wait;  ///< submission to start, of the jobs that ran
  histogram_snapshot run_time;    ///< start to end, of the jobs that ran
};

class cpu_pool : public boost::asio::execution_context {
 public:
  using executor_type = detail::pool_executor<cpu_pool>;

  /// The longest a worker spins for the next job after finishing one (see Hot hand-off).
  static constexpr std::chrono::nanoseconds default_spin = std::chrono::microseconds(50);

  /// Starts a pool of `threads` workers (0 = the number of cores this process may use).
  /// `max_in_flight` bounds `submit_bounded` (0 = unbounded). `spin`: see Hot hand-off (0 = off;
  /// at most 10 ms). `nice_increment` (0..19): how many nice levels the workers run below the
  /// creating thread — relative, added to that thread's nice value (capped at 19), as `nice(2)`'s
  /// increment — so that a thread that must stay responsive — an event loop — gets
  /// a core at once when it wakes while the workers saturate every core (Linux: `setpriority`
  /// on each worker thread as it joins the arena; oneTBB's workers are shared by the whole
  /// process and a thread's priority cannot be raised back without privileges, so other arenas'
  /// work on those threads runs at that priority too; ignored elsewhere). Workers otherwise
  /// run at the creating thread's scheduling policy and priority, whichever thread started them:
  /// a loop thread at SCHED_FIFO that first gives the pool work does not make its workers
  /// real-time (detail/thread_policy.hpp). Throws std::invalid_argument on a bad value.
  explicit cpu_pool(std::size_t threads = 0,
                    std::size_t max_in_flight = 0,
                    std::chrono::nanoseconds spin = default_spin,
                    int nice_increment = 0);

  /// The same, with the admission policy spelled out (admission.hpp). Throws
  /// std::invalid_argument on a bad value.
  cpu_pool(std::size_t threads,
           const admission_policy& admission,
           std::chrono::nanoseconds spin = default_spin,
           int nice_increment = 0);

  /// Blocks until every submitted job has run; see Lifetime above.
  ~cpu_pool();

  cpu_pool(const cpu_pool&) = delete;
  cpu_pool& operator=(const cpu_pool&) = delete;

  /// An Asio executor: `asio::post`, `asio::dispatch`, `asio::co_spawn` accept it.
  executor_type get_executor() noexcept { return executor_type(*this); }

  /// The number of workers.
  std::size_t concurrency() const noexcept { return threads_; }

  /// The admission limit of `submit_bounded` now (0 = unbounded; adaptive: it moves).
  std::size_t max_in_flight() const noexcept;

  /// The admission policy, as resolved at construction (adaptive: `limit` is the ceiling).
  const admission_policy& admission() const noexcept { return admission_; }

  /// Counters and latency histograms (each read relaxed; a snapshot costs a few microseconds).
  cpu_pool_stats stats() const;

  /// True when called from one of the pool's threads (a submitted function, or a subtask of
  /// one that another worker stole).
  bool running_in_this_thread() const noexcept;

  /// The pool whose thread the caller is, or nullptr.
  static cpu_pool* current() noexcept;

 private:
  // The job entry points: ferry's own layers reach them through detail::pool_access.
  friend struct detail::pool_access;

  /// Runs `j` on the pool (isolated). Never blocks; not subject to the admission bound.
  /// Memory ordering: everything the submitter wrote before `submit` is visible to `j->run()`.
  void submit(detail::job* j);

  /// Runs `j` on the pool once an admission slot is free (at once when unbounded). Never blocks.
  void submit_bounded(detail::job* j);

  /// Runs `j` on the pool if an admission slot is free now and nobody waits for one (always
  /// when unbounded); otherwise returns false at once, and the caller still owns `j`. Never
  /// blocks, never queues: the way to refuse work when the pool's bound is full.
  [[nodiscard]] bool try_submit_bounded(detail::job* j);

  /// Removes `j` if it is still waiting for an admission slot; then it will never run and the
  /// caller owns it again. Returns false when `j` was already admitted (it will run).
  /// `j` must have been passed to `submit_bounded` of this pool.
  bool withdraw(detail::job* j) noexcept;

  /// The loop of the runtime that owns the pool ran `lag` late: a second delay signal for the
  /// adaptive limit (ignored otherwise).
  void note_loop_lag(std::chrono::nanoseconds lag) noexcept;

  struct worker_slot;

  struct batch_cell;

  void enqueue(detail::job* j);
  bool try_hand_off(detail::job* j) noexcept;
  bool batch_push(detail::job* j) noexcept;
  detail::job* batch_pop() noexcept;
  bool batch_empty() const noexcept;
  void add_drainer() noexcept;
  void drain() noexcept;
  void serve(detail::job* j) noexcept;
  void run_job(detail::job* j, worker_slot* slot) noexcept;
  detail::job* spin_for_job(worker_slot& slot) noexcept;
  bool try_take_slot() noexcept;
  void release_slot() noexcept;
  void admit_waiters() noexcept;
  void finish_one() noexcept;

  class arena_observer;

  const std::size_t threads_;
  const admission_policy admission_;  // validated; adaptive: `limit` is the ceiling
  const bool bounded_;                // admission_ is not unbounded
  const std::unique_ptr<detail::admission_control> control_;  // adaptive only
  const std::int64_t spin_ns_;
  const detail::thread_policy worker_policy_;  // the creating thread's, `nice_increment` lower
  tbb::task_arena arena_;
  std::unique_ptr<arena_observer> observer_;
  // One per arena slot (oneTBB's thread index), and one more: oneTBB gives the worker of a
  // one-thread arena index 1.
  const std::size_t slot_count_;
  std::unique_ptr<worker_slot[]> slots_;

  // pending_: submitted and not yet finished (drives the destructor's wait).
  alignas(64) std::atomic<std::size_t> pending_{0};
  std::atomic<std::uint64_t> submitted_{0};
  std::atomic<std::uint64_t> withdrawn_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::atomic<std::uint64_t> admitted_{0};

  // Hot hand-off: jobs enqueued in the arena and not started; workers spinning on their slot;
  // workers inside serve() after their first job (the destructor waits for them).
  alignas(64) std::atomic<std::size_t> queued_{0};
  std::atomic<std::size_t> spinning_{0};
  std::atomic<std::size_t> serving_{0};
  std::atomic<bool> stopping_{false};

  // The batch queue: a bounded lock-free FIFO (Vyukov's) of submitted jobs, served by at most
  // `threads_` oneTBB tasks (drainers_) that each run jobs until the queue is empty, instead of
  // one oneTBB task per job.
  std::unique_ptr<batch_cell[]> batch_;
  alignas(64) std::atomic<std::size_t> batch_tail_{0};  // next position to push
  alignas(64) std::atomic<std::size_t> batch_head_{0};  // next position to pop
  alignas(64) std::atomic<std::size_t> drainers_{0};

  // Admission (used only when bounded_).
  alignas(64) std::atomic<std::size_t> in_flight_{0};
  std::atomic<std::size_t> waiting_{0};
  detail::mutex admission_mutex_;
  detail::job waiters_ FERRY_GUARDED_BY(admission_mutex_){nullptr};  // sentinel of a circular list
};

}  // namespace ferry
