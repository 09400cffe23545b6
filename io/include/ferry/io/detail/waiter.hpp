// ferry/io/detail/waiter.hpp — cancellable FIFO waits: the base of every toolkit primitive.
//
// A primitive (semaphore, queue, event, ...) keeps a `detail::mutex` and one or more
// `waiter_list`s. A coroutine that must wait becomes a `wait_op`: an Asio asynchronous operation
// linked into a list until someone completes it.
//
// Protocol (every primitive follows it):
//  - Linking and unlinking happen under the primitive's mutex.
//  - Whoever unlinks a waiter completes it, exactly once: `grant(value)` or `fail(error)`. The
//    completion is posted to the waiter's executor; it may be called with or without the lock.
//  - Cancellation (terminal, partial, total, through the handler's cancellation slot) takes the
//    mutex and unlinks the waiter if it is still linked, then fails it with operation_aborted.
//    If a notifier unlinked it first, the cancellation does nothing: the grant stands. So a
//    cancelled waiter never consumes a permit or an item, and a grant is never lost.
//  - The cancellation handler and the completion run in the waiter's own execution context (Asio
//    requires cancellation to be emitted there), so the operation outlives its cancellation
//    handler without a reference count.
//
// Lifetime: a primitive must outlive the waits on it; its destructor fails the waiters still
// linked with operation_aborted (`fail_all`).
#pragma once

#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/system/system_error.hpp>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include "ferry/detail/thread_annotations.hpp"
#include "ferry/io/detail/basic_op.hpp"

namespace ferry::detail {

/// The completion signature of a wait that delivers `T` (void: nothing).
template <class T>
struct wait_signature {
  using type = void(std::exception_ptr, T);
};
template <>
struct wait_signature<void> {
  using type = void(std::exception_ptr);
};
template <class T>
using wait_signature_t = typename wait_signature<T>::type;

template <class T>
using stored_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <class T, class P>
class waiter_list;

/// One pending wait. `T` is what a grant delivers; `P` is a payload the waiter carries to the
/// primitive (the item of a blocked `queue::put`).
template <class T, class P = std::monostate>
class waiter {
 public:
  /// Completes the wait successfully. Call once, after unlinking.
  virtual void grant(stored_t<T> value) = 0;
  /// Completes the wait with `error`. Call once, after unlinking.
  virtual void fail(std::exception_ptr error) = 0;

  P& payload() noexcept { return payload_; }
  bool linked() const noexcept { return linked_; }

 protected:
  explicit waiter(P payload) : payload_(std::move(payload)) {}
  ~waiter() = default;

 private:
  friend class waiter_list<T, P>;
  waiter* prev_ = nullptr;
  waiter* next_ = nullptr;
  bool linked_ = false;
  P payload_;
};

/// An intrusive FIFO of waiters. Not synchronised: the owner's mutex guards it.
template <class T, class P = std::monostate>
class waiter_list {
 public:
  using waiter_type = waiter<T, P>;

  waiter_list() = default;
  waiter_list(const waiter_list&) = delete;
  waiter_list& operator=(const waiter_list&) = delete;

  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t size() const noexcept { return size_; }
  waiter_type* front() const noexcept { return head_; }

  void push_back(waiter_type* w) noexcept {
    FERRY_ASSERT(!w->linked_);
    w->prev_ = tail_;
    w->next_ = nullptr;
    if (tail_ != nullptr) {
      tail_->next_ = w;
    } else {
      head_ = w;
    }
    tail_ = w;
    w->linked_ = true;
    ++size_;
  }

  waiter_type* pop_front() noexcept {
    waiter_type* w = head_;
    if (w != nullptr) erase(w);
    return w;
  }

  /// Unlinks `w`; false when it was not linked (already completed by someone else).
  bool erase(waiter_type* w) noexcept {
    if (!w->linked_) return false;
    (w->prev_ != nullptr ? w->prev_->next_ : head_) = w->next_;
    (w->next_ != nullptr ? w->next_->prev_ : tail_) = w->prev_;
    w->prev_ = w->next_ = nullptr;
    w->linked_ = false;
    FERRY_ASSERT(size_ > 0);
    --size_;
    return true;
  }

  /// Unlinks every waiter (under the owner's lock) and fails them all with `error` (after it).
  /// Unlinks every waiter into a private chain (under the primitive's lock), for fail_chain to
  /// fail once the lock is released.
  waiter_type* take_all() {
    waiter_type* first = nullptr;
    waiter_type* last = nullptr;
    while (waiter_type* w = pop_front()) {
      (last != nullptr ? last->next_ : first) = w;  // reuse the links for a private chain
      last = w;
    }
    return first;
  }

  /// Fails every waiter of a chain from take_all. Touches nothing of the primitive: a waiter it
  /// fails may resume a coroutine that destroys the primitive.
  static void fail_chain(waiter_type* first, const std::exception_ptr& error) {
    for (waiter_type* w = first; w != nullptr;) {
      waiter_type* next = w->next_;
      w->next_ = nullptr;
      w->fail(error);
      w = next;
    }
  }

  /// take_all, then the caller's lock is released, then fail_chain. The lock is released through
  /// a reference the analysis does not follow: to relock, take a new lock in a new scope.
  void fail_all(detail::unique_lock& lock,
                std::exception_ptr error) FERRY_NO_THREAD_SAFETY_ANALYSIS {
    waiter_type* first = take_all();
    lock.unlock();
    fail_chain(first, error);
  }

 private:
  waiter_type* head_ = nullptr;
  waiter_type* tail_ = nullptr;
  std::size_t size_ = 0;
};

/// What a cancelled waiter tells its primitive (called under the primitive's mutex, after the
/// waiter was unlinked), for primitives that keep counts beside their lists (barrier).
using cancel_hook = void (*)(void* owner) noexcept;

/// The asynchronous operation behind a waiter.
template <class Handler, class T, class P = std::monostate>
class wait_op final : public waiter<T, P>, public basic_op<wait_op<Handler, T, P>, Handler> {
  using base = basic_op<wait_op, Handler>;

 public:
  /// Allocates the operation with the handler's allocator and hooks up its cancellation slot.
  /// `mutex` and `list` belong to the primitive, which must outlive the wait. `list` is a
  /// pointer: the wait is made before the lock is taken, and keeps it to use under the lock.
  static wait_op* create(Handler handler,
                         detail::mutex& mutex,
                         waiter_list<T, P>* list,
                         P payload = P(),
                         cancel_hook hook = nullptr,
                         void* owner = nullptr) {
    wait_op* op = base::allocate(std::move(handler), mutex, list, std::move(payload), hook, owner);
    op->connect_cancellation([op] { op->cancel(); });
    return op;
  }

  void grant(stored_t<T> value) override {
    value_.emplace(std::move(value));
    post();
  }

  void fail(std::exception_ptr error) override {
    error_ = std::move(error);
    post();
  }

 private:
  friend base;
  friend class owning_completion<wait_op>;
  using completion = owning_completion<wait_op>;

  wait_op(Handler&& handler,
          detail::mutex& mutex,
          waiter_list<T, P>* list,
          P&& payload,
          cancel_hook hook,
          void* owner)
      : waiter<T, P>(std::move(payload)),
        base(std::move(handler)),
        mutex_(&mutex),
        list_(list),
        hook_(hook),
        owner_(owner) {}

  // In the waiter's execution context.
  void cancel() {
    {
      detail::lock_guard lock(*mutex_);
      if (!list_->erase(this)) return;  // completed by a notifier first: the grant stands
      if (hook_ != nullptr) hook_(owner_);
    }
    fail(operation_aborted());
  }

  void post() {
    FERRY_ASSERT(!this->linked());
    try {
      this->post_completion(completion(this));
    } catch (...) {
      // Out of memory for the posted completion: the completion object, destroyed unrun,
      // destroyed the operation; the handler cannot run.
    }
  }

  void complete(bool invoke) {
    std::exception_ptr error = std::move(error_);
    if constexpr (std::is_void_v<T>) {
      this->upcall(invoke, std::move(error));
    } else {
      this->upcall(invoke, std::move(error), value_ ? T(std::move(*value_)) : T());
    }
  }

  detail::mutex* mutex_;
  waiter_list<T, P>* list_ FERRY_PT_GUARDED_BY(mutex_);
  cancel_hook hook_;
  void* owner_;
  std::optional<stored_t<T>> value_;
  std::exception_ptr error_;
};

/// Makes the waiter for the handler of an `async_initiate` call.
template <class T, class P = std::monostate, class Handler>
waiter<T, P>* make_waiter(Handler&& handler,
                          detail::mutex& mutex,
                          waiter_list<T, P>* list,
                          P payload = P(),
                          cancel_hook hook = nullptr,
                          void* owner = nullptr) {
  return wait_op<std::decay_t<Handler>, T, P>::create(
      std::forward<Handler>(handler), mutex, list, std::move(payload), hook, owner);
}

}  // namespace ferry::detail
