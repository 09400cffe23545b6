// ferry/io/generator.hpp — async generators: `co_yield` and `co_await` in one body.
//
//   ferry::generator<page> pages(client& c) {
//     for (int n = 1;; ++n) {
//       page p = co_await c.fetch(n);               // a ferry::task<page>
//       if (p.empty()) co_return;
//       co_yield std::move(p);
//       co_await ferry::sleep(100ms);               // be polite
//     }
//   }
//
//   auto g = pages(c);
//   while (auto p = co_await g.next()) consume(*p);  // std::optional<page>
//
// asyncio's async generator / `async for`. The body is lazy: it starts at the first `next()` and
// runs one step per `next()`, up to the next `co_yield` (next() gives the value), the end of the
// body (std::nullopt, and every later next() too) or an exception (thrown by that next(); the
// generator is then finished).
//
// What the body may co_await:
//  - any `ferry::task<U>` / `asio::awaitable<U, any_io_executor>`: `ferry::sleep(d)`,
//    `ferry::offload(f)`, `ferry::to_thread(f)`, Asio operations with `asio::use_awaitable`, the
//    toolkit (`q.get()`, `sem.acquire()`, ...), another generator's `next()`. It is co_spawned on
//    the body's executor (one coroutine frame more than in a task, and a U that is not
//    default-constructible costs one more);
//  - an Asio asynchronous operation launched with `asio::deferred` (cheapest: no extra frame),
//    e.g. `co_await timer.async_wait(asio::deferred)`, `co_await ferry::offload(f,
//    asio::deferred)`. A leading error_code / exception_ptr is thrown when set; the other arguments
//    are the result (none: void, one: the value, several: a tuple);
//  - `asio::this_coro::executor`: the executor the body runs on.
//  Anything else is a compile-time error with a message listing the above.
//
// Why not asio::experimental::coro (Boost 1.81)? It does run co_yield and co_await in one body on
// g++ 12 and clang 14, but (a) its body can await only coros and deferred operations, not
// ferry::task (ferry::sleep, offload's default token, the toolkit would all need
// `co_spawn(ex, t, deferred)`); (b) the generator function must take an executor or execution
// context parameter (the promise is built from it); (c) destroying the io_context while a
// consumer awaits `async_resume` leaks the consumer's frame and the coro's frame
// (LeakSanitizer; the coro documents destroying a pending coro as undefined); (d) it is
// experimental. ferry::generator is its own small coroutine type built on Asio's public
// completion-token machinery.
//
// Thread safety: distinct objects: safe. Shared objects: unsafe — one consumer, one next() at a
// time (a second next() while one is pending throws std::logic_error). Successive next() calls
// may come from different threads; the body runs on the executor of the next() that resumed it.
//
// Resumes on: the body runs on the executor associated with next()'s completion handler (for a
// coroutine consumer, its own executor); awaited operations complete there. The consumer resumes
// on its executor by post, never inline inside the body.
//
// Cancellation: next()'s per-operation cancellation (terminal, partial, total) is forwarded, with
// its type, to what the body awaits at that moment (the co_spawned task, whose default filter
// lets terminal through, or the deferred operation), which then typically throws
// operation_aborted inside the body. As in an asio::awaitable, the request also sticks for the
// rest of that step: every later co_await in the step throws operation_aborted at once (also when
// the request arrived while the body was not awaiting). A body that does not catch it ends and
// next() throws it; a body that catches it may still co_yield (or co_return) and the next step
// starts afresh. An awaited operation that ignores cancellation makes next() wait for it. A value
// already yielded is delivered (a composer such as `||` may discard it if the other side won).
//
// Lifetime: the body's arguments are copied into its frame like any coroutine's; references
// and pointers must outlive the generator. Destroying the generator while the body is suspended
// at a co_yield (or not started) destroys the body's frame at once (early `break` out of the
// loop is clean). Destroying it while a next() is pending is undefined (with a coroutine
// consumer this cannot happen: the consumer is suspended in next()). If the execution context
// is destroyed with a step in flight, the step and the consumer's handler are destroyed without
// running (as Asio does with any handler), which frees the consumer's frame and the generator.
//
// Errors: the body's exceptions, thrown by next(); operation_aborted on cancellation (and from
// next() on a generator whose step was dropped by a destroyed execution context);
// std::logic_error for overlapping next() calls, or next() on an empty (moved-from) generator.
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cassert>
#include <coroutine>
#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "ferry/io/detail/generator_promise.hpp"
#include "ferry/io/task.hpp"

namespace ferry {

template <class T>
class [[nodiscard]] generator {
  static_assert(std::is_object_v<T> && !std::is_const_v<T>,
                "ferry::generator<T>: T must be a non-const object type (yield a pointer or a "
                "std::reference_wrapper to share)");

 public:
  using value_type = T;
  using promise_type = detail::generator_promise<T>;

  /// An empty generator (as after a move).
  generator() noexcept = default;
  generator(generator&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  generator& operator=(generator&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  generator(const generator&) = delete;
  generator& operator=(const generator&) = delete;

  /// Destroys the body's frame (it must not be running a step: see Lifetime).
  ~generator() { reset(); }

  /// Runs the body to its next `co_yield`, its end or an exception. Asynchronous operation for
  /// any completion token, signature `void(std::exception_ptr, std::optional<T>)`: the value
  /// yielded, std::nullopt at the end (and on every later call), or the body's exception (after
  /// which the generator is finished).
  template <class Token = boost::asio::use_awaitable_t<>>
  auto async_next(Token&& token = {}) {
    check_can_step();  // here, not in the initiation: with use_awaitable that runs in the loop
    return boost::asio::async_initiate<Token, void(std::exception_ptr, std::optional<T>)>(
        [this](auto handler) {
          std::exception_ptr error;
          if (!handle_ || handle_.promise().step_pending()) {
            // A deferred next() launched later than it was made, into a state that forbids it.
            try {
              check_can_step();
            } catch (...) {
              error = std::current_exception();
            }
          } else if (handle_.promise().abandoned()) {
            error = detail::generator_aborted();  // a step was dropped: no way on
          } else if (!handle_.done()) {
            handle_.promise().start_step(std::move(handler));
            return;
          }
          auto ex = boost::asio::get_associated_executor(handler);
          boost::asio::post(ex, [handler = std::move(handler), error = std::move(error)]() mutable {
            std::move(handler)(std::move(error), detail::generator_end<T>());
          });
        },
        token);
  }

  /// `co_await g.next()`: the next value, or std::nullopt at the end; rethrows the body's
  /// exception.
  task<std::optional<T>> next() { return async_next(boost::asio::use_awaitable); }

  /// True when the body has finished (or the generator is empty). A body that still has to run
  /// to notice its end (e.g. after its last co_yield) is not finished yet.
  bool done() const noexcept { return !handle_ || handle_.done(); }

 private:
  friend class detail::generator_promise<T>;
  explicit generator(std::coroutine_handle<promise_type> handle) noexcept : handle_(handle) {}

  void check_can_step() const {
    if (!handle_) throw std::logic_error("ferry::generator::next(): empty generator");
    if (handle_.promise().step_pending()) {
      throw std::logic_error("ferry::generator::next(): called while a previous next() is pending");
    }
  }

  void reset() noexcept {
    if (handle_) {
      assert(!handle_.promise().step_pending() && "ferry::generator destroyed during next()");
      std::exchange(handle_, nullptr).destroy();
    }
  }

  std::coroutine_handle<promise_type> handle_;
};

}  // namespace ferry
