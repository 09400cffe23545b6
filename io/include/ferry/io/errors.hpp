// ferry/io/errors.hpp — asyncio's `except CancelledError`, for an exception_ptr in hand.
//
//   try {
//     co_await serve(connection);
//   } catch (...) {
//     if (!ferry::is_cancellation(std::current_exception())) {   // a shutdown is not a failure
//       std::fprintf(stderr, "connection failed: %s\n",
//       ferry::what(std::current_exception()).c_str());
//     }
//   }
//
// ferry reports cancellation the way Asio does: an operation whose awaiting coroutine was
// cancelled (offload before its function started, a sleep, a toolkit wait, task_group::join, a
// socket read) completes with `boost::system::system_error(boost::asio::error::operation_aborted)`,
// and so does an offloaded function that calls `throw_if_stop_requested`. Code that keeps an
// exception for later (a task_group child, `gather_settled`'s `outcome`, a catch-all around a
// connection) tells that apart from a failure with `is_cancellation`, and logs a failure with
// `what`, without writing the rethrow-and-catch itself.
//
// `ferry::timeout_error` is not a cancellation (the deadline is the caller's own decision and is
// reported as such); neither is `ferry::offload_rejected` (nothing was cancelled: the work was
// refused) nor an `exception_group` (children failed).
//
// Thread safety: both functions may be called from any thread on the same exception_ptr (they
// only read the exception object).
//
// Errors: none; both are noexcept in effect (a null exception_ptr is not a cancellation, and its
// `what` is "no exception").
#pragma once

#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>
#include <exception>
#include <string>

namespace ferry {

/// True when `e` holds `boost::system::system_error` (or a type derived from it) whose code is
/// `boost::asio::error::operation_aborted`: the operation was cancelled. False for a null `e` and
/// for every other exception.
inline bool is_cancellation(const std::exception_ptr& e) noexcept {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const boost::system::system_error& error) {
    return error.code() == boost::asio::error::operation_aborted;
  } catch (...) {
    return false;
  }
}

/// The `what()` of the std::exception `e` holds; "unknown exception" for an exception of another
/// type, "no exception" for a null `e`. For log lines: the text is not meant to be parsed.
inline std::string what(const std::exception_ptr& e) {
  if (!e) return "no exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& error) {
    return error.what();
  } catch (...) {
    return "unknown exception";
  }
}

}  // namespace ferry
