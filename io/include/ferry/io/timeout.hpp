// ferry/io/timeout.hpp — asyncio.timeout / wait_for: a deadline on any awaitable.
//
//   try {
//     auto reply = co_await ferry::timeout(200ms, read_reply(sock));
//     auto n = co_await ferry::timeout(10ms, ferry::offload([](std::stop_token st) { ... }));
//   } catch (const ferry::timeout_error&) { ... }
//
// The inner task is co_spawned on the caller's executor (on a strand of its own, or directly on
// the caller's executor when that is a strand) next to a steady_timer on the caller's executor.
// If the timer fires first, the inner task is cancelled (terminal cancellation: an `offload`
// requests stop on its function's std::stop_token, a timer or socket wait aborts) and timeout
// waits for it to finish — the inner operation has always finished when timeout returns or
// throws, so nothing it borrowed from the caller is used afterwards.
//
// What the caller gets, once the inner task has finished:
//  - it finished on its own before the deadline: its value, or its exception rethrown;
//  - the deadline fired and the inner task ended with `system_error(operation_aborted)` (it
//    honoured the cancellation): `ferry::timeout_error`;
//  - the deadline fired but the inner task still returned a value (it finished, or swallowed
//    the cancellation): that value. Like asyncio.timeout, which raises TimeoutError only when
//    the cancellation it caused surfaced — and the value is never lost: a `queue::get` or a
//    `semaphore::acquire` granted just as the deadline fired delivers its item or permit
//    instead of dropping it;
//  - the deadline fired and the inner task threw something else: that exception, rethrown.
// For an offload, the function decides: one that sees `st.stop_requested()` and returns a
// (partial) value gets that value back; one that throws
// `boost::system::system_error(boost::asio::error::operation_aborted)` makes timeout throw
// timeout_error.
// A zero or negative duration is a deadline that has already passed: the inner task still
// starts, and is cancelled at its first suspension point (as with asyncio.timeout(0)) — before
// the operation it suspends on can complete, whatever else is ready in the same pass of the
// loop (`timeout(0ms, sleep(0ms))` throws timeout_error every time); one that completes without
// suspending keeps its outcome. So `timeout(d, tg.join())` always runs the
// join, which then cancels and awaits the group's children.
//
// timeout_error derives from std::runtime_error, not from boost::system::system_error: a
// deadline is not an OS error, and code that catches `system_error(operation_aborted)` to detect
// its own cancellation must not swallow timeouts. `duration()` is the timeout that expired.
//
// Thread safety: may be called from any coroutine; each call is independent.
//
// Resumes on: the caller's executor, by post, once the inner task has finished.
//
// Cancellation: a cancellation of the awaiting coroutine (terminal, partial or total, what its
// filter lets through) is forwarded to the inner task; its outcome is then returned or rethrown
// as is (operation_aborted, not timeout_error, when the caller was cancelled first).
//
// Lifetime: the inner task is moved in; what it borrows must outlive the `co_await`.
//
// Errors: timeout_error (see above), or the inner task's own exception.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "ferry/io/detail/deadline.hpp"
#include "ferry/io/detail/fan_op.hpp"
#include "ferry/io/errors.hpp"
#include "ferry/io/task.hpp"

namespace ferry {
namespace detail {

/// "10ms", "1500us", "3s": the largest unit that represents `d` exactly.
inline std::string format_duration(std::chrono::nanoseconds d) {
  const std::int64_t ns = d.count();
  if (ns != 0 && ns % 1'000'000'000 == 0) return std::to_string(ns / 1'000'000'000) + "s";
  if (ns != 0 && ns % 1'000'000 == 0) return std::to_string(ns / 1'000'000) + "ms";
  if (ns != 0 && ns % 1'000 == 0) return std::to_string(ns / 1'000) + "us";
  return std::to_string(ns) + "ns";
}

}  // namespace detail

/// Thrown by `ferry::timeout` when the deadline cancelled the inner operation.
class timeout_error : public std::runtime_error {
 public:
  explicit timeout_error(std::chrono::nanoseconds after)
      : std::runtime_error("ferry::timeout: the operation did not finish within " +
                           detail::format_duration(after)),
        after_(after) {}

  /// The timeout that expired.
  std::chrono::nanoseconds duration() const noexcept { return after_; }

 private:
  std::chrono::nanoseconds after_;
};

namespace detail {

template <class T>
struct timeout_collect {
  using result_type = stored_t<T>;
  static std::optional<result_type> collect(tuple_children<T>& children,
                                            const fan_summary& summary,
                                            std::exception_ptr& error) {
    child<T>& inner = children.template get<0>();
    if (inner.error) {
      error = summary.cause == fan_cause::deadline && is_cancellation(inner.error)
                  ? std::make_exception_ptr(timeout_error(summary.timeout))
                  : inner.error;
      return std::nullopt;
    }
    return std::optional<result_type>(std::move(*inner.value));
  }
};

}  // namespace detail

/// Runs `inner` with a deadline `d` from now (see the file comment for the exact contract).
template <class Rep, class Period, class T>
task<T> timeout(std::chrono::duration<Rep, Period> d, task<T> inner) {
  const std::chrono::nanoseconds after = detail::saturating_nanoseconds(d);
  const boost::asio::any_io_executor ex = co_await boost::asio::this_coro::executor;
  auto op = detail::async_fan<detail::tuple_children<T>, detail::timeout_collect<T>>(
      ex,
      std::tuple<task<T>>(std::move(inner)),
      detail::fan_policy::settle,
      after,
      boost::asio::use_awaitable);
  [[maybe_unused]] auto result = co_await std::move(op);
  if constexpr (std::is_void_v<T>) {
    co_return;
  } else {
    co_return std::move(*result);
  }
}

}  // namespace ferry
