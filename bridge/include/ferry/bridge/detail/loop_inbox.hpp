// ferry/bridge/detail/loop_inbox.hpp — the fast lane from the cpu_pool back to a runtime's loop.
//
// An offload started on a runtime's io thread, whose completion handler runs on that runtime's
// io_context (its own executor, a strand of it, or another wrapper of it), and whose function
// runs on that runtime's cpu_pool, completes through the runtime's inbox instead of
// `asio::post`:
//
//  - the pool thread pushes the finished operation onto a lock-free stack (one CAS) and wakes
//    the loop only when it is asleep (one post per sleep, not per completion);
//  - on the loop, a handler — the spinner — takes every finished operation at once, restores
//    their order and delivers them: a plain io_context handler resumes inline, any other
//    executor gets the completion dispatched (an idle strand runs it inline, a strand busy on
//    another io thread queues it in order); while offloads are in
//    flight it keeps polling the stack for a bounded, adaptive time before it lets the loop
//    sleep: a completion that lands during the spin is picked up at once instead of after a
//    sleeping thread's wake-up (docs/performance.md has both figures);
//  - while the pool is saturated (more offloads unfinished than it has workers: each worker
//    has its next job queued), the spinner collects completions in batches instead: after a
//    delivery it lets the loop sleep for at most `batch_window` without being woken by pushes
//    (a timer ends the window), so one wake-up of the loop delivers every completion of the
//    window instead of one each. Sockets and timers still wake the loop at once; a push that
//    leaves the pool about to run dry (no job queued) ends the window early. A completion
//    waits at most `batch_window` longer, behind a queue of offloads that takes longer still.
//
// The spinner never holds the loop for long: it returns to the loop (posting itself again)
// every `slice`, so timers, sockets and other handlers wait at most that long, and it stops
// spinning when nothing is in flight, when more is in flight than the pool has workers (then
// completions arrive back to back and a sleeping loop wakes to a batch), or the budget (at most
// `spin`, halved each time a spin ends empty-handed, doubled back each time one is rewarded) is
// spent.
//
// Thread safety: `push` from any thread; `started` from any io thread of the runtime; the
// spinner's state (`pending_`, `budget_`, the window's timer) belongs to the one spinner that
// may exist at a time (`state_` active), on whichever io thread runs it; the timer is armed only
// by a spinner holding `arming_`, so a spinner started on another io thread while the previous
// one is still arming does not touch it; `discard` runs once the loop and the pools have
// stopped.
//
// Memory ordering: a push is a release CAS on the stack's head; the spinner takes the stack
// with an acquire exchange, so everything the pool thread wrote before the push (the result) is
// visible to the delivery. Whether the loop needs a wake-up is decided Dekker-style: the pusher
// writes the head then reads `state_`, the spinner writes `state_` then reads the head, both
// seq_cst, so at least one of them sees the other and no completion is left without a spinner.
// A window (`state_` deferred) always has a timer armed that ends it; its handler and an early
// push race for the one transition deferred -> active (a CAS), and whoever wins runs the one
// spinner.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "ferry/core/detail/spin.hpp"

namespace boost::asio {
class io_context;
}

namespace ferry::detail {

/// What the inbox needs of an operation: a link, and how to deliver (or destroy) it.
struct inbox_node {
  using deliver_fn = void (*)(inbox_node*, bool invoke);
  deliver_fn deliver_ = nullptr;
  inbox_node* inbox_next_ = nullptr;
};

class loop_inbox {
 public:
  /// `spin_limit`: the loop spins only while at most this many operations are in flight (the
  /// runtime's: its pool's worker count, and one less than the cores the process may use —
  /// beyond it the workers are saturated, completions arrive back to back, and a sleeping loop
  /// is woken once per batch instead of taking a core from the workers). `workers`: the pool's;
  /// with more operations unfinished than this, completions are delivered in batches at most
  /// `batch_window` apart (0: each push wakes a sleeping loop).
  loop_inbox(boost::asio::io_context& io,
             std::chrono::nanoseconds spin,
             std::size_t spin_limit,
             std::size_t workers,
             std::chrono::nanoseconds batch_window);
  loop_inbox(const loop_inbox&) = delete;
  loop_inbox& operator=(const loop_inbox&) = delete;
  ~loop_inbox();

  /// On an io thread of the runtime: an operation that will complete through `push` started.
  void started() noexcept;

  /// Any thread: the operation is finished; it will be delivered on the loop. The caller must
  /// not touch `node` afterwards.
  void push(inbox_node* node) noexcept;

  /// After the loop and the pools have stopped: destroys (without invoking) what is left.
  void discard() noexcept;

  /// Counters for runtime::stats (relaxed reads): operations delivered, the takes of the inbox
  /// that delivered them, and the batch windows opened.
  std::uint64_t delivered() const noexcept { return delivered_.load(std::memory_order_relaxed); }
  std::uint64_t batches() const noexcept { return batches_.load(std::memory_order_relaxed); }
  std::uint64_t windows() const noexcept { return windows_.load(std::memory_order_relaxed); }

 private:
  class spinner;
  class window;
  // idle: the loop may sleep, a push posts a spinner. active: a spinner runs or is posted.
  // deferred: a batch window is open, its timer armed; only a push that leaves the pool about
  // to run dry posts a spinner.
  enum : unsigned char { idle, active, deferred };

  void wake() noexcept;  // post a spinner (state_ just went to active)
  void run_spinner();    // the spinner's body, on the loop
  bool deliver_some();   // delivers what is there; false when there was nothing
  bool open_window();    // spinner: defer the next delivery; false if it cannot
  void window_ended();   // the window's timer fired, on the loop
  std::size_t in_flight() const noexcept;
  // At most one unfinished operation per worker once `pushed` have been pushed: no job is
  // queued behind the running ones, so the pool is about to run dry.
  bool none_queued(std::uint64_t pushed) const noexcept;

  boost::asio::io_context& io_;
  const std::int64_t spin_ns_;
  const std::size_t spin_limit_;
  const std::size_t workers_;
  const std::int64_t window_ns_;
  spin_budget budget_;              // the spinner's
  bool has_delivered_ = false;      // the spinner's: it delivered since the loop last slept
  inbox_node* pending_ = nullptr;   // loop only: taken from the stack, in order, undelivered
  std::unique_ptr<window> window_;  // the batch window's timer (none when batch_window is 0)
  alignas(64) std::atomic<inbox_node*> head_{nullptr};
  std::atomic<std::uint64_t> pushed_{0};  // beside head_: a push writes both
  alignas(64) std::atomic<unsigned char> state_{idle};
  std::atomic<bool> arming_{false};  // a spinner is arming the window's timer
  alignas(64) std::atomic<std::uint64_t> started_{0};
  std::atomic<std::uint64_t> delivered_{0};  // written by the spinner only
  std::atomic<std::uint64_t> batches_{0};    // written by the spinner only
  std::atomic<std::uint64_t> windows_{0};    // written by the spinner only
};

}  // namespace ferry::detail
