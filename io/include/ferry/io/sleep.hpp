// ferry/io/sleep.hpp — asyncio.sleep for ferry coroutines.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>

#include "ferry/io/detail/deadline.hpp"
#include "ferry/io/detail/task_registry.hpp"
#include "ferry/io/task.hpp"

namespace ferry {

/// Suspends the calling coroutine for `d` (a zero or negative duration still suspends and
/// resumes through the loop, like `asyncio.sleep(0)`; a duration past the steady clock's range,
/// `std::chrono::hours::max()` say, is saturated to its maximum — never overflowed — as in
/// `timeout`: the sleep then ends only by cancellation).
///
/// Resumes on: the calling coroutine's executor.
/// Cancellation: what the calling coroutine's cancellation state lets through (Asio's default
/// filter: terminal); the coroutine then resumes at once with
/// `boost::system::system_error(boost::asio::error::operation_aborted)`.
/// Errors: only cancellation.
template <class Rep, class Period>
task<void> sleep(std::chrono::duration<Rep, Period> d) {
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor);
  timer.expires_at(detail::deadline_after(detail::saturating_nanoseconds(d)));
  co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&,
                                       void(boost::system::error_code)>(
      detail::noted("sleep", [&timer](auto handler) { timer.async_wait(std::move(handler)); }),
      boost::asio::use_awaitable);
}

}  // namespace ferry
