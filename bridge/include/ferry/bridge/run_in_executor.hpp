// ferry/bridge/run_in_executor.hpp — run a function on any Asio executor, resume on your own.
//
//   boost::asio::thread_pool legacy(4);
//   auto rows = co_await ferry::run_in_executor(legacy.get_executor(), [&] { return query(); });
//
// The mirror of asyncio's `loop.run_in_executor(executor, f)`: `f` is posted to `ex` (a strand,
// an `asio::thread_pool`, a `cpu_pool` or `blocking_pool` executor, another io_context, ...) and
// the awaiter resumes on its own executor with the result or the exception.
//
// Completion signature, tokens, resume executor, cancellation, lifetime and errors: exactly as
// `ferry::offload` (offload.hpp). If `ex`'s execution context is shut down before it ran `f`,
// `f` never runs and the operation completes with operation_aborted (rather than never).
//
// Complexity: the operation, plus whatever `asio::post` to `ex` allocates.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/is_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <type_traits>
#include <utility>

#include "ferry/bridge/detail/offload_op.hpp"
#include "ferry/io/detail/task_registry.hpp"

namespace ferry {
namespace detail {

template <class Executor>
struct initiate_run_in_executor {
  Executor ex;

  template <class Handler, class F>
  void operator()(Handler&& handler, F&& f) const {
    using op = offload_op<std::decay_t<Handler>, std::decay_t<F>>;
    boost::asio::post(ex,
                      typename op::runner(
                          op::create(std::forward<Handler>(handler), std::forward<F>(f), nullptr)));
  }
};

}  // namespace detail

/// Runs `f` on `ex`; `ex`'s execution context must outlive the operation.
template <class Executor, detail::offloadable F, class Token = boost::asio::use_awaitable_t<>>
requires(boost::asio::execution::is_executor<Executor>::value ||
         boost::asio::is_executor<Executor>::value) auto run_in_executor(const Executor& ex,
                                                                         F&& f,
                                                                         Token&& token = {}) {
  detail::check_offload_result<F>();
  return detail::noted_initiate<Token, detail::offload_signature_t<F>>(
      "run_in_executor", detail::initiate_run_in_executor<Executor>{ex}, token, std::forward<F>(f));
}

}  // namespace ferry
