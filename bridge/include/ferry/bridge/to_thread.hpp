// ferry/bridge/to_thread.hpp — run a blocking call on the elastic blocking pool.
//
//   std::string text = co_await ferry::to_thread([&] { return read_whole_file(path); });
//
// For calls that block (legacy synchronous libraries, file I/O, sleeps): they run on a
// blocking_pool thread, never on the work-stealing pool, where a blocked worker is a lost core.
//
// Completion signature, tokens, resume executor, cancellation, lifetime and errors: exactly as
// `ferry::offload` (offload.hpp). Cancellation before the call starts completes at once with
// operation_aborted and the call never runs; after it started, the `std::stop_token` it received
// (if any) is stopped and the operation completes when the call returns.
//
// Which pool: `to_thread(pool, f)` uses `pool`; `to_thread(f)` the blocking_pool of the runtime
// that owns the handler's executor's context, otherwise a process-wide default (64 threads).
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
    target.submit(op::create(std::forward<Handler>(handler), std::forward<F>(f), nullptr));
  }
};

}  // namespace detail

/// Runs the blocking call `f` on the handler's runtime's blocking_pool.
template <detail::offloadable F, class Token = boost::asio::use_awaitable_t<>>
auto to_thread(F&& f, Token&& token = {}) {
  detail::check_offload_result<F>();
  return detail::noted_initiate<Token, detail::offload_signature_t<F>>(
      "to_thread", detail::initiate_to_thread{nullptr}, token, std::forward<F>(f));
}

/// Runs the blocking call `f` on `pool`, which must outlive the operation.
template <detail::offloadable F, class Token = boost::asio::use_awaitable_t<>>
auto to_thread(blocking_pool& pool, F&& f, Token&& token = {}) {
  detail::check_offload_result<F>();
  return detail::noted_initiate<Token, detail::offload_signature_t<F>>(
      "to_thread", detail::initiate_to_thread{&pool}, token, std::forward<F>(f));
}

}  // namespace ferry
