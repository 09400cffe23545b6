// ferry/io/detail/rate_limiter_op.hpp — the token bucket and the acquire operation of
// ferry::basic_rate_limiter.
//
// The bucket (shared state, guarded by its mutex) holds the tokens, a FIFO of queued waiters
// (detail::waiter_list) and the *head*: the one waiter on duty. There is no executor in the
// bucket: the head sleeps on a timer of its own handler's executor until enough tokens have
// accumulated, takes them, and hands the duty to the next queued waiter (a grant). So exactly one
// timer is armed at a time whatever the number of waiters.
//
// An acquire operation goes through two phases:
//  1. queued: a detail::wait_op in the bucket's list. Its grant says either "your tokens are
//     taken" (the fast path, no queue and enough tokens) or "you are the head now".
//  2. head: loops { lock; take the tokens or arm the timer for the time they need; } and, when
//     done (tokens taken, cancelled, bucket destroyed, abandoned), resigns: the duty goes to the
//     oldest queued waiter, or the bucket has no head.
//
// Cancellation: the user's cancellation slot gets one handler for the whole operation. It records
// the request and forwards it to whatever the operation waits on now (an inner signal bound to
// the wait_op in phase 1 and to the timer in phase 2). Recording closes the window between a
// "you are the head" grant and the start of phase 2: such a head resigns without taking tokens.
// A "tokens taken" grant stands (never lost), as in every waiter.hpp primitive.
//
// Lifetime: the operations hold the bucket by shared_ptr, so the limiter may be destroyed before
// them. Its destructor fails the queued waiters and, if a head sleeps, posts a wake-up to the
// head's executor which cancels its timer under the bucket's mutex (the head touches its timer
// only under that mutex while it is the head, so this is safe on any executor). If the handler of
// a phase is destroyed without being invoked (its execution context shut down), the operation is
// destroyed with it, resigning the duty first.
#pragma once

#include <algorithm>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include "ferry/detail/thread_annotations.hpp"
#include "ferry/io/detail/basic_op.hpp"
#include "ferry/io/detail/waiter.hpp"

namespace ferry::detail {

/// What the bucket knows of the operation on duty.
class rate_waiter {
 public:
  /// The bucket is being destroyed: wake the head if it sleeps. Called under the bucket's mutex.
  virtual void wake_locked() = 0;

 protected:
  ~rate_waiter() = default;
};

/// The token bucket: state shared by a limiter and its pending operations.
template <class Clock>
class rate_bucket {
 public:
  using duration = typename Clock::duration;

  rate_bucket(double rate, std::size_t burst)
      : rate_(rate),
        burst_(static_cast<double>(burst)),
        tokens_(static_cast<double>(burst)),
        last_(Clock::now()) {}

  /// Takes `n` tokens if they are there now. Under the mutex.
  bool try_take_locked(std::size_t n) FERRY_REQUIRES(mutex) {
    refill_locked();
    const double need = static_cast<double>(n);
    if (tokens_ + need * 1e-12 < need) return false;  // tolerance: floating-point refills
    tokens_ = std::max(0.0, tokens_ - need);
    return true;
  }

  /// How long until `n` tokens are there (at least one clock tick). Under the mutex, right after
  /// a failed `try_take_locked`.
  duration time_until_locked(std::size_t n) const FERRY_REQUIRES(mutex) {
    // Capped so that the conversion cannot overflow; the head re-checks when it wakes anyway.
    const double seconds = std::min((static_cast<double>(n) - tokens_) / rate_, 3600.0);
    auto d = std::chrono::ceil<duration>(std::chrono::duration<double>(seconds));
    return std::max(d, duration(1));
  }

  /// Tokens now. Under the mutex.
  double available_locked() FERRY_REQUIRES(mutex) {
    refill_locked();
    return tokens_;
  }

  double rate() const noexcept { return rate_; }
  double burst() const noexcept { return burst_; }

  detail::mutex mutex;
  // queued (phase 1); payload: the operation
  waiter_list<bool, rate_waiter*> waiters FERRY_GUARDED_BY(mutex);
  // the operation on duty, granted or sleeping
  rate_waiter* head FERRY_GUARDED_BY(mutex) = nullptr;
  // the limiter is gone: fail, do not pass the duty on
  bool destroyed FERRY_GUARDED_BY(mutex) = false;

 private:
  void refill_locked() FERRY_REQUIRES(mutex) {
    const auto now = Clock::now();
    if (now > last_) {
      tokens_ =
          std::min(burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * rate_);
      last_ = now;
    }
  }

  const double rate_;
  const double burst_;
  double tokens_ FERRY_GUARDED_BY(mutex);
  typename Clock::time_point last_ FERRY_GUARDED_BY(mutex);
};

template <class Clock, class WaitTraits, class Handler>
class rate_acquire_op final
    : public rate_waiter,
      public basic_op<rate_acquire_op<Clock, WaitTraits, Handler>, Handler> {
  using base = basic_op<rate_acquire_op, Handler>;

 public:
  using bucket_type = rate_bucket<Clock>;
  using executor_type = typename base::executor_type;
  using allocator_type = typename base::handler_allocator;

  /// Starts an acquire of `n` tokens that completes `handler` with `void(std::exception_ptr)`.
  static void start(Handler handler, std::shared_ptr<bucket_type> bucket, std::size_t n) {
    base::allocate(std::move(handler), std::move(bucket), n)->enqueue();
  }

  void wake_locked() override {
    if (!armed_) return;  // granted but not sleeping yet: it sees `destroyed` when it runs
    post_holding_work(executor_, [bucket = bucket_, self = this] {
      detail::lock_guard lock(bucket->mutex);
      if (bucket->head == self && self->armed_) self->timer_->cancel();
    });
  }

 private:
  friend base;
  using timer_type = boost::asio::basic_waitable_timer<Clock, WaitTraits, executor_type>;

  // Handlers of the two phases: they carry the user's executor and allocator, and the inner
  // cancellation slot. Exactly one of them owns the operation at any time; destroyed without
  // being invoked (its execution context shut down), it destroys the operation.
  class phase_handler {
   public:
    using executor_type = rate_acquire_op::executor_type;
    using allocator_type = rate_acquire_op::allocator_type;
    using cancellation_slot_type = boost::asio::cancellation_slot;

    explicit phase_handler(rate_acquire_op* op) noexcept : op_(op) {}
    phase_handler(phase_handler&& other) noexcept : op_(std::exchange(other.op_, nullptr)) {}
    phase_handler& operator=(phase_handler&&) = delete;
    ~phase_handler() {
      if (op_ != nullptr) op_->abandon();
    }

    executor_type get_executor() const noexcept { return op_->executor_; }
    allocator_type get_allocator() const noexcept { return op_->alloc_; }
    cancellation_slot_type get_cancellation_slot() const noexcept { return op_->inner_.slot(); }

   protected:
    rate_acquire_op* release() noexcept { return std::exchange(op_, nullptr); }

   private:
    rate_acquire_op* op_;
  };

  struct turn_handler : phase_handler {
    using phase_handler::phase_handler;
    void operator()(std::exception_ptr error, bool tokens_taken) {
      this->release()->on_turn(std::move(error), tokens_taken);
    }
  };

  struct timer_handler : phase_handler {
    using phase_handler::phase_handler;
    void operator()(boost::system::error_code) { this->release()->on_timer(); }
  };

  rate_acquire_op(Handler&& handler, std::shared_ptr<bucket_type>&& bucket, std::size_t n)
      : base(std::move(handler)),
        executor_(
            boost::asio::get_associated_executor(this->handler_, boost::asio::system_executor())),
        bucket_(std::move(bucket)),
        n_(n) {}

  // Phase 1 (in the initiating function).
  void enqueue() {
    // If this throws, the turn_handler (whichever copy owns the operation) destroys it.
    waiter<bool, rate_waiter*>* w = make_waiter<bool, rate_waiter*>(
        turn_handler(this), bucket_->mutex, &bucket_->waiters, this);
    // The user's cancellation reaches whichever phase is waiting, through the inner signal.
    this->connect_cancellation([this] {
      cancelled_ = true;
      inner_.emit(boost::asio::cancellation_type::terminal);
    });

    bucket_type& b = *bucket_;
    detail::unique_lock lock(b.mutex);
    if (b.head == nullptr && b.waiters.empty()) {
      if (b.try_take_locked(n_)) {
        lock.unlock();
        w->grant(true);
        return;
      }
      b.head = this;
      lock.unlock();
      w->grant(false);
      return;
    }
    b.waiters.push_back(w);
  }

  // The wait_op completed (in the user's execution context).
  void on_turn(std::exception_ptr error, bool tokens_taken) {
    if (error) {
      complete(std::move(error));  // cancelled while queued, or the limiter was destroyed
    } else if (tokens_taken) {
      complete(nullptr);
    } else {
      detail::unique_lock lock(bucket_->mutex);
      run_head(lock);
    }
  }

  void on_timer() {
    inner_.slot().clear();  // the timer's cancellation handler is stale now
    detail::unique_lock lock(bucket_->mutex);
    armed_ = false;
    run_head(lock);
  }

  // Phase 2: the head takes its tokens or sleeps until they are there. Under the mutex; not
  // analysed, as resign() releases the caller's lock through a reference.
  void run_head(detail::unique_lock& lock)
      FERRY_REQUIRES(bucket_->mutex) FERRY_NO_THREAD_SAFETY_ANALYSIS {
    bucket_type& b = *bucket_;
    if (b.destroyed || cancelled_) {
      resign(lock);
      complete(operation_aborted());
      return;
    }
    if (b.try_take_locked(n_)) {
      resign(lock);
      complete(nullptr);
      return;
    }
    // Armed under the mutex, so that a wake-up (wake_locked) sees either no timer or an armed
    // one, never one about to be armed.
    arming_ = true;
    try {
      if (!timer_) timer_.emplace(executor_);
      timer_->expires_after(b.time_until_locked(n_));
      timer_->async_wait(timer_handler(this));
      armed_ = true;
      arming_ = false;
    } catch (...) {  // out of memory: the timer_handler was destroyed, see abandon()
      arming_ = false;
      resign(lock);
      complete(std::current_exception());
    }
  }

  // Gives up the duty: to the oldest queued waiter, or nobody. Unlocks the caller's lock (through
  // a reference the analysis does not follow).
  void resign(detail::unique_lock& lock)
      FERRY_REQUIRES(bucket_->mutex) FERRY_NO_THREAD_SAFETY_ANALYSIS {
    bucket_type& b = *bucket_;
    waiter<bool, rate_waiter*>* next = nullptr;
    b.head = nullptr;
    if (!b.destroyed && (next = b.waiters.pop_front()) != nullptr) b.head = next->payload();
    lock.unlock();
    if (next != nullptr) next->grant(false);
  }

  // Completes the user's handler, in its execution context (we run inside a handler there).
  void complete(std::exception_ptr error) {
    this->mark_completing();
    this->upcall(true, std::move(error));
  }

  // A phase handler was destroyed without being invoked: its execution context is gone.
  void abandon() {
    if (arming_) return;  // run_head's own failure path completes the operation
    {
      detail::unique_lock lock(bucket_->mutex);
      if (bucket_->head == this) {
        armed_ = false;
        resign(lock);
      }
    }
    destroy();
  }

  void destroy() {
    if (this->slot_.is_connected()) this->slot_.clear();
    this->release();
  }

  executor_type executor_;
  std::shared_ptr<bucket_type> bucket_;
  const std::size_t n_;
  boost::asio::cancellation_signal inner_;
  std::optional<timer_type> timer_;
  bool armed_ = false;      // a timer wait is pending (guarded by the bucket's mutex)
  bool arming_ = false;     // run_head is arming the timer (under the bucket's mutex)
  bool cancelled_ = false;  // the user asked to cancel (in the user's execution context)
};

}  // namespace ferry::detail
