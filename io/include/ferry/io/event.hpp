// ferry/io/event.hpp — asyncio.Event for coroutines on any thread.
//
//   ferry::event ready;
//   // one side:                      // the other side:
//   co_await ready.wait();            ready.set();
//
// A flag that coroutines wait on: `set()` raises it and wakes every coroutine waiting for it;
// `clear()` lowers it; `wait()` returns at once while it is raised. A waiter woken by `set()`
// completes even if `clear()` follows before it resumes (asyncio's semantics: the wake-up is
// not taken back).
//
// Thread safety: distinct objects: safe. Shared objects: safe; any thread may set, clear or
// wait, and coroutines on different io threads and on pool executors may share one event.
//
// Fairness: `set()` completes the waiters in the order they started waiting (FIFO order of
// posting; when they resume is up to their executors).
//
// Resumes on: a waiting coroutine resumes on its own executor (by post). A `wait` that finds the
// event set completes without suspending.
//
// Cancellation: terminal, partial and total (what the coroutine's filter lets through). A
// cancelled waiter is removed and `wait` throws `boost::system::system_error(operation_aborted)`.
// If `set()` completed it first, the cancellation is ignored and `wait` returns normally.
//
// Lifetime: the event must outlive its waiters; destroying it fails the remaining waiters with
// operation_aborted.
//
// Errors: `wait` throws only on cancellation (or destruction of the event).
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstddef>
#include <mutex>
#include <utility>

#include "ferry/detail/thread_annotations.hpp"
#include "ferry/io/detail/task_registry.hpp"
#include "ferry/io/detail/waiter.hpp"
#include "ferry/io/task.hpp"

namespace ferry {

class event {
 public:
  /// A cleared event.
  event() noexcept = default;

  ~event() {
    detail::unique_lock lock(mutex_);
    waiters_.fail_all(lock, detail::operation_aborted());
  }

  event(const event&) = delete;
  event& operator=(const event&) = delete;

  /// The underlying asynchronous operation, for any completion token. Signature
  /// `void(std::exception_ptr)`. Completes by post, also when the event is already set.
  template <class Token = boost::asio::use_awaitable_t<>>
  auto async_wait(Token&& token = {}) {
    return detail::noted_initiate<Token, void(std::exception_ptr)>(
        "event::wait",
        [this](auto handler) {
          auto* w = detail::make_waiter<void>(std::move(handler), mutex_, &waiters_);
          detail::unique_lock lock(mutex_);
          if (set_) {
            lock.unlock();
            w->grant({});
            return;
          }
          waiters_.push_back(w);
        },
        token);
  }

  /// Waits until the event is set. Throws operation_aborted when cancelled.
  task<void> wait();

  /// Sets the event and wakes every current waiter (no-op for the flag when already set).
  void set() {
    detail::lock_guard lock(mutex_);
    set_ = true;
    while (auto* w = waiters_.pop_front()) w->grant({});  // posts; safe under the lock
  }

  /// Clears the event: later `wait`s suspend until the next `set`.
  void clear() {
    detail::lock_guard lock(mutex_);
    set_ = false;
  }

  /// Whether the event is set now (a snapshot).
  bool is_set() const {
    detail::lock_guard lock(mutex_);
    return set_;
  }

  /// Coroutines waiting now (a snapshot).
  std::size_t waiting() const {
    detail::lock_guard lock(mutex_);
    return waiters_.size();
  }

 private:
  mutable detail::mutex mutex_;
  bool set_ FERRY_GUARDED_BY(mutex_) = false;
  detail::waiter_list<void> waiters_ FERRY_GUARDED_BY(mutex_);
};

}  // namespace ferry
