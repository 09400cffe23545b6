// ferry/io/mutex.hpp — asyncio.Lock for coroutines on any thread.
//
//   ferry::mutex m;
//   {
//     auto lock = co_await m.lock();   // unlocked when `lock` goes out of scope
//     ...                               // may co_await while holding it
//   }
//
// A mutex that suspends the coroutine instead of blocking its thread: the waiting coroutine
// gives its thread back to the loop. It is not recursive, and it is not tied to a thread: the
// owner is whoever holds the guard (or, after `async_lock`, whoever was granted the lock), and
// it may unlock from any thread.
//
// Thread safety: distinct objects: safe. Shared objects: safe; coroutines on different io
// threads and on pool executors may share one mutex.
//
// Fairness: waiters are served in FIFO order. `unlock` hands ownership directly to the oldest
// waiter (the mutex never becomes free in between), so nobody barges in: `try_lock` and an
// uncontended `lock` succeed only when the mutex is free and nobody waits.
//
// Resumes on: a waiting coroutine resumes on its own executor (by post). A `lock` that finds the
// mutex free completes without suspending.
//
// Cancellation: terminal, partial and total (what the coroutine's filter lets through). A
// cancelled waiter is removed from the queue and `lock` throws
// `boost::system::system_error(operation_aborted)`; ownership never passes to it, so the mutex
// is never left locked with no owner. If ownership was handed over first, the cancellation is
// ignored and the lock is delivered: the caller owns it (with `lock()`, as a guard — which, if
// the caller is itself gone, e.g. the losing side of `||`, unlocks at once).
//
// Lifetime: the mutex must outlive its waiters and its guards; destroying it fails the remaining
// waiters with operation_aborted. A completion that its executor drops without running (the
// executor shut down) takes the ownership granted to it with it.
//
// Errors: `lock` throws only on cancellation (or destruction of the mutex); `unlock` of a mutex
// that is not locked throws std::logic_error.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstddef>
#include <mutex>
#include <stdexcept>
#include <utility>

#include "ferry/detail/thread_annotations.hpp"
#include "ferry/io/detail/task_registry.hpp"
#include "ferry/io/detail/waiter.hpp"
#include "ferry/io/task.hpp"

namespace ferry {

class mutex {
 public:
  /// Owns the lock and unlocks it when destroyed (unless empty, moved from or detached).
  /// [[nodiscard]]: `co_await m.lock();` would unlock at once (clang warns; g++ 12 does not).
  class [[nodiscard]] guard {
   public:
    /// An empty guard (owns nothing).
    guard() noexcept = default;
    /// Adopts a lock the caller already owns (from `try_lock` or `async_lock`).
    guard(ferry::mutex& m, std::adopt_lock_t) noexcept : mutex_(&m) {}
    guard(guard&& other) noexcept : mutex_(std::exchange(other.mutex_, nullptr)) {}
    guard& operator=(guard&& other) noexcept {
      if (this != &other) {
        unlock();
        mutex_ = std::exchange(other.mutex_, nullptr);
      }
      return *this;
    }
    ~guard() { unlock(); }

    /// Unlocks now (no-op when empty): the oldest waiter, if any, becomes the owner.
    void unlock() noexcept {
      if (ferry::mutex* m = std::exchange(mutex_, nullptr)) m->unlock_owned();
    }
    /// Gives up ownership without unlocking; the caller must `unlock()` the returned mutex.
    ferry::mutex* detach() noexcept { return std::exchange(mutex_, nullptr); }
    /// The mutex this guard locks, or nullptr when empty.
    ferry::mutex* mutex() const noexcept { return mutex_; }
    bool owns_lock() const noexcept { return mutex_ != nullptr; }
    explicit operator bool() const noexcept { return owns_lock(); }

   private:
    ferry::mutex* mutex_ = nullptr;
  };

  mutex() noexcept = default;

  ~mutex() {
    detail::unique_lock lock(mutex_);
    waiters_.fail_all(lock, detail::operation_aborted());
  }

  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;

  /// The underlying asynchronous operation, for any completion token. Signature
  /// `void(std::exception_ptr)`; on success the caller owns the lock and must `unlock()` it
  /// (or adopt it: `guard(m, std::adopt_lock)`). Completes by post, also when the mutex is free.
  template <class Token = boost::asio::use_awaitable_t<>>
  auto async_lock(Token&& token = {}) {
    return detail::noted_initiate<Token, void(std::exception_ptr)>(
        "mutex::lock",
        [this](auto handler) {
          auto* w = detail::make_waiter<void>(std::move(handler), mutex_, &waiters_);
          detail::unique_lock lock(mutex_);
          if (!locked_) {  // free implies nobody waits: unlock hands over to a waiter
            locked_ = true;
            lock.unlock();
            w->grant({});
            return;
          }
          waiters_.push_back(w);
        },
        token);
  }

  /// Waits for the lock; the guard unlocks it. Throws operation_aborted when cancelled.
  task<guard> lock();

  /// Locks if the mutex is free (then nobody waits either); the caller must `unlock()`.
  bool try_lock() noexcept {
    detail::lock_guard lock(mutex_);
    if (locked_) return false;
    locked_ = true;
    return true;
  }

  /// Unlocks: ownership goes to the oldest waiter, or the mutex becomes free. Any thread may
  /// call it on behalf of the owner. Throws std::logic_error when the mutex is not locked.
  void unlock() {
    detail::lock_guard lock(mutex_);
    if (!locked_) throw std::logic_error("ferry::mutex::unlock: the mutex is not locked");
    hand_over();
  }

  /// Whether the mutex is locked now (a snapshot).
  bool locked() const {
    detail::lock_guard lock(mutex_);
    return locked_;
  }

  /// Coroutines waiting now (a snapshot).
  std::size_t waiting() const {
    detail::lock_guard lock(mutex_);
    return waiters_.size();
  }

 private:
  // A guard always owns the lock it unlocks.
  void unlock_owned() noexcept {
    detail::lock_guard lock(mutex_);
    hand_over();
  }

  // Under `mutex_`, with the mutex locked.
  void hand_over() noexcept FERRY_REQUIRES(mutex_) {
    if (auto* w = waiters_.pop_front()) {
      w->grant({});  // stays locked: the waiter owns it now (grant posts; safe under the lock)
    } else {
      locked_ = false;
    }
  }

  mutable detail::mutex mutex_;
  bool locked_ FERRY_GUARDED_BY(mutex_) = false;
  detail::waiter_list<void> waiters_ FERRY_GUARDED_BY(mutex_);
};

}  // namespace ferry
