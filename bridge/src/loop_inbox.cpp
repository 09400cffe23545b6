// ferry/bridge/src/loop_inbox.cpp — the fast lane from the cpu_pool back to a runtime's loop.
#include "ferry/bridge/detail/loop_inbox.hpp"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

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

loop_inbox::loop_inbox(boost::asio::io_context& io,
                       std::chrono::nanoseconds spin,
                       std::size_t spin_limit) noexcept
    : io_(io), spin_ns_(spin.count()), spin_limit_(spin_limit), budget_(spin.count()) {}

void loop_inbox::started() noexcept {
  const std::size_t n = in_flight_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (spin_ns_ != 0 && n <= spin_limit_ && state_.load(std::memory_order_relaxed) == idle &&
      state_.exchange(active, std::memory_order_seq_cst) == idle) {
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
  if (state_.load(std::memory_order_seq_cst) == idle &&
      state_.exchange(active, std::memory_order_seq_cst) == idle) {
    wake();
  }
}

// Noexcept: if the spinner cannot be allocated there is no way left to reach the loop.
void loop_inbox::wake() noexcept { boost::asio::post(io_, spinner(this)); }

bool loop_inbox::deliver_some() {
  if (pending_ == nullptr) {
    if (head_.load(std::memory_order_relaxed) == nullptr) return false;
    inbox_node* taken = head_.exchange(nullptr, std::memory_order_acquire);
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
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
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
    const std::size_t in_flight = in_flight_.load(std::memory_order_relaxed);
    if (in_flight == 0 || in_flight > spin_limit_ || (check_clock && now >= deadline)) {
      if (in_flight != 0 && in_flight <= spin_limit_) budget_.unrewarded();
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
  in_flight_.store(0, std::memory_order_relaxed);
}

}  // namespace ferry::detail
