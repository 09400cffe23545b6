// ferry/io/barrier.hpp — asyncio.Barrier for coroutines on any thread.
//
//   ferry::barrier ready{3};
//   std::size_t index = co_await ready.arrive_and_wait();  // in each of 3 coroutines
//
// `parties` coroutines meet: each `arrive_and_wait` waits until `parties` arrivals have been
// counted, then all of them continue. The barrier is cyclic: the arrival that completes a phase
// (trips the barrier) starts the next one with a count of zero, so the same barrier serves
// round after round.
//
// Result: like asyncio.Barrier.wait, each of the `parties` arrivals of a phase gets a distinct
// index in [0, parties): the waiters in their arrival order get 0, 1, ..., and the arrival that
// trips the barrier gets `parties - 1` (so `index == parties - 1` elects one leader per phase).
// Indices are given when the barrier trips, so a cancelled arrival leaves no gap.
//
// Thread safety: distinct objects: safe. Shared objects: safe; coroutines on different io
// threads and on pool executors may share one barrier.
//
// Resumes on: a waiting coroutine resumes on its own executor (by post). The arrival that trips
// the barrier completes without suspending; the others are completed in FIFO order.
//
// Cancellation: terminal, partial and total (what the coroutine's filter lets through). A waiter
// cancelled before the barrier trips is removed and no longer counts as arrived (the phase then
// needs another arrival); `arrive_and_wait` throws
// `boost::system::system_error(operation_aborted)`. If the barrier tripped first, the
// cancellation is ignored and the index is delivered (with `arrive_and_wait() || timer`, a trip
// just before the timer wins counted the arrival although the race reports the timer).
//
// Lifetime: the barrier must outlive its waiters; destroying it fails the remaining waiters with
// operation_aborted.
//
// Errors: the constructor throws std::invalid_argument for zero parties; `arrive_and_wait`
// throws only on cancellation (or destruction of the barrier).
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <utility>

#include "ferry/detail/thread_annotations.hpp"
#include "ferry/io/detail/task_registry.hpp"
#include "ferry/io/detail/waiter.hpp"
#include "ferry/io/task.hpp"

namespace ferry {

class barrier {
 public:
  /// A barrier for `parties` coroutines. Throws std::invalid_argument when `parties` is 0.
  explicit barrier(std::size_t parties) : parties_(parties) {
    if (parties == 0) throw std::invalid_argument("ferry::barrier: parties must be at least 1");
  }

  ~barrier() {
    detail::unique_lock lock(mutex_);
    waiters_.fail_all(lock, detail::operation_aborted());
  }

  barrier(const barrier&) = delete;
  barrier& operator=(const barrier&) = delete;

  /// The underlying asynchronous operation, for any completion token. Signature
  /// `void(std::exception_ptr, std::size_t)`, the index described in the file comment.
  /// Completes by post, also for the arrival that trips the barrier.
  template <class Token = boost::asio::use_awaitable_t<>>
  auto async_arrive_and_wait(Token&& token = {}) {
    return detail::noted_initiate<Token, void(std::exception_ptr, std::size_t)>(
        "barrier::arrive_and_wait",
        [this](auto handler) {
          auto* w = detail::make_waiter<std::size_t>(
              std::move(handler), mutex_, &waiters_, {}, &barrier::on_cancel, this);
          detail::unique_lock lock(mutex_);
          if (arrived_ + 1 == parties_) {
            std::size_t index = trip();
            lock.unlock();
            w->grant(index);
            return;
          }
          waiters_.push_back(w);
          ++arrived_;
        },
        token);
  }

  /// Arrives and waits for the phase to complete; returns this arrival's index.
  /// Throws operation_aborted when cancelled.
  task<std::size_t> arrive_and_wait();

  /// The number of arrivals that trips the barrier.
  std::size_t parties() const noexcept { return parties_; }

  /// Arrivals waiting in the current phase (a snapshot).
  std::size_t waiting() const {
    detail::lock_guard lock(mutex_);
    return arrived_;
  }

  /// How many times the barrier has tripped (a snapshot).
  std::uint64_t phase() const {
    detail::lock_guard lock(mutex_);
    return phase_;
  }

 private:
  // A cancelled waiter, already unlinked under `mutex_`, no longer counts as arrived. Not
  // analysed: wait_op::cancel calls it through a pointer, with the lock held.
  static void on_cancel(void* self) noexcept FERRY_NO_THREAD_SAFETY_ANALYSIS {
    --static_cast<barrier*>(self)->arrived_;
  }

  // The fast path: trips the barrier when the caller's arrival is the last one of the phase.
  std::optional<std::size_t> try_trip() {
    detail::lock_guard lock(mutex_);
    if (arrived_ + 1 != parties_) return std::nullopt;
    return trip();
  }

  // Under `mutex_`, for the arrival that completes the phase: releases the waiters in FIFO
  // order with indices 0, 1, ... and returns the tripping arrival's index.
  std::size_t trip() FERRY_REQUIRES(mutex_) {
    std::size_t index = 0;
    while (auto* w = waiters_.pop_front()) w->grant(index++);  // posts; safe under the lock
    arrived_ = 0;
    ++phase_;
    return index;
  }

  const std::size_t parties_;
  mutable detail::mutex mutex_;
  // waiters of the current phase (the cancel hook keeps it exact)
  std::size_t arrived_ FERRY_GUARDED_BY(mutex_) = 0;
  std::uint64_t phase_ FERRY_GUARDED_BY(mutex_) = 0;
  detail::waiter_list<std::size_t> waiters_ FERRY_GUARDED_BY(mutex_);
};

}  // namespace ferry
