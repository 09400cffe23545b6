// ferry/io/condition.hpp — asyncio.Condition for coroutines on any thread.
//
//   ferry::condition cv;                       // owns its mutex (or: ferry::condition cv{m};)
//   // consumer:                               // producer:
//   auto lock = co_await cv.lock();            auto lock = co_await cv.lock();
//   co_await cv.wait(lock, [&] { return !items.empty(); });
//   take(items);                               items.push_back(x);
//                                              cv.notify_one();
//
// A condition variable over a ferry::mutex. `wait(guard)` releases the guard's mutex and waits
// for a notification, atomically (the waiter is queued before the mutex is released, so a
// notification sent by whoever takes the mutex next cannot be missed); it reacquires the mutex
// before returning. `wait(guard, pred)` loops until `pred()` holds (evaluated with the mutex
// held), which also absorbs spurious-looking wake-ups (a notified waiter that finds the state
// changed again by the time it reacquires the mutex).
//
// The mutex: `condition()` owns a mutex of its own, like asyncio's `Condition(lock=None)`;
// `condition(m)` borrows `m`, for several conditions over one mutex (the mutex must outlive the
// condition). Either way `mutex()` returns it and `lock()` locks it.
//
// Notifying: `notify_one`, `notify(n)` and `notify_all` complete the oldest waiters (FIFO) and
// are remembered by nobody else: a notification with no waiter is lost, as in asyncio. They may
// be called with or without the mutex held (asyncio requires it held; here it is merely the
// usual discipline: change the state the predicate reads under the mutex, then notify).
//
// Thread safety: distinct objects: safe. Shared objects: safe; coroutines on different io
// threads and on pool executors may share one condition.
//
// Resumes on: a waiting coroutine resumes on its own executor (by post). `wait(guard)` always
// suspends; `wait(guard, pred)` does not when `pred()` already holds. A notified waiter queues
// for the mutex (FIFO, behind the mutex's current waiters) and resumes once it owns it.
//
// Cancellation: terminal, partial and total (what the coroutine's filter lets through), while
// the waiter waits for a notification: the waiter leaves the condition's queue, reacquires the
// mutex (that part cannot be cancelled: the guard always holds the lock again when `wait`
// returns or throws), then `wait` throws `boost::system::system_error(operation_aborted)`. A
// cancelled waiter consumes no notification: a `notify_one` sent after the cancellation goes to
// the next waiter. If the notification reached the waiter first, the cancellation is ignored and
// `wait` returns normally; either way exactly one waiter proceeds per notification. Note for
// `cv.wait(lock) || timer`: a notification that reaches the wait just before the timer wins is
// consumed although the race reports the timer; the lock is held either way, so check the
// predicate after a timed-out wait rather than assume nothing happened.
//
// Lifetime: the condition (and a borrowed mutex) must outlive its waiters and their guards. The
// guard passed to `wait` is borrowed until the wait completes and must not be used meanwhile;
// it is empty while the waiter waits and owns the lock again when the wait completes.
// Destroying the condition fails the remaining waiters with operation_aborted: with a borrowed
// mutex they reacquire it first; with an owned mutex (which dies with the condition) their
// guards are left empty. `pred` is copied into the wait. (g++ 12: a predicate that owns
// resources — a lambda capturing a std::string by value — written as a temporary inside the
// `co_await` expression is destroyed twice; name it before the `co_await`.)
//
// Errors: `wait` throws std::invalid_argument when the guard does not hold this condition's
// mutex; otherwise only operation_aborted (cancellation, destruction), and whatever `pred`
// throws (with the lock held).
#pragma once

#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstddef>
#include <exception>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <utility>

#include "ferry/detail/thread_annotations.hpp"
#include "ferry/io/detail/task_registry.hpp"
#include "ferry/io/detail/waiter.hpp"
#include "ferry/io/mutex.hpp"
#include "ferry/io/task.hpp"

namespace ferry {
namespace detail {

/// What completes a condition waiter: a notification (or its cancellation, which fails it and
/// delivers the default value) or the condition's destruction with an owned mutex.
enum class condition_wake : unsigned char { notified, destroyed };

/// Associates the handler's executor and allocator, with the defaults wait_op would use.
template <class Handler>
class condition_handler_base {
 public:
  using executor_type = boost::asio::associated_executor_t<Handler, boost::asio::system_executor>;
  using allocator_type =
      boost::asio::associated_allocator_t<Handler, boost::asio::recycling_allocator<void>>;

  executor_type get_executor() const noexcept {
    return boost::asio::get_associated_executor(handler_, boost::asio::system_executor());
  }
  allocator_type get_allocator() const noexcept {
    return boost::asio::get_associated_allocator(handler_,
                                                 boost::asio::recycling_allocator<void>());
  }

 protected:
  explicit condition_handler_base(Handler&& handler) : handler_(std::move(handler)) {}
  Handler handler_;
};

/// The second step of a wait: the mutex is reacquired; no cancellation slot (on purpose: the
/// reacquisition cannot be cancelled). Invoked on the handler's executor.
template <class Handler>
class condition_relock_handler : public condition_handler_base<Handler> {
 public:
  condition_relock_handler(Handler&& handler,
                           ferry::mutex& m,
                           ferry::mutex::guard& guard,
                           std::exception_ptr wait_error)
      : condition_handler_base<Handler>(std::move(handler)),
        mutex_(&m),
        guard_(&guard),
        wait_error_(std::move(wait_error)) {}

  void operator()(std::exception_ptr lock_error) {
    if (!lock_error) *guard_ = ferry::mutex::guard(*mutex_, std::adopt_lock);
    std::move(this->handler_)(wait_error_ ? std::move(wait_error_) : std::move(lock_error));
  }

 private:
  ferry::mutex* mutex_;
  ferry::mutex::guard* guard_;
  std::exception_ptr wait_error_;
};

/// The first step of a wait: queued on the condition with the caller's cancellation slot; when
/// notified or cancelled, reacquires the mutex and then completes the caller's handler.
/// Invoked on the handler's executor.
template <class Handler>
class condition_wait_handler : public condition_handler_base<Handler> {
 public:
  using cancellation_slot_type = boost::asio::associated_cancellation_slot_t<Handler>;

  condition_wait_handler(Handler&& handler, ferry::mutex& m, ferry::mutex::guard& guard)
      : condition_handler_base<Handler>(std::move(handler)), mutex_(&m), guard_(&guard) {}

  cancellation_slot_type get_cancellation_slot() const noexcept {
    return boost::asio::get_associated_cancellation_slot(this->handler_);
  }

  void operator()(std::exception_ptr error, condition_wake wake) {
    if (wake == condition_wake::destroyed) {  // the owned mutex is gone: nothing to reacquire
      std::move(this->handler_)(operation_aborted());
      return;
    }
    if (mutex_->try_lock()) {  // already on the handler's executor: complete inline
      *guard_ = ferry::mutex::guard(*mutex_, std::adopt_lock);
      std::move(this->handler_)(std::move(error));
      return;
    }
    mutex_->async_lock(condition_relock_handler<Handler>(
        std::move(this->handler_), *mutex_, *guard_, std::move(error)));
  }

 private:
  ferry::mutex* mutex_;
  ferry::mutex::guard* guard_;
};

}  // namespace detail

class condition {
 public:
  /// A condition with a mutex of its own.
  condition() : user_mutex_(&owned_.emplace()) {}

  /// A condition over `m`, which must outlive it.
  explicit condition(ferry::mutex& m) noexcept : user_mutex_(&m) {}

  ~condition() {
    detail::unique_lock lock(mutex_);
    if (owned_) {
      while (auto* w = waiters_.pop_front()) w->grant(detail::condition_wake::destroyed);
    } else {
      waiters_.fail_all(lock, detail::operation_aborted());
    }
  }

  condition(const condition&) = delete;
  condition& operator=(const condition&) = delete;

  /// The mutex the condition's waits release and reacquire.
  ferry::mutex& mutex() noexcept { return *user_mutex_; }

  /// Locks the condition's mutex: `co_await cv.lock()` is `co_await cv.mutex().lock()`.
  task<ferry::mutex::guard> lock() { return user_mutex_->lock(); }

  /// The underlying asynchronous operation, for any completion token. Signature
  /// `void(std::exception_ptr)`. Releases `guard`'s mutex, waits for a notification and
  /// reacquires the mutex (always, also when cancelled) before completing; `guard` is empty
  /// meanwhile and owns the lock again on completion. `guard` is borrowed until then.
  /// Throws std::invalid_argument (before starting) when `guard` does not hold `mutex()`.
  template <class Token = boost::asio::use_awaitable_t<>>
  auto async_wait(ferry::mutex::guard& guard, Token&& token = {}) {
    check(guard);
    return detail::noted_initiate<Token, void(std::exception_ptr)>(
        "condition::wait",
        [this, &guard](auto handler) {
          using wait_handler = detail::condition_wait_handler<decltype(handler)>;
          auto* w = detail::make_waiter<detail::condition_wake>(
              wait_handler(std::move(handler), *user_mutex_, guard), mutex_, &waiters_);
          {
            detail::lock_guard lock(mutex_);
            waiters_.push_back(w);  // queued before the mutex is released: no missed notify
          }
          guard.unlock();
        },
        token);
  }

  /// Releases the guard's mutex, waits for a notification, reacquires the mutex.
  /// Throws operation_aborted when cancelled (with the lock held again).
  task<void> wait(ferry::mutex::guard& guard);

  /// Waits until `pred()` (called with the mutex held) returns true.
  template <class Predicate>
  task<void> wait(ferry::mutex::guard& guard, Predicate pred) {
    check(guard);
    while (!pred()) co_await async_wait(guard, boost::asio::use_awaitable);
  }

  /// Wakes the oldest waiter, if any.
  void notify_one() { notify(1); }

  /// Wakes the `n` oldest waiters (fewer if fewer wait).
  void notify(std::size_t n = 1) {
    detail::lock_guard lock(mutex_);
    for (; n > 0; --n) {
      auto* w = waiters_.pop_front();
      if (w == nullptr) break;
      w->grant(detail::condition_wake::notified);  // posts; safe under the lock
    }
  }

  /// Wakes every waiter.
  void notify_all() { notify(std::numeric_limits<std::size_t>::max()); }

  /// Coroutines waiting for a notification now (a snapshot; not those reacquiring the mutex).
  std::size_t waiting() const {
    detail::lock_guard lock(mutex_);
    return waiters_.size();
  }

 private:
  void check(const ferry::mutex::guard& guard) const {
    if (guard.mutex() != user_mutex_) {
      throw std::invalid_argument(
          guard.owns_lock()
              ? "ferry::condition::wait: the guard holds another mutex than the condition's"
              : "ferry::condition::wait: the guard does not hold the condition's mutex");
    }
  }

  std::optional<ferry::mutex> owned_;
  ferry::mutex* user_mutex_;
  mutable detail::mutex mutex_;
  detail::waiter_list<detail::condition_wake> waiters_ FERRY_GUARDED_BY(mutex_);
};

}  // namespace ferry
