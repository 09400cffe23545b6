// ferry/bridge/src/loop_monitor.hpp — the loop's own instruments (private to the runtime): the
// lag probe and the watchdog, which reports a stalled io thread with its stack.
//
// Watchdog, one io thread: a probe posted to the loop every quarter threshold; when it has not
// run for longer than the threshold, the thread is stalled. Several io threads: each one counts
// the handlers it finished (io_thread_loop), and a thread whose count has not moved for longer
// than the threshold while it is not waiting for work is stalled — each thread is judged on its
// own, and the report names it.
//
// Stack capture: the watchdog sends the stalled thread a real-time signal (capture_signal) with
// pthread_sigqueue; its handler unwinds with glibc's backtrace() (warmed up once outside any
// handler, so that it never loads libgcc_s from inside one) into a buffer preallocated in the
// thread's slot, and a reporter thread names the frames (dladdr, then addr2line for the frames
// dladdr cannot name: static functions, with -g their file:line) and calls on_slow_callback, so
// that neither keeps the watchdog from watching. At
// most 5 captures a minute (Seastar's rate); beyond that, reports go out without a stack.
// Nothing of this runs while the loop is healthy: the only cost on the io threads is one
// relaxed increment per handler with several io threads, none with one.
#pragma once

#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ferry/bridge/runtime.hpp"
#include "ferry/core/histogram.hpp"
#include "ferry/detail/thread_annotations.hpp"

namespace ferry::detail {

/// The signal the watchdog sends a stalled io thread to capture its stack (SIGRTMIN + 4). When
/// the process already has a handler for it, ferry installs none and reports carry no stack.
int capture_signal() noexcept;

/// One io thread as the watchdog sees it. Written by its thread (identity once, `handlers`
/// per handler), read by the watchdog; the frames are written by the signal handler.
struct io_thread_slot {
  static constexpr int max_frames = 48;

  std::atomic<pid_t> tid{0};                           // 0 until the thread has started
  pthread_t handle{};                                  // valid once tid != 0
  std::thread::id id;                                  // valid once tid != 0
  alignas(64) std::atomic<std::uint64_t> handlers{0};  // finished handlers (several io threads)
  std::atomic<bool> parked{false};                     // in run_one: waiting, or its handler

  // Stack capture: the watchdog bumps `requested` and signals; the handler stores the frames
  // and then `captured = requested`.
  std::atomic<std::uint64_t> requested{0};
  std::atomic<std::uint64_t> captured{0};
  std::atomic<int> depth{0};
  std::atomic<void*> frames[max_frames]{};
};

class loop_monitor {
 public:
  /// `pool` (may be null) hears of every lag the probe measures (its adaptive admission limit
  /// takes the loop's lag as a second delay signal).
  loop_monitor(boost::asio::io_context& io, const runtime_options& options, cpu_pool* pool);
  ~loop_monitor();

  loop_monitor(const loop_monitor&) = delete;
  loop_monitor& operator=(const loop_monitor&) = delete;

  /// Runs `io` on the calling io thread until it is stopped (exceptions propagate), counting
  /// handlers when the watchdog watches each thread on its own.
  void io_thread_loop(std::size_t index);

  /// After the io threads have been started.
  void start_watchdog();

  void fill(loop_stats& s) const;

  /// Stops the watchdog and delivers the reports already made; before the io threads stop
  /// (a stopped loop would look stalled, and a joined thread must not be signalled).
  void stop();

  /// The last (up to 8) stalls that are over, oldest first.
  std::vector<slow_callback_report> recent() const;

 private:
  void arm_lag_probe();
  void watch();
  void watch_loop(detail::unique_lock& lock, std::int64_t now) FERRY_REQUIRES(mutex_);
  void watch_threads(detail::unique_lock& lock, std::int64_t now) FERRY_REQUIRES(mutex_);
  struct captured_stack {
    std::vector<void*> frames;
    std::string note;  // why there are no frames
  };
  struct pending_report {
    slow_callback_report report;
    std::size_t slot = 0;
    captured_stack stack;  // ongoing reports
  };
  // Not analysed: it unlocks and relocks the caller's lock through a reference.
  captured_stack capture(io_thread_slot& slot, detail::unique_lock& lock)
      FERRY_REQUIRES(mutex_) FERRY_NO_THREAD_SAFETY_ANALYSIS;
  void enqueue(slow_callback_report r, std::size_t slot, captured_stack stack)
      FERRY_REQUIRES(mutex_);
  void report_loop();
  void report_stall(std::size_t i, std::int64_t since_ns, detail::unique_lock& lock)
      FERRY_REQUIRES(mutex_);
  void report_stall_ended(std::size_t i, std::int64_t stall_ns) FERRY_REQUIRES(mutex_);

  // Per-thread watchdog state (watchdog thread only).
  struct watch_state {
    std::uint64_t seen = 0;           // handlers at the last change
    std::int64_t progress_ns = 0;     // when the change was seen
    bool reported = false;            // the current stall was reported
    bool suspect = false;             // parked, seen not waiting once: confirm next tick
    std::int64_t stall_start_ns = 0;  // its start, as far as the watchdog knows
  };

  boost::asio::io_context& io_;
  boost::asio::steady_timer timer_;
  const std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point due_;
  cpu_pool* pool_;  // told of every lag measured (may be null)
  latency_histogram lag_;

  const std::int64_t threshold_ns_;
  const bool per_thread_;  // several io threads and a watchdog
  std::function<void(const slow_callback_report&)> report_;
  std::vector<std::unique_ptr<io_thread_slot>> slots_;
  std::vector<watch_state> states_;
  std::deque<std::int64_t> captures_ns_;  // the last captures (rate limit)
  std::thread watchdog_;
  std::thread reporter_;
  mutable detail::mutex mutex_;
  std::condition_variable cv_;                      // wakes the watchdog (stopping_)
  std::condition_variable reporter_cv_;             // wakes the reporter (pending_, stopping_)
  bool stopping_ FERRY_GUARDED_BY(mutex_) = false;  // the watchdog stops
  // the reporter stops once pending_ is empty
  bool reporter_stopping_ FERRY_GUARDED_BY(mutex_) = false;
  std::deque<pending_report> pending_ FERRY_GUARDED_BY(mutex_);
  std::deque<slow_callback_report> recent_ FERRY_GUARDED_BY(mutex_);
  std::atomic<std::int64_t> probe_ran_ns_{0};
  std::atomic<std::uint64_t> slow_callbacks_{0};
  std::atomic<std::int64_t> longest_stall_ns_{0};
};

}  // namespace ferry::detail
