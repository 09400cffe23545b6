// ferry/io/rate_limiter.hpp — a token bucket for coroutines on any thread.
//
//   ferry::rate_limiter limit{100.0, 10};   // 100 tokens per second, bursts of up to 10
//   co_await limit.acquire();               // one token; waits while the bucket is empty
//   co_await limit.acquire(4);              // four at once
//
// The bucket holds at most `burst` tokens and starts full; it refills continuously at
// `rate_per_second`. `acquire(n)` takes n tokens (1 <= n <= burst), waiting until they are there.
//
// Thread safety: distinct objects: safe. Shared objects: safe; coroutines on different io
// threads and on pool executors may share one limiter (one std::mutex guards it).
//
// Fairness: waiters are served in FIFO order, whatever their n: a large request is not starved by
// small ones, and `try_acquire` and an uncontended `acquire` never overtake a waiter.
//
// How waiting works (no executor in the constructor): the oldest waiter, the *head*, sleeps on a
// timer of its own executor until its tokens are there, takes them and hands the duty to the next
// waiter; the others wait in a queue without a timer. One timer is armed at a time.
//
// Resumes on: a waiting coroutine resumes on its own executor (by post, or from its own timer's
// completion). An `acquire` that finds the tokens (and no waiter) completes without suspending.
// `async_acquire` with a handler that has no associated executor runs its timer on Asio's
// system_executor.
//
// Cancellation: terminal, partial and total (for a coroutine: what its filter lets through;
// Asio's default is terminal). A cancelled waiter is removed without consuming tokens; if it was
// the head, the duty passes to the next waiter at once. The wait completes with
// `boost::system::system_error(operation_aborted)`. Tokens taken before the cancellation arrived
// are delivered (the acquire succeeds): they are never lost.
//
// Clock: `basic_rate_limiter<Clock, WaitTraits>` reads `Clock::now()` for the refills and sleeps
// on `asio::basic_waitable_timer<Clock, WaitTraits>`; `rate_limiter` uses
// std::chrono::steady_clock. Tests may substitute a manual clock (with wait traits that make the
// timer poll it).
//
// Accounting: tokens are kept as a double; refills are computed from elapsed Clock time, so a
// waiter's sleep is rounded up to the next clock tick and the limiter never grants early.
//
// Lifetime: operations share the bucket with the limiter, so the limiter may be destroyed while
// some are pending: queued waiters then fail with operation_aborted at once, and a head sleeping
// on its timer is woken (through its executor) and fails with operation_aborted. The waiters'
// executors must outlive their waits, as for any Asio operation.
//
// Errors: std::invalid_argument for `rate_per_second` <= 0 (or not finite), `burst` == 0, and
// `n` == 0 or `n` > burst; operation_aborted on cancellation and destruction.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/wait_traits.hpp>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "ferry/detail/thread_annotations.hpp"
#include "ferry/io/detail/rate_limiter_op.hpp"
#include "ferry/io/detail/task_registry.hpp"
#include "ferry/io/detail/waiter.hpp"
#include "ferry/io/task.hpp"

namespace ferry {

template <class Clock = std::chrono::steady_clock,
          class WaitTraits = boost::asio::wait_traits<Clock>>
class basic_rate_limiter {
 public:
  using clock_type = Clock;

  /// A full bucket of `burst` tokens, refilled at `rate_per_second`.
  basic_rate_limiter(double rate_per_second, std::size_t burst)
      : bucket_(make_bucket(rate_per_second, burst)), burst_(burst) {}

  ~basic_rate_limiter() {
    {
      detail::unique_lock lock(bucket_->mutex);
      bucket_->destroyed = true;
      bucket_->waiters.fail_all(lock, detail::operation_aborted());
    }
    detail::lock_guard lock(bucket_->mutex);
    if (bucket_->head != nullptr) bucket_->head->wake_locked();
  }

  basic_rate_limiter(const basic_rate_limiter&) = delete;
  basic_rate_limiter& operator=(const basic_rate_limiter&) = delete;

  /// Takes `n` tokens, waiting until they are there. Asynchronous operation for any completion
  /// token, signature `void(std::exception_ptr)`. Throws std::invalid_argument at once for
  /// n == 0 or n > burst.
  template <class Token = boost::asio::use_awaitable_t<>>
  auto async_acquire(std::size_t n, Token&& token = {}) {
    check(n);
    return detail::noted_initiate<Token, void(std::exception_ptr)>(
        "rate_limiter::acquire",
        [bucket = bucket_, n](auto handler) {
          using op = detail::rate_acquire_op<Clock, WaitTraits, decltype(handler)>;
          op::start(std::move(handler), bucket, n);
        },
        token);
  }

  /// Takes `n` tokens (1 by default), waiting until they are there. Throws operation_aborted
  /// when cancelled, std::invalid_argument for n == 0 or n > burst.
  task<void> acquire(std::size_t n = 1) {
    if (try_acquire(n)) co_return;
    co_await async_acquire(n, boost::asio::use_awaitable);
  }

  /// Takes `n` tokens if they are there now and nobody waits.
  bool try_acquire(std::size_t n = 1) {
    check(n);
    detail::lock_guard lock(bucket_->mutex);
    return bucket_->head == nullptr && bucket_->waiters.empty() && bucket_->try_take_locked(n);
  }

  /// Tokens in the bucket now (a snapshot; fractional while refilling).
  double available() const {
    detail::lock_guard lock(bucket_->mutex);
    return bucket_->available_locked();
  }

  /// Acquires waiting now, the head included (a snapshot).
  std::size_t waiting() const {
    detail::lock_guard lock(bucket_->mutex);
    return bucket_->waiters.size() + (bucket_->head != nullptr ? 1 : 0);
  }

  double rate() const noexcept { return bucket_->rate(); }
  std::size_t burst() const noexcept { return burst_; }

 private:
  static std::shared_ptr<detail::rate_bucket<Clock>> make_bucket(double rate, std::size_t burst) {
    if (!(rate > 0.0) || !std::isfinite(rate)) {
      throw std::invalid_argument(
          "ferry::rate_limiter: rate_per_second must be positive and finite");
    }
    if (burst == 0) throw std::invalid_argument("ferry::rate_limiter: burst must be at least 1");
    return std::make_shared<detail::rate_bucket<Clock>>(rate, burst);
  }

  void check(std::size_t n) const {
    if (n == 0 || n > burst_) {
      throw std::invalid_argument("ferry::rate_limiter: cannot acquire " + std::to_string(n) +
                                  " tokens with a burst of " + std::to_string(burst_) +
                                  " (need 1 <= n <= burst)");
    }
  }

  std::shared_ptr<detail::rate_bucket<Clock>> bucket_;
  const std::size_t burst_;
};

/// The token bucket on std::chrono::steady_clock.
using rate_limiter = basic_rate_limiter<>;

}  // namespace ferry
