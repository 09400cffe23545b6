// ferry/bridge/runtime.hpp — the event loop, the CPU pool and the blocking pool, owned together.
//
//   int main() {
//     return ferry::run([]() -> ferry::task<int> {
//       co_await ferry::sleep(10ms);
//       co_return co_await ferry::offload([] { return 42; }) == 42 ? 0 : 1;
//     }());
//   }
//
// A runtime owns an `io_context` run by `io_threads` threads (started by the constructor), a
// `cpu_pool` (work stealing, oneTBB) and a `blocking_pool` (elastic threads). Coroutines spawned
// on `get_executor()` that call `ferry::offload(f)` / `ferry::to_thread(f)` use this runtime's
// pools. The runtime lives in bridge/ because it is where the loop and the pools meet.
//
// Thread safety: distinct objects: safe. Shared objects: every member function may be called
// from any thread, except the destructor; `run` must not be called from the runtime's own io
// threads (it would wait for itself), and one `run` at a time.
//
// Lifetime: the destructor stops the io threads, waits for every function already handed to
// the pools (a running offload finishes; a queued one still runs), then destroys the io_context,
// which destroys the handlers that were still queued without running them (as Asio does). No
// handler runs after the destructor returns. Functions on the pools must finish by themselves:
// one that waits for the loop would wait forever once the loop is stopped.
//
// Errors: an exception that escapes a handler on an io thread — a plain callback completion
// handler that throws, a function posted to `get_executor()` that throws — leaves that thread's
// `io_context::run`, as in Asio; the runtime writes "ferry: an exception escaped a handler on an
// io thread: <what()>" to stderr and the thread goes back to the loop, as asyncio's default
// exception handler logs and goes on: the other handlers, the completions queued behind the
// throwing one included, still run. (An exception thrown in a coroutine is not such an escape:
// it goes to whoever awaits the coroutine, and `run` rethrows main's.)
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "ferry/bridge/detail/context_lookup.hpp"
#include "ferry/core/blocking_pool.hpp"
#include "ferry/core/cpu_pool.hpp"
#include "ferry/core/histogram.hpp"
#include "ferry/detail/thread_annotations.hpp"
#include "ferry/io/detail/task_registry.hpp"
#include "ferry/io/task.hpp"

namespace ferry {
namespace detail {
class loop_monitor;
}  // namespace detail

/// What a slow-callback report carries (see runtime_options::slow_callback_threshold).
struct slow_callback_report {
  /// How long the thread had not come back to the loop: at least the threshold while
  /// `ongoing`, the whole stall once it is over (measured from when the watchdog last saw the
  /// thread make progress, so it may miss up to a quarter of the threshold at the start).
  std::chrono::nanoseconds blocked_for{0};
  /// The io thread that was blocked. With several io threads each one is watched on its own.
  std::thread::id thread;
  /// The blocked thread's stack when the stall was detected, innermost frame first, one frame
  /// a line ("#0 function at file:line", or "function+0xoff (object)" without debug info):
  /// captured by a signal to that thread (see runtime_options::slow_callback_threshold). A
  /// note in parentheses instead when no stack was captured (more than 5 captures in the last
  /// minute, the capture signal in use by the application, the thread not answering). Both
  /// reports of a stall carry the same stack.
  std::string where;
  /// True for the report sent while the stall goes on (once it passes the threshold); false
  /// for the one sent when the loop comes back.
  bool ongoing = true;
};

struct runtime_options {
  /// Threads running the io_context (>= 1). With more than one, `run`'s main coroutine runs on
  /// a strand; spawn other coroutines on strands when they share state.
  std::size_t io_threads = 1;
  /// Workers of the work-stealing cpu_pool (0 = the number of cores this process may use).
  std::size_t cpu_threads = 0;
  /// Maximum threads of the blocking_pool (>= 1; checked by the blocking_pool).
  std::size_t blocking_threads = 64;
  /// How the runtime's cpu_pool admits offloads (core/admission.hpp): by default an adaptive
  /// limit that keeps the time an admitted offload waits for a worker near 5 ms, the loop's lag
  /// taken into account; the others wait for a slot (`offload`) or are refused (`try_offload`,
  /// and `offload` too with `reject_when_full`). `admission_policy::fixed(n)` or `unbounded()`.
  admission_policy admission = {};
  /// When not 0: at most this many offloads queued or running, the others waiting for a slot —
  /// shorthand for `admission = admission_policy::fixed(n)`, which it overrides.
  std::size_t max_offloads_in_flight = 0;
  /// The longest a thread spins before it sleeps, on both sides of an offload: a pool worker
  /// waiting for its next job, and the loop waiting for a completion while offloads are in
  /// flight (a spinning thread picks the work up far sooner than a sleeping one wakes;
  /// docs/performance.md has the figures). Adaptive: a spin that goes unrewarded halves the next
  /// one. 0 = never spin; at most 10 ms (checked by the cpu_pool). An idle runtime does not spin.
  std::chrono::nanoseconds spin = cpu_pool::default_spin;
  /// While the cpu_pool is saturated (more offloads unfinished than it has workers, so each
  /// worker has its next job queued), completions reach the loop in batches at most this far
  /// apart instead of waking it once each: the loop, woken less often, takes fewer slices of a
  /// core from the workers (docs/performance.md has the figures). Sockets and timers still wake
  /// the loop at once, and the window ends early when the pool is about to run dry; an offload
  /// may complete up to this much later, behind a queue that takes longer still. 0 = every
  /// completion wakes a sleeping loop. At most 10 ms.
  std::chrono::nanoseconds completion_batch_window = std::chrono::microseconds(400);
  /// How many nice levels the cpu_pool workers run below the thread that constructs the runtime,
  /// which the io threads' scheduling also comes from (0..19: relative, added to that thread's
  /// nice value; cpu_pool's `nice_increment`). A latency setting for servers whose offloads
  /// saturate every core: the loop gets a core as soon as a socket or timer wakes it, instead of
  /// when a worker's time slice ends. It costs throughput when the loop wakes often (each
  /// wake-up preempts a worker; docs/performance.md has the figures), so it is off by default;
  /// the example server sets 10. 0 = same priority.
  int cpu_nice_increment = 0;
  /// The loop watchdog: when an io thread has not come back to the loop for longer than this
  /// — a handler blocked it (CPU work on the loop, a blocking call) — the stall is reported
  /// through `on_slow_callback`, once while it lasts (with the thread's stack) and once when it
  /// ends, and counted in `runtime_stats::loop`. Like asyncio's slow-callback warning in debug
  /// mode and Seastar's stall reports, but always on when set. 0 = off (no watchdog thread).
  /// At most 1 hour.
  ///
  /// The stack: the watchdog sends the blocked thread the real-time signal SIGRTMIN + 4; its
  /// handler (installed once per process, unless the application has one for that signal)
  /// copies the thread's return addresses, and the watchdog names them (exported symbols by
  /// dladdr; others, and file:line, by `addr2line` on the binary's debug info when it is
  /// installed: build with -g to see static functions). At most 5 captures a minute. Nothing
  /// of this runs while the loop is healthy.
  ///
  /// With several io threads, each one counts the handlers it ran (one relaxed increment per
  /// handler); a thread whose count has not moved for the threshold, and which is not waiting
  /// for work, is stalled. Limitation: a handler that blocks on a futex (a std::mutex, a
  /// condition variable) right after its thread woke from waiting for work looks like waiting
  /// for work and is not reported.
  std::chrono::milliseconds slow_callback_threshold{0};
  /// Where slow-callback reports go (default: the report on stderr, its stack one frame a line).
  /// Called on the watchdog's reporting thread, one report at a time, in order; it must not
  /// wait for the loop. An exception it throws is written to stderr ("ferry: on_slow_callback
  /// threw: <what()>") and the watchdog goes on.
  std::function<void(const slow_callback_report&)> on_slow_callback = {};
  /// How often the loop measures its own lag: a timer due every interval records how late it
  /// fires (`runtime_stats::loop.lag`). Each sample wakes an idle loop once. 0 = off. At most
  /// 1 hour.
  std::chrono::milliseconds lag_probe_interval{100};
};

/// What the runtime's offloads did (its cpu_pool's jobs: `offload`, and work posted to the
/// pool's executor). The words mean what they mean in every stats struct: a finished offload
/// `ran` or was `skipped`, never both (`cpu_pool_stats::completed` = ran + skipped).
struct offload_stats {
  std::uint64_t submitted = 0;    ///< started
  std::uint64_t ran = 0;          ///< done, and f ran: returned or threw
  std::uint64_t failed = 0;       ///< of those, f threw
  std::uint64_t skipped = 0;      ///< done, and f never ran (cancelled first)
  std::size_t in_flight = 0;      ///< started, not yet done (waiting, queued, running)
  histogram_snapshot queue_wait;  ///< start of the offload to f starting
  histogram_snapshot run_time;    ///< f running, plus handing its result back
};

/// How the loop keeps up.
struct loop_stats {
  histogram_snapshot lag;                     ///< lateness of the lag probe's timer
  std::uint64_t slow_callbacks = 0;           ///< stalls reported by the watchdog
  std::chrono::nanoseconds longest_stall{0};  ///< the longest of them, once over
  /// Offloads completed through the inbox lane (design.md), the batches the loop took them in
  /// (one take of the inbox each: completions ÷ batches is what one wake-up of the loop
  /// delivers), and the batch windows opened while the pool was saturated
  /// (`runtime_options::completion_batch_window`).
  std::uint64_t inbox_completions = 0;
  std::uint64_t inbox_batches = 0;
  std::uint64_t batch_windows = 0;
};

/// A snapshot of a runtime's counters (each read relaxed: consistent enough for monitoring).
struct runtime_stats {
  std::size_t io_threads = 0;
  cpu_pool_stats cpu;
  blocking_pool_stats blocking;
  offload_stats offloads;
  loop_stats loop;
};

class runtime {
 public:
  using executor_type = boost::asio::io_context::executor_type;

  /// Starts the io threads and the pools. Throws std::invalid_argument on a bad option.
  explicit runtime(runtime_options options = {});

  /// See Lifetime in the file comment.
  ~runtime();

  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  /// The io_context's executor: `co_spawn(rt.get_executor(), ...)`.
  executor_type get_executor() noexcept { return io_.get_executor(); }
  boost::asio::io_context& io_context() noexcept { return io_; }
  cpu_pool& cpu() noexcept { return *cpu_; }
  blocking_pool& blocking() noexcept { return *blocking_; }
  const runtime_options& options() const noexcept { return options_; }
  runtime_stats stats() const;

  /// The last stalls the watchdog reported that are over (up to 8, oldest first; each the
  /// final report, `ongoing` false, with its stack). Empty without a watchdog.
  std::vector<slow_callback_report> recent_slow_callbacks() const;

  /// What every task of this runtime is doing, as text (like Python's `asyncio pstree`): run's
  /// main and every task_group on this runtime's io_context or cpu_pool, each group under the
  /// task that created it, each child with the file:line where it was spawned and what it
  /// awaits — one of ferry's operations (offload, sleep, queue::get, ...) and for how long, or
  /// "running, or awaiting an operation ferry does not track". Any thread; a snapshot (each
  /// group read under its own lock, one group at a time). See docs/design.md for what it
  /// costs when nobody asks (a few words per task, no lock on the hot path).
  std::string dump_tasks() const;

  /// True when called from one of this runtime's io threads.
  bool running_in_this_thread() const noexcept;

  /// The runtime whose io thread the caller is on, or nullptr.
  static runtime* current() noexcept;

  /// Runs `main` on the loop and blocks until it completes, like `asyncio.run`: returns its
  /// value or rethrows its exception. While it runs, SIGINT and SIGTERM (and `request_stop()`)
  /// cancel `main` (terminal cancellation): the operation it awaits completes with
  /// operation_aborted, and `main` decides how to finish — its outcome is what `run` returns or
  /// throws. Throws std::logic_error when called from an io thread of this runtime or while
  /// another `run` is in progress.
  template <class T>
  T run(task<T> main);

  /// Cancels the main coroutine of the `run` in progress (no-op when none is). Any thread.
  void request_stop();

 private:
  // The part of `run` that does not depend on T. Shared with the posts that cancel main, so a
  // late request_stop never touches a finished run.
  struct run_state {
    detail::mutex mutex;
    std::condition_variable cv;
    bool done FERRY_GUARDED_BY(mutex) = false;
    std::exception_ptr error;  // written under `mutex` before `done`, read once `done` is seen
    boost::asio::cancellation_signal cancel;
    detail::task_node main_task;  // what dump_tasks shows of main
  };

  // What the implementation keeps to itself (runtime_impl.hpp): the loop's inbox, the count of
  // foreign posters, the signal watch of the run in progress.
  struct impl;

  // main, recorded as the run's own task (detail::task_node::own_thread) while it runs.
  template <class T>
  static task<T> run_main(task<T> main, std::shared_ptr<run_state> state);

  boost::asio::any_io_executor begin_run(const std::shared_ptr<run_state>& state);
  void publish_run(const boost::asio::any_io_executor& ex);
  void post_stop_locked() FERRY_REQUIRES(run_mutex_);
  void end_run(run_state& state);
  static void finish_run(run_state& state, std::exception_ptr error);
  void io_thread_main(std::size_t index);

  friend std::atomic<std::size_t>* detail::foreign_posters(
      boost::asio::execution_context&, const boost::asio::execution_context&) noexcept;
  friend detail::loop_inbox* detail::current_inbox(const boost::asio::execution_context&,
                                                   const cpu_pool&) noexcept;

  runtime_options options_;
  boost::asio::io_context io_;
  std::unique_ptr<cpu_pool> cpu_;
  std::unique_ptr<blocking_pool> blocking_;
  std::unique_ptr<impl> impl_;  // after cpu_: its inbox spins only below cpu_'s worker count
  std::unique_ptr<detail::loop_monitor> monitor_;  // lag probe and watchdog (loop_monitor.cpp)
  std::optional<boost::asio::executor_work_guard<executor_type>> work_;
  std::vector<std::thread> threads_;

  mutable detail::mutex run_mutex_;
  std::shared_ptr<run_state> active_run_ FERRY_GUARDED_BY(run_mutex_);
  // empty until main has been started
  boost::asio::any_io_executor active_executor_ FERRY_GUARDED_BY(run_mutex_);
  // request_stop before main was started
  bool stop_requested_early_ FERRY_GUARDED_BY(run_mutex_) = false;
};

template <class T>
T runtime::run(task<T> main) {
  const auto shared = std::make_shared<run_state>();
  shared->main_task.owner = shared;  // awaited operations keep the node alive (task_node::owner)
  run_state& state = *shared;
  using value_type = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
  std::optional<value_type> value;
  const boost::asio::any_io_executor ex = begin_run(shared);
  auto on_done = [&state, &value](std::exception_ptr error, auto... result) {
    if (!error) {
      if constexpr (sizeof...(result) == 0) {
        value.emplace();
      } else {
        value.emplace(std::move(result)...);
      }
    }
    finish_run(state, error);
  };
  // Start main from inside its executor: by the time a cancellation posted there can run, main
  // has reached its first suspension point (Asio's co_spawn lets a cancellation that arrives
  // earlier escape from the loop instead of reaching the completion handler).
  boost::asio::post(ex, [shared, ex, on_done, main = std::move(main)]() mutable {
    detail::task_scope scope(&shared->main_task, true);  // dump_tasks: main is current
    boost::asio::cancellation_slot slot = shared->cancel.slot();
    boost::asio::co_spawn(
        ex, run_main(std::move(main), shared), boost::asio::bind_cancellation_slot(slot, on_done));
  });
  publish_run(ex);
  end_run(state);  // blocks until main completed; rethrows its exception
  if constexpr (!std::is_void_v<T>) return std::move(*value);
}

template <class T>
task<T> runtime::run_main(task<T> main, std::shared_ptr<run_state> state) {
  detail::own_thread_mark mark(&state->main_task);
  co_await detail::record_own_thread(&state->main_task);
  if constexpr (std::is_void_v<T>) {
    co_await std::move(main);
  } else {
    co_return co_await std::move(main);
  }
}

/// `asyncio.run`: a runtime with `options`, running `main` to completion.
template <class T>
T run(task<T> main, runtime_options options = {}) {
  runtime rt(std::move(options));
  return rt.run(std::move(main));
}

}  // namespace ferry
