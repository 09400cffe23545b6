// ferry/core/blocking_pool.hpp — elastic threads for blocking calls.
//
// A blocking_pool runs work that blocks its thread: legacy synchronous libraries, file I/O, DNS
// lookups through getaddrinfo. It grows on demand up to `max_threads` and idle threads exit after
// `idle_timeout`, so a burst of blocking calls does not keep threads alive for ever. Blocking calls
// never belong on the work-stealing cpu_pool: a blocked TBB worker is a lost core. This pool does
// not use TBB at all.
//
// Scheduling: a submitted job goes to an idle thread if there is one (the most recently idled
// thread first, so that surplus threads time out); otherwise, below `max_threads`, a new thread is
// started for it; otherwise it waits in a FIFO queue until a thread finishes its current job.
//
// Thread safety: distinct objects are safe. A shared object is safe: `submit`, `stats`,
// `get_executor` and executor operations may be called concurrently from any thread, including
// from the pool's own threads.
//
// Lifetime: the pool does not own the jobs it runs (see detail::job); each job's `run` is called
// exactly once, on one of the pool's threads (see Errors for the one exception). The destructor
// first runs every job already submitted — jobs that submit further jobs while the pool drains
// are run too — then joins every thread (no thread is ever detached), then shuts down and
// destroys the Asio services of the execution context. Precondition: once the destructor has
// started, only jobs running on the pool may submit; a submission from any other thread after
// that point is undefined behaviour.
//
// Errors: if a thread cannot be started (std::system_error from std::thread), the job is not
// lost: it is queued when at least one pool thread is running (that thread will run it);
// otherwise `submit` unlinks it and rethrows, and the job remains the caller's. Jobs that other
// callers queued meanwhile are never dropped: the next thread started runs them, or, failing
// that, the destructor runs them on its own thread.
//
// Complexity: one mutex acquisition per submit and one per job run; no allocation per submit
// beyond the job itself. A thread (and its small bookkeeping node) is created only when no thread
// is idle. Waking an idle thread signals that thread alone (one condition variable per thread).
#pragma once

#include <boost/asio/execution_context.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>

#include "ferry/core/detail/job.hpp"
#include "ferry/core/detail/pool_access.hpp"
#include "ferry/core/detail/pool_executor.hpp"
#include "ferry/core/detail/thread_policy.hpp"
#include "ferry/detail/thread_annotations.hpp"

namespace ferry {

/// A snapshot of a blocking_pool's counters, taken under its lock.
struct blocking_pool_stats {
  std::size_t threads;       ///< Threads alive now (running a job, idle, or starting).
  std::size_t idle_threads;  ///< Threads waiting for work.
  std::size_t queued;        ///< Jobs waiting for a thread.
  std::size_t peak_threads;  ///< Highest value `threads` has had.
  std::uint64_t completed;   ///< Jobs that are done in any way (their `run` has returned).
};

/// Elastic threads for blocking calls; an Asio execution context.
class blocking_pool : public boost::asio::execution_context {
 public:
  using executor_type = detail::pool_executor<blocking_pool>;

  /// Creates an empty pool: no thread is started until the first job arrives.
  /// Throws std::invalid_argument if `max_threads` is 0. A zero or negative `idle_timeout` makes
  /// threads exit as soon as they find no work.
  explicit blocking_pool(std::size_t max_threads = 64,
                         std::chrono::milliseconds idle_timeout = std::chrono::seconds(10));

  /// Runs every submitted job, joins all threads, then shuts down the execution context.
  /// Blocks until then. Must not be called from one of the pool's own threads.
  ~blocking_pool();

  blocking_pool(const blocking_pool&) = delete;
  blocking_pool& operator=(const blocking_pool&) = delete;

  /// An executor that submits to this pool. Like asio::thread_pool's, it is `blocking.possibly`:
  /// `asio::dispatch` from one of this pool's threads runs the function inline; from any other
  /// thread, and always through `asio::post`/`defer` (which require `blocking.never`), the
  /// function is submitted.
  executor_type get_executor() noexcept;

  /// True when called from one of this pool's threads.
  bool running_in_this_thread() const noexcept;

  /// The bound given to the constructor.
  std::size_t max_threads() const noexcept { return max_threads_; }

  /// A consistent snapshot of the counters (takes the pool's lock).
  blocking_pool_stats stats() const;

 private:
  // The job entry point: ferry's own layers reach it through detail::pool_access.
  friend struct detail::pool_access;

  /// Schedules `j->run()` on a pool thread and returns without waiting for it. Blocks the caller
  /// only for a short critical section (plus, rarely, joining a thread that has just exited, and
  /// starting a thread when none is idle). Throws what std::thread throws only when no pool
  /// thread is running to take the job; then `j` is unlinked and still belongs to the caller.
  void submit(detail::job* j);

  struct worker;  // one per thread; defined in blocking_pool.cpp

  void worker_loop(worker* w) noexcept;
  void start_thread(worker* w);
  void on_start_failure(worker* w);
  void retire(worker* w) FERRY_REQUIRES(mutex_);

  void push_back(detail::job* j) noexcept FERRY_REQUIRES(mutex_);
  void push_front(detail::job* j) noexcept FERRY_REQUIRES(mutex_);
  detail::job* pop_front() noexcept FERRY_REQUIRES(mutex_);
  void push_idle(worker* w) noexcept FERRY_REQUIRES(mutex_);
  void remove_idle(worker* w) noexcept FERRY_REQUIRES(mutex_);

  const std::size_t max_threads_;
  const std::chrono::milliseconds idle_timeout_;
  const detail::thread_policy thread_policy_;  // the creating thread's (thread_policy.hpp)

  mutable detail::mutex mutex_;
  // Everything below is guarded by mutex_.
  std::condition_variable all_retired_;  // signalled when workers_ becomes empty
  // threads reserved or running (nodes never move)
  std::list<worker> workers_ FERRY_GUARDED_BY(mutex_);
  // threads that have exited, still to be joined
  std::list<worker> zombies_ FERRY_GUARDED_BY(mutex_);
  worker* idle_head_ FERRY_GUARDED_BY(mutex_) = nullptr;  // LIFO stack of idle threads (intrusive)
  detail::job* head_ FERRY_GUARDED_BY(mutex_) = nullptr;  // FIFO queue of jobs waiting for a thread
  detail::job* tail_ FERRY_GUARDED_BY(mutex_) = nullptr;
  std::size_t queued_ FERRY_GUARDED_BY(mutex_) = 0;
  std::size_t threads_ FERRY_GUARDED_BY(mutex_) = 0;  // reserved and not yet exited
  // inside worker_loop and not yet decided to exit
  std::size_t running_ FERRY_GUARDED_BY(mutex_) = 0;
  std::size_t idle_ FERRY_GUARDED_BY(mutex_) = 0;
  std::size_t peak_ FERRY_GUARDED_BY(mutex_) = 0;
  std::uint64_t completed_ FERRY_GUARDED_BY(mutex_) = 0;
  bool stopping_ FERRY_GUARDED_BY(mutex_) = false;
};

}  // namespace ferry
