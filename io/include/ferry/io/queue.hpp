// ferry/io/queue.hpp — asyncio.Queue for coroutines on any thread: a bounded FIFO with close().
//
//   ferry::queue<job> jobs{64};
//   co_await jobs.put(make_job());            // waits while the queue is full
//   job j = co_await jobs.get();              // waits while it is empty
//   jobs.task_done();                         // asyncio's task_done / join
//   jobs.close();                             // consumers drain what is left, then get() throws
//
// Capacity: at least 1 (0 throws std::invalid_argument: a rendezvous queue is not offered);
// `queue<T>::unbounded` makes a queue that is never full (asyncio's maxsize=0).
//
// Items: `T` may be move-only and need not be default-constructible. Each item put successfully
// is delivered to exactly one `get` (or `try_get`), in FIFO order.
//
// Thread safety: distinct objects: safe. Shared objects: safe; coroutines on different io
// threads and on pool executors may share one queue (one std::mutex guards it).
//
// Fairness: getters and putters are served in FIFO order. An item put while getters wait goes
// directly to the oldest getter; when a get frees a slot, the oldest blocked putter's item moves
// into the queue at once. `try_put`, `try_get` and the fast paths of `put`/`get` never overtake a
// waiter (a waiting getter implies an empty queue; a waiting putter, a full one).
//
// Resumes on: a waiting coroutine resumes on its own executor (by post). A `put` that finds room
// and a `get` that finds an item complete without suspending.
//
// Cancellation: terminal, partial and total, through the per-operation cancellation slot (for a
// coroutine: what its cancellation filter lets through; Asio's default is terminal). A cancelled
// getter is removed without taking an item: the item goes to the next getter or stays queued. A
// cancelled putter is removed and its item is NOT enqueued (it is destroyed with the operation).
// The wait completes with `boost::system::system_error(operation_aborted)`. If the item (or the
// slot) was handed over first, the cancellation is ignored and the operation succeeds: an item is
// never lost by the queue. Caveat for `||` (awaitable operators) and other "first one wins"
// composers: if `get()` receives an item in the same instant as the other side wins, the
// composer discards the `get()` result and the item with it; where that matters, cancel through
// `async_get` with a bound cancellation slot and look at what completes.
//
// close(): idempotent. Wakes every waiting getter with `queue_closed` (they wait only when the
// queue is empty); afterwards `get` delivers the items still queued and then throws
// `queue_closed`. `put`/`try_put` after close throw `queue_closed`; putters blocked at the time of
// close fail with `queue_closed` and their items are not enqueued (they are destroyed).
//
// task_done()/join(): as in asyncio. Every item accepted by the queue (put or handed over to a
// getter) increments an "unfinished" count, `task_done()` decrements it, and `join()` completes
// when it is zero. More `task_done()` calls than items throw std::logic_error.
//
// Lifetime: the queue must outlive the operations on it; destroying it fails the remaining
// getters, putters and joiners with operation_aborted (their items are destroyed).
//
// Errors: `queue_closed` (a std::runtime_error) as described; operation_aborted on cancellation
// and destruction; std::invalid_argument for a zero capacity; std::logic_error from task_done.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <concepts>
#include <cstddef>
#include <deque>
#include <exception>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <utility>

#include "ferry/detail/thread_annotations.hpp"
#include "ferry/io/detail/task_registry.hpp"
#include "ferry/io/detail/waiter.hpp"
#include "ferry/io/task.hpp"

namespace ferry {

/// Thrown by `queue::get` on a closed, empty queue and by `put`/`try_put` on a closed queue.
class queue_closed : public std::runtime_error {
 public:
  queue_closed() : std::runtime_error("ferry::queue is closed") {}
};

template <class T>
class queue {
 public:
  using value_type = T;

  /// The capacity of a queue that is never full (asyncio's maxsize=0).
  static constexpr std::size_t unbounded = std::numeric_limits<std::size_t>::max();

  /// A queue holding at most `capacity` items (>= 1, or `unbounded`).
  explicit queue(std::size_t capacity) : capacity_(capacity) {
    if (capacity == 0) {
      throw std::invalid_argument(
          "ferry::queue: capacity must be at least 1 (use queue<T>::unbounded for no limit)");
    }
  }

  ~queue() {
    typename decltype(getters_)::waiter_type* getters = nullptr;
    typename decltype(putters_)::waiter_type* putters = nullptr;
    typename decltype(joiners_)::waiter_type* joiners = nullptr;
    {
      detail::lock_guard lock(mutex_);
      getters = getters_.take_all();
      putters = putters_.take_all();
      joiners = joiners_.take_all();
    }
    const std::exception_ptr aborted = detail::operation_aborted();
    decltype(getters_)::fail_chain(getters, aborted);
    decltype(putters_)::fail_chain(putters, aborted);
    decltype(joiners_)::fail_chain(joiners, aborted);
  }

  queue(const queue&) = delete;
  queue& operator=(const queue&) = delete;

  /// Puts `value` at the back, waiting while the queue is full. Asynchronous operation for any
  /// completion token, signature `void(std::exception_ptr)`. The item is moved into the operation
  /// at once; on failure (cancelled, closed, destroyed) it is destroyed, not enqueued.
  template <class U, class Token = boost::asio::use_awaitable_t<>>
  requires std::constructible_from<T, U&&>
  auto async_put(U&& value, Token&& token = {}) {
    return detail::noted_initiate<Token, void(std::exception_ptr)>(
        "queue::put",
        [this](auto handler, T item) {
          auto* w =
              detail::make_waiter<void, T>(std::move(handler), mutex_, &putters_, std::move(item));
          detail::unique_lock lock(mutex_);
          if (closed_) {
            lock.unlock();
            w->fail(std::make_exception_ptr(queue_closed()));
            return;
          }
          if (accept_locked(w->payload())) {
            lock.unlock();
            w->grant({});
            return;
          }
          putters_.push_back(w);
        },
        token,
        T(std::forward<U>(value)));
  }

  /// Takes the item at the front, waiting while the queue is empty. Asynchronous operation for
  /// any completion token, signature `void(std::exception_ptr, std::optional<T>)`: on success the
  /// optional holds the item; on failure (queue_closed, operation_aborted) it is empty.
  template <class Token = boost::asio::use_awaitable_t<>>
  auto async_get(Token&& token = {}) {
    return detail::noted_initiate<Token, void(std::exception_ptr, std::optional<T>)>(
        "queue::get",
        [this](auto handler) {
          auto* w = detail::make_waiter<std::optional<T>>(std::move(handler), mutex_, &getters_);
          detail::unique_lock lock(mutex_);
          if (!items_.empty()) {
            std::optional<T> item(take_locked());
            lock.unlock();
            w->grant(std::move(item));
            return;
          }
          if (closed_) {
            lock.unlock();
            w->fail(std::make_exception_ptr(queue_closed()));
            return;
          }
          getters_.push_back(w);
        },
        token);
  }

  /// Waits until every item accepted so far has been marked `task_done()`. Asynchronous
  /// operation for any completion token, signature `void(std::exception_ptr)`.
  template <class Token = boost::asio::use_awaitable_t<>>
  auto async_join(Token&& token = {}) {
    return detail::noted_initiate<Token, void(std::exception_ptr)>(
        "queue::join",
        [this](auto handler) {
          auto* w = detail::make_waiter<void>(std::move(handler), mutex_, &joiners_);
          detail::unique_lock lock(mutex_);
          if (unfinished_ == 0) {
            lock.unlock();
            w->grant({});
            return;
          }
          joiners_.push_back(w);
        },
        token);
  }

  /// Puts `value`, waiting while the queue is full. Throws queue_closed or operation_aborted.
  task<void> put(T value) {
    if (try_put(std::move(value))) co_return;
    co_await async_put(std::move(value), boost::asio::use_awaitable);
  }

  /// Takes the front item, waiting while the queue is empty. Throws queue_closed (closed and
  /// empty) or operation_aborted.
  task<T> get() {
    if (std::optional<T> item = try_get()) co_return std::move(*item);
    std::optional<T> item = co_await async_get(boost::asio::use_awaitable);
    co_return std::move(*item);
  }

  /// Waits until every accepted item has been marked `task_done()`.
  task<void> join() { co_await async_join(boost::asio::use_awaitable); }

  /// Puts `value` if that needs no waiting: true when the item was accepted (moved from); false
  /// when the queue is full, in which case `value` is left untouched. Throws queue_closed after
  /// close() (also leaving `value` untouched): "full" would invite retrying forever.
  bool try_put(T&& value) {
    detail::lock_guard lock(mutex_);
    if (closed_) throw queue_closed();
    return accept_locked(value);
  }

  /// Copying overload of `try_put`.
  bool try_put(const T& value) requires std::copy_constructible<T> {
    detail::lock_guard lock(mutex_);
    if (closed_) throw queue_closed();
    if (!getters_.empty() || items_.size() < capacity_) {
      T copy(value);
      return accept_locked(copy);
    }
    return false;
  }

  /// Takes the front item if there is one; std::nullopt when the queue is empty (closed or not:
  /// check `closed()` to tell "not now" from "never"). Never throws (beyond T's move).
  std::optional<T> try_get() {
    detail::lock_guard lock(mutex_);
    if (items_.empty()) return std::nullopt;
    return take_locked();
  }

  /// Closes the queue (see the file comment). Idempotent.
  void close() {
    typename decltype(getters_)::waiter_type* getters = nullptr;
    typename decltype(putters_)::waiter_type* putters = nullptr;
    {
      detail::lock_guard lock(mutex_);
      if (closed_) return;
      closed_ = true;
      // No getter or putter can be added once closed_ is set, so the two lists are final. Both
      // are taken under one lock: a getter failed below may resume a coroutine that destroys
      // the queue, so nothing of it is touched once the first waiter is failed.
      getters = getters_.take_all();
      putters = putters_.take_all();
    }
    const std::exception_ptr closed = std::make_exception_ptr(queue_closed());
    decltype(getters_)::fail_chain(getters, closed);
    decltype(putters_)::fail_chain(putters, closed);
  }

  /// Marks one item as processed (asyncio's task_done). Throws std::logic_error when called more
  /// times than items were accepted.
  void task_done() {
    detail::unique_lock lock(mutex_);
    if (unfinished_ == 0) throw std::logic_error("task_done() called too many times");
    if (--unfinished_ == 0) {
      while (auto* w = joiners_.pop_front()) w->grant({});  // posts; safe under the lock
    }
  }

  /// Items queued now (a snapshot; blocked putters' items are not counted).
  std::size_t size() const {
    detail::lock_guard lock(mutex_);
    return items_.size();
  }
  std::size_t capacity() const noexcept { return capacity_; }
  bool empty() const { return size() == 0; }
  bool full() const { return size() >= capacity_; }
  bool closed() const {
    detail::lock_guard lock(mutex_);
    return closed_;
  }
  /// Items accepted and not yet marked task_done (a snapshot).
  std::size_t unfinished() const {
    detail::lock_guard lock(mutex_);
    return unfinished_;
  }
  /// Coroutines waiting in get / put now (snapshots).
  std::size_t getters_waiting() const {
    detail::lock_guard lock(mutex_);
    return getters_.size();
  }
  std::size_t putters_waiting() const {
    detail::lock_guard lock(mutex_);
    return putters_.size();
  }

 private:
  // Accepts `item` if that needs no waiting: hands it to the oldest getter, or queues it. Moves
  // from `item` only when it returns true. Under the lock, queue open.
  bool accept_locked(T& item) FERRY_REQUIRES(mutex_) {
    if (auto* g = getters_.pop_front()) {  // getters wait only on an empty queue
      ++unfinished_;
      g->grant(std::optional<T>(std::move(item)));  // posts; safe under the lock
      return true;
    }
    if (items_.size() >= capacity_) return false;
    items_.push_back(std::move(item));
    ++unfinished_;
    return true;
  }

  // Removes the front item (queue not empty) and lets the oldest blocked putter in. Under the lock.
  T take_locked() FERRY_REQUIRES(mutex_) {
    T item(std::move(items_.front()));
    items_.pop_front();
    if (auto* p = putters_.pop_front()) {  // putters wait only on a full queue
      items_.push_back(std::move(p->payload()));
      ++unfinished_;
      p->grant({});  // posts; safe under the lock
    }
    return item;
  }

  mutable detail::mutex mutex_;
  const std::size_t capacity_;
  std::deque<T> items_ FERRY_GUARDED_BY(mutex_);
  std::size_t unfinished_ FERRY_GUARDED_BY(mutex_) = 0;
  bool closed_ FERRY_GUARDED_BY(mutex_) = false;
  detail::waiter_list<std::optional<T>> getters_ FERRY_GUARDED_BY(mutex_);
  detail::waiter_list<void, T> putters_ FERRY_GUARDED_BY(mutex_);
  detail::waiter_list<void> joiners_ FERRY_GUARDED_BY(mutex_);
};

}  // namespace ferry
