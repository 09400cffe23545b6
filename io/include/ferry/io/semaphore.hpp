// ferry/io/semaphore.hpp — asyncio.Semaphore for coroutines on any thread.
//
//   ferry::semaphore limit{4};
//   auto permit = co_await limit.acquire();   // released when `permit` goes out of scope
//
// Thread safety: distinct objects: safe. Shared objects: safe; coroutines on different io
// threads and on pool executors may share one semaphore.
//
// Fairness: waiters are served in FIFO order. A released permit goes to the oldest waiter
// directly; `try_acquire` and an uncontended `acquire` never overtake a waiter.
//
// Resumes on: a waiting coroutine resumes on its own executor (by post). An `acquire` that finds
// a free permit (and no waiter) completes without suspending.
//
// Cancellation: terminal, partial and total (what the coroutine's filter lets through). A
// cancelled waiter is removed without consuming a permit; `acquire` throws
// `boost::system::system_error(operation_aborted)`. If the permit was granted first, the
// cancellation is ignored and the permit is delivered (never lost).
//
// Lifetime: the semaphore must outlive its waiters; destroying it fails the remaining waiters
// with operation_aborted. A guard must not outlive its semaphore.
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

class semaphore {
 public:
  /// Releases one permit when destroyed (unless moved from or released early).
  class guard {
   public:
    guard() noexcept = default;
    explicit guard(semaphore& s) noexcept : sem_(&s) {}
    guard(guard&& other) noexcept : sem_(std::exchange(other.sem_, nullptr)) {}
    guard& operator=(guard&& other) noexcept {
      if (this != &other) {
        release();
        sem_ = std::exchange(other.sem_, nullptr);
      }
      return *this;
    }
    ~guard() { release(); }

    /// Releases the permit now.
    void release() noexcept {
      if (semaphore* s = std::exchange(sem_, nullptr)) s->release();
    }
    /// Gives up ownership without releasing.
    semaphore* detach() noexcept { return std::exchange(sem_, nullptr); }
    bool owns_permit() const noexcept { return sem_ != nullptr; }
    explicit operator bool() const noexcept { return owns_permit(); }

   private:
    semaphore* sem_ = nullptr;
  };

  /// A semaphore with `permits` initial permits.
  explicit semaphore(std::size_t permits) noexcept : permits_(permits) {}

  ~semaphore() {
    detail::unique_lock lock(mutex_);
    waiters_.fail_all(lock, detail::operation_aborted());
  }

  semaphore(const semaphore&) = delete;
  semaphore& operator=(const semaphore&) = delete;

  /// The underlying asynchronous operation, for any completion token. Signature
  /// `void(std::exception_ptr)`; on success the caller owns a permit and must `release()` it.
  template <class Token = boost::asio::use_awaitable_t<>>
  auto async_acquire(Token&& token = {}) {
    return detail::noted_initiate<Token, void(std::exception_ptr)>(
        "semaphore::acquire",
        [this](auto handler) {
          auto* w = detail::make_waiter<void>(std::move(handler), mutex_, &waiters_);
          detail::unique_lock lock(mutex_);
          if (permits_ > 0 && waiters_.empty()) {
            --permits_;
            lock.unlock();
            w->grant({});
            return;
          }
          waiters_.push_back(w);
        },
        token);
  }

  /// Waits for a permit; the guard releases it. Throws operation_aborted when cancelled.
  task<guard> acquire();

  /// Takes a permit if one is free and nobody waits.
  bool try_acquire() noexcept {
    detail::lock_guard lock(mutex_);
    if (permits_ == 0 || !waiters_.empty()) return false;
    --permits_;
    return true;
  }

  /// Returns `n` permits: each goes to the oldest waiter, or back to the pool of permits.
  void release(std::size_t n = 1) {
    detail::unique_lock lock(mutex_);
    while (n > 0 && !waiters_.empty()) {
      auto* w = waiters_.pop_front();
      --n;
      w->grant({});  // posts; safe under the lock
    }
    permits_ += n;
  }

  /// Free permits now (a snapshot).
  std::size_t available() const {
    detail::lock_guard lock(mutex_);
    return permits_;
  }

  /// Coroutines waiting now (a snapshot).
  std::size_t waiting() const {
    detail::lock_guard lock(mutex_);
    return waiters_.size();
  }

 private:
  mutable detail::mutex mutex_;
  std::size_t permits_ FERRY_GUARDED_BY(mutex_);
  detail::waiter_list<void> waiters_ FERRY_GUARDED_BY(mutex_);
};

}  // namespace ferry
