// ferry/io/sleep.hpp — asyncio.sleep for ferry coroutines.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>

#include "ferry/io/detail/task_registry.hpp"
#include "ferry/io/task.hpp"

namespace ferry {

/// Suspends the calling coroutine for `d` (a zero or negative duration still suspends and
/// resumes through the loop, like `asyncio.sleep(0)`).
///
/// Resumes on: the calling coroutine's executor.
/// Cancellation: what the calling coroutine's cancellation state lets through (Asio's default
/// filter: terminal); the coroutine then resumes at once with
/// `boost::system::system_error(boost::asio::error::operation_aborted)`.
/// Errors: only cancellation.
template <class Rep, class Period>
task<void> sleep(std::chrono::duration<Rep, Period> d) {
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor);
  timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(d));
  co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&,
                                       void(boost::system::error_code)>(
      detail::noted("sleep", [&timer](auto handler) { timer.async_wait(std::move(handler)); }),
      boost::asio::use_awaitable);
}

}  // namespace ferry
