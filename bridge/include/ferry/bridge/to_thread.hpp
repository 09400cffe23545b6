// ferry/bridge/to_thread.hpp — run a blocking call on the elastic blocking pool.
//
//   std::string text = co_await ferry::to_thread([&] { return read_whole_file(path); });
//   std::string same = co_await ferry::to_thread(read_whole_file, path);   // f plus arguments
//
// For calls that block (legacy synchronous libraries, file I/O, sleeps): they run on a
// blocking_pool thread, never on the work-stealing pool, where a blocked worker is a lost core.
//
// Arguments, completion signature, tokens (and which argument is the token), resume executor,
// cancellation, lifetime and errors: exactly as `ferry::offload` (offload.hpp) —
// `to_thread(f, args...)` is asyncio's `to_thread(func, *args)`, a `blocking_pool&` first is the
// pool. Cancellation before the call starts completes at once with operation_aborted and the
// call never runs; after it started, the `std::stop_token` it received (if any) is stopped and
// the operation completes when the call returns.
//
// Which pool: `to_thread(pool, f, args...)` uses `pool`; `to_thread(f, args...)` the
// blocking_pool of the runtime that owns the handler's executor's context, otherwise a
// process-wide default (64 threads).
// Not subject to `max_offloads_in_flight`: the blocking pool's thread limit bounds it, and calls
// beyond that limit wait in the pool's FIFO queue.
//
// Complexity: one allocation (the operation) and one lock of the pool's queue per call; a
// thread is created only when no idle thread is waiting and the limit is not reached.
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <type_traits>
#include <utility>

#include "ferry/bridge/detail/bound_call.hpp"
#include "ferry/bridge/detail/context_lookup.hpp"
#include "ferry/bridge/detail/offload_op.hpp"
#include "ferry/core/blocking_pool.hpp"
#include "ferry/io/detail/task_registry.hpp"

namespace ferry {
namespace detail {

struct initiate_to_thread {
  blocking_pool* pool;  // nullptr: look the pool up from the handler's executor

  template <class Handler, class F>
  void operator()(Handler&& handler, F&& f) const {
    blocking_pool& target =
        pool != nullptr
            ? *pool
            : blocking_pool_for(context_of(boost::asio::get_associated_executor(handler)));
    using op = offload_op<std::decay_t<Handler>, std::decay_t<F>>;
    pool_access::submit(
        target, op::create(std::forward<Handler>(handler), std::forward<F>(f), nullptr, target));
  }
};

}  // namespace detail

/// Runs the blocking call `f(args...)` on the handler's runtime's blocking_pool.
template <class F, class... Rest>
requires detail::offload_arguments<F, Rest...>
auto to_thread(F&& f, Rest&&... rest) {
  return detail::initiate_with_arguments(
      detail::noted("to_thread", detail::initiate_to_thread{nullptr}),
      std::forward<F>(f),
      std::forward<Rest>(rest)...);
}

/// Runs the blocking call `f(args...)` on `pool`, which must outlive the operation.
template <class F, class... Rest>
requires detail::offload_arguments<F, Rest...>
auto to_thread(blocking_pool& pool, F&& f, Rest&&... rest) {
  return detail::initiate_with_arguments(
      detail::noted("to_thread", detail::initiate_to_thread{&pool}),
      std::forward<F>(f),
      std::forward<Rest>(rest)...);
}

}  // namespace ferry
