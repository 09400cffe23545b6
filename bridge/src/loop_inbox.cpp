// ferry/bridge/src/loop_inbox.cpp — the fast lane from the cpu_pool back to a runtime's loop.
#include "ferry/bridge/detail/loop_inbox.hpp"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <utility>

#include "ferry/core/detail/spin.hpp"

namespace ferry::detail {
namespace {

// The spinner gives the loop back at least this often.
constexpr std::int64_t slice_ns = 50'000;

}  // namespace

class loop_inbox::spinner {
 public:
  explicit spinner(loop_inbox* inbox) noexcept : inbox_(inbox) {}
  void operator()() const { inbox_->run_spinner(); }

 private:
  loop_inbox* inbox_;
};

// The batch window's timer. Its handler holds the inbox, which outlives every handler of the
// loop (the runtime destroys it after the loop has stopped; a wait still pending then is
// destroyed with the io_context, never invoked).
class loop_inbox::window {
 public:
  explicit window(boost::asio::io_context& io) : timer_(io) {}

  void arm(loop_inbox* inbox, std::chrono::nanoseconds after) {
    timer_.expires_after(after);  // cancels the previous wait, if it has not fired yet
    timer_.async_wait([inbox](const boost::system::error_code& ec) {
      if (!ec) inbox->window_ended();
    });
  }

 private:
  boost::asio::steady_timer timer_;
};

loop_inbox::loop_inbox(boost::asio::io_context& io,
                       std::chrono::nanoseconds spin,
                       std::size_t spin_limit,
                       std::size_t workers,
                       std::chrono::nanoseconds batch_window)
    : io_(io),
      spin_ns_(spin.count()),
      spin_limit_(spin_limit),
      workers_(workers),
      window_ns_(batch_window.count()),
      budget_(spin.count()),
      window_(batch_window.count() != 0 ? std::make_unique<window>(io) : nullptr) {}

loop_inbox::~loop_inbox() = default;

std::size_t loop_inbox::in_flight() const noexcept {
  // With several io threads the two counts may be read across another thread's delivery.
  const std::uint64_t delivered = delivered_.load(std::memory_order_relaxed);
  const std::uint64_t started = started_.load(std::memory_order_relaxed);
  return started > delivered ? static_cast<std::size_t>(started - delivered) : 0;
}

bool loop_inbox::none_queued(std::uint64_t pushed) const noexcept {
  // Signed: the two counts may be read across other threads' pushes.
  const std::uint64_t unfinished = started_.load(std::memory_order_relaxed) - pushed;
  return static_cast<std::int64_t>(unfinished) <= static_cast<std::int64_t>(workers_);
}

void loop_inbox::started() noexcept {
  started_.fetch_add(1, std::memory_order_relaxed);
  if (spin_ns_ != 0 && state_.load(std::memory_order_relaxed) == idle &&
      in_flight() <= spin_limit_ && state_.exchange(active, std::memory_order_seq_cst) == idle) {
    wake();
  }
}

void loop_inbox::push(inbox_node* node) noexcept {
  inbox_node* head = head_.load(std::memory_order_relaxed);
  do {
    node->inbox_next_ = head;
  } while (!head_.compare_exchange_weak(
      head, node, std::memory_order_seq_cst, std::memory_order_relaxed));
  // `node` may be delivered and freed from here on; only the inbox itself is touched.
  const std::uint64_t pushed = pushed_.fetch_add(1, std::memory_order_relaxed) + 1;
  const unsigned char state = state_.load(std::memory_order_seq_cst);
  if (state == idle) {
    if (state_.exchange(active, std::memory_order_seq_cst) == idle) wake();
  } else if (state == deferred) {
    // A window is open. End it early when no job is left queued behind the ones running: the
    // workers are about to run dry, and the loop has completions whose coroutines will submit
    // more. (The count is a snapshot; a stale one only ends a window early or late, and the
    // window's timer ends it anyway.)
    unsigned char expected = deferred;
    if (none_queued(pushed) &&
        state_.compare_exchange_strong(expected, active, std::memory_order_seq_cst)) {
      wake();
    }
  }
}

bool loop_inbox::open_window() {
  if (window_ == nullptr) return false;
  // Worth it only while the pool stays busy without the loop: more unfinished than workers.
  if (none_queued(pushed_.load(std::memory_order_relaxed))) return false;
  // A spinner that an early push started on another io thread while the previous spinner is
  // still arming the timer must not touch it: it lets the loop sleep instead.
  if (arming_.exchange(true, std::memory_order_acquire)) return false;
  state_.store(deferred, std::memory_order_seq_cst);
  try {
    window_->arm(this, std::chrono::nanoseconds(window_ns_));
  } catch (...) {
    // No timer (out of memory), no window. If a push has already ended it, that push's
    // spinner serves the inbox; otherwise this one goes on as if no window had been tried.
    arming_.store(false, std::memory_order_release);
    return state_.exchange(active, std::memory_order_seq_cst) != deferred;
  }
  windows_.store(windows_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  arming_.store(false, std::memory_order_release);
  return true;
}

void loop_inbox::window_ended() {
  unsigned char expected = deferred;
  if (state_.compare_exchange_strong(expected, active, std::memory_order_seq_cst)) run_spinner();
}

// Noexcept: if the spinner cannot be allocated there is no way left to reach the loop.
void loop_inbox::wake() noexcept { boost::asio::post(io_, spinner(this)); }

bool loop_inbox::deliver_some() {
  if (pending_ == nullptr) {
    if (head_.load(std::memory_order_relaxed) == nullptr) return false;
    inbox_node* taken = head_.exchange(nullptr, std::memory_order_acquire);
    batches_.store(batches_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    // The stack holds the newest first: reverse it into completion order.
    inbox_node* ordered = nullptr;
    while (taken != nullptr) {
      inbox_node* next = taken->inbox_next_;
      taken->inbox_next_ = ordered;
      ordered = taken;
      taken = next;
    }
    pending_ = ordered;
  }
  // pending_ is advanced before each delivery: if one throws (a plain callback handler may),
  // the rest stay queued for the next spinner.
  while (pending_ != nullptr) {
    inbox_node* node = pending_;
    pending_ = node->inbox_next_;
    delivered_.store(delivered_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    node->deliver_(node, /*invoke=*/true);
  }
  return true;
}

void loop_inbox::run_spinner() {
  // If a delivery throws, the exception leaves the loop's run() as Asio's own handlers' do (the
  // io thread reports it and runs the loop again: runtime.hpp, Errors); a new spinner keeps the
  // inbox served (state_ stays active).
  struct on_throw {
    loop_inbox* self;
    bool armed = true;
    ~on_throw() {
      if (armed) self->wake();
    }
  } guard{this};

  std::int64_t now = now_ns();
  const std::int64_t slice_end = now + slice_ns;
  std::int64_t deadline = now + budget_.ns();
  // With spin = 0 the clock is read on every check: the spin ends at the first.
  spin_pacer pace(now, spin_ns_ == 0 ? 1 : 16);
  for (;;) {
    if (deliver_some()) {
      has_delivered_ = true;
      now = now_ns();
      budget_.rewarded();  // spin longer next time (up to spin_ns_)
      deadline = now + budget_.ns();
      pace.progressed(now);
      if (now >= slice_end) break;  // give the loop back, keep spinning after it
      continue;
    }
    const bool check_clock = pace.tick(now);
    // Spin only while few offloads are in flight (the latency regime). With more in flight
    // than the pool has workers, completions keep coming: sleeping lets the workers have the
    // cores, and the first push wakes the loop to a whole batch.
    const std::size_t in_flight = this->in_flight();
    if (in_flight == 0 || in_flight > spin_limit_ || (check_clock && now >= deadline)) {
      if (in_flight != 0 && in_flight <= spin_limit_) budget_.unrewarded();
      // The pool is saturated and this spinner delivered (in this run, or in the runs before
      // it that gave the loop back after a slice): collect the next completions for one
      // wake-up instead of one each (see loop_inbox.hpp). A spinner that found nothing lets
      // the loop sleep until the next push.
      // (Reset before open_window publishes the window: from then on another io thread may
      // run the next spinner.)
      const bool delivered = std::exchange(has_delivered_, false);
      if (delivered && in_flight > spin_limit_ && open_window()) {
        guard.armed = false;
        return;
      }
      // Let the loop sleep, unless a push raced with this decision (see Memory ordering).
      state_.store(idle, std::memory_order_seq_cst);
      if (head_.load(std::memory_order_seq_cst) == nullptr ||
          state_.exchange(active, std::memory_order_seq_cst) != idle) {
        guard.armed = false;
        return;
      }
      if (!check_clock) now = now_ns();
      deadline = now + budget_.ns();  // active again: deliver what raced in
      continue;
    }
    if (!check_clock) continue;
    if (now >= slice_end) break;
    pace.rest(now);  // see spin.hpp: the thread we wait for may want this core
  }
  // The slice is over with offloads still in flight: let the loop run what is ready, then spin
  // again (state_ stays active, so nobody else posts a spinner).
  guard.armed = false;
  wake();
}

void loop_inbox::discard() noexcept {
  inbox_node* rest = head_.exchange(nullptr, std::memory_order_acquire);
  while (pending_ != nullptr) {
    inbox_node* node = pending_;
    pending_ = node->inbox_next_;
    node->deliver_(node, /*invoke=*/false);
  }
  while (rest != nullptr) {
    inbox_node* node = rest;
    rest = node->inbox_next_;
    node->deliver_(node, /*invoke=*/false);
  }
  delivered_.store(started_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  pushed_.store(started_.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

}  // namespace ferry::detail
