// ferry/io/detail/waiter.hpp — cancellable FIFO waits: the base of every toolkit primitive.
//
// A primitive (semaphore, queue, event, ...) keeps a `std::mutex` and one or more
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

#include "ferry/io/detail/completion_executor.hpp"

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

inline std::exception_ptr operation_aborted() {
  return std::make_exception_ptr(
      boost::system::system_error(boost::asio::error::operation_aborted));
}

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
    --size_;
    return true;
  }

  /// Unlinks every waiter (under the owner's lock) and fails them all with `error` (after it).
  void fail_all(std::unique_lock<std::mutex>& lock, std::exception_ptr error) {
    waiter_type* first = nullptr;
    waiter_type* last = nullptr;
    while (waiter_type* w = pop_front()) {
      (last != nullptr ? last->next_ : first) = w;  // reuse the links for a private chain
      last = w;
    }
    lock.unlock();
    for (waiter_type* w = first; w != nullptr;) {
      waiter_type* next = w->next_;
      w->next_ = nullptr;
      w->fail(error);
      w = next;
    }
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
class wait_op final : public waiter<T, P> {
 public:
  using executor_type = boost::asio::associated_executor_t<Handler, boost::asio::system_executor>;
  using handler_allocator =
      boost::asio::associated_allocator_t<Handler, boost::asio::recycling_allocator<void>>;

  /// Allocates the operation with the handler's allocator and hooks up its cancellation slot.
  /// `mutex` and `list` belong to the primitive, which must outlive the wait.
  static wait_op* create(Handler handler,
                         std::mutex& mutex,
                         waiter_list<T, P>& list,
                         P payload = P(),
                         cancel_hook hook = nullptr,
                         void* owner = nullptr) {
    handler_allocator base_alloc =
        boost::asio::get_associated_allocator(handler, boost::asio::recycling_allocator<void>());
    op_allocator alloc(base_alloc);
    wait_op* op = std::allocator_traits<op_allocator>::allocate(alloc, 1);
    try {
      ::new (static_cast<void*>(op))
          wait_op(std::move(handler), base_alloc, mutex, list, std::move(payload), hook, owner);
    } catch (...) {
      std::allocator_traits<op_allocator>::deallocate(alloc, op, 1);
      throw;
    }
    op->slot_ = boost::asio::get_associated_cancellation_slot(op->handler_);
    if (op->slot_.is_connected()) op->slot_.template emplace<cancellation_handler>(op);
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
  using op_allocator =
      typename std::allocator_traits<handler_allocator>::template rebind_alloc<wait_op>;

  friend class owning_completion<wait_op>;
  using completion = owning_completion<wait_op>;

  struct cancellation_handler {
    explicit cancellation_handler(wait_op* op) noexcept : op_(op) {}
    void operator()(boost::asio::cancellation_type_t type) const {
      using ct = boost::asio::cancellation_type;
      if ((type & (ct::terminal | ct::partial | ct::total)) != ct::none) op_->cancel();
    }
    wait_op* op_;
  };

  wait_op(Handler&& handler,
          const handler_allocator& alloc,
          std::mutex& mutex,
          waiter_list<T, P>& list,
          P&& payload,
          cancel_hook hook,
          void* owner)
      : waiter<T, P>(std::move(payload)),
        handler_(std::move(handler)),
        alloc_(alloc),
        work_(boost::asio::get_associated_executor(handler_, boost::asio::system_executor())),
        mutex_(&mutex),
        list_(&list),
        hook_(hook),
        owner_(owner) {}

  // In the waiter's execution context.
  void cancel() {
    {
      std::lock_guard lock(*mutex_);
      if (!list_->erase(this)) return;  // completed by a notifier first: the grant stands
      if (hook_ != nullptr) hook_(owner_);
    }
    fail(operation_aborted());
  }

  void post() {
    try {
      work_.post(completion(this), alloc_);
    } catch (...) {
      complete(false);  // out of memory for the posted completion: the handler cannot run
    }
  }

  void complete(bool invoke) {
    work_.wait_posted();  // the posting thread is done with everything it touched
    if (slot_.is_connected()) slot_.clear();
    [[maybe_unused]] completion_executor<executor_type> work(std::move(work_));
    Handler handler(std::move(handler_));
    std::exception_ptr error = std::move(error_);
    std::optional<stored_t<T>> value = std::move(value_);
    op_allocator alloc(alloc_);
    this->~wait_op();
    std::allocator_traits<op_allocator>::deallocate(alloc, this, 1);
    if (!invoke) return;
    if constexpr (std::is_void_v<T>) {
      std::move(handler)(std::move(error));
    } else {
      std::move(handler)(std::move(error), value ? T(std::move(*value)) : T());
    }
  }

  Handler handler_;
  handler_allocator alloc_;
  completion_executor<executor_type> work_;
  boost::asio::cancellation_slot slot_;
  std::mutex* mutex_;
  waiter_list<T, P>* list_;
  cancel_hook hook_;
  void* owner_;
  std::optional<stored_t<T>> value_;
  std::exception_ptr error_;
};

/// Makes the waiter for the handler of an `async_initiate` call.
template <class T, class P = std::monostate, class Handler>
waiter<T, P>* make_waiter(Handler&& handler,
                          std::mutex& mutex,
                          waiter_list<T, P>& list,
                          P payload = P(),
                          cancel_hook hook = nullptr,
                          void* owner = nullptr) {
  return wait_op<std::decay_t<Handler>, T, P>::create(
      std::forward<Handler>(handler), mutex, list, std::move(payload), hook, owner);
}

}  // namespace ferry::detail
