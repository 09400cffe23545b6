// ferry/bridge/run_in_executor.hpp — run a function on any Asio executor, resume on your own.
//
//   boost::asio::thread_pool legacy(4);
//   auto rows = co_await ferry::run_in_executor(legacy.get_executor(), [&] { return query(); });
//
// The mirror of asyncio's `loop.run_in_executor(executor, f, *args)`:
// `run_in_executor(ex, f, args...)` posts `f(args...)` to `ex` (a strand, an `asio::thread_pool`,
// a `cpu_pool` or `blocking_pool` executor, another io_context, ...) and the awaiter resumes on
// its own executor with the result or the exception.
//
// Arguments, completion signature, tokens (and which argument is the token), resume executor,
// cancellation, lifetime and errors: exactly as `ferry::offload` (offload.hpp). `ex` is always
// the target; executors after `f` are arguments of `f`. If `ex`'s execution context is shut down
// before it ran `f`, `f` never runs and the operation completes with operation_aborted (rather
// than never).
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

#include "ferry/bridge/detail/bound_call.hpp"
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
    boost::asio::post(
        ex,
        typename op::runner(op::create(
            std::forward<Handler>(handler), std::forward<F>(f), nullptr, context_of(ex))));
  }
};

}  // namespace detail

/// Runs `f(args...)` on `ex`; `ex`'s execution context must outlive the operation.
template <class Executor, class F, class... Rest>
requires(boost::asio::execution::is_executor<Executor>::value ||
         boost::asio::is_executor<Executor>::value) &&
    detail::offload_arguments<F, Rest...> auto run_in_executor(const Executor& ex,
                                                               F&& f,
                                                               Rest&&... rest) {
  return detail::initiate_with_arguments(
      detail::noted("run_in_executor", detail::initiate_run_in_executor<Executor>{ex}),
      std::forward<F>(f),
      std::forward<Rest>(rest)...);
}

}  // namespace ferry
