// ferry/bridge/offload.hpp — run CPU work on the work-stealing pool, resume on your own executor.
//
//   int n = co_await ferry::offload([&] { return count_primes(1'000'000); });
//   auto doc = co_await ferry::offload(parse, std::move(body));   // f plus arguments
//
// Arguments: `offload(f, args...)` and `offload(pool, f, args...)` run `f(args...)`, as asyncio's
// `to_thread(func, *args)`. `f` and the arguments are decay-copied into the operation (as
// `std::thread` and `std::bind_front` do; `std::ref(x)` passes a reference) and `f` is invoked on
// the pool, as an rvalue, with them moved in. If `f(std::stop_token, args...)` is valid, `f`
// receives the operation's stop token first (as `std::jthread` does); otherwise `f(args...)`.
// This is the form to use when data moves into the work: on g++ 11/12 a capturing lambda that
// owns data, written inside the `co_await`, is destroyed twice (docs/guide.md, "Known compiler
// issues"); arguments are owned by the operation, not by the `co_await` expression.
//
// Which argument is the completion token (Asio's rule, made precise): in `offload(f, a1, ...,
// an)` the last argument `an` is the token iff `f(a1, ..., an-1)` is a valid call (with or
// without a leading stop token) and `an` is a `boost::asio::completion_token_for` its completion
// signature — Asio's tokens, or any callable accepting `(std::exception_ptr, R)`, i.e. a plain
// callback. Otherwise every argument goes to `f` and the token is `use_awaitable`. So
// `offload(f, callback)` is the callback form; to pass a token-like callable to `f` as its last
// argument, write the token after it: `offload(f, callback_for_f, use_awaitable)`. A
// `cpu_pool&` first is always the pool (`offload(pool, f, ...)`); a pool (it can be neither
// copied nor moved), or anything `f` must share rather than own, reaches `f` through
// `std::ref`. Executors, strings and other values that are not completion tokens are arguments
// wherever they are.
//
// `offload` is an Asio asynchronous operation: any completion token works (`use_awaitable`, the
// default; `deferred`, `use_future`, a callback, `as_tuple(...)`, `bind_executor(...)`).
//
// Completion signature: `void(std::exception_ptr, R)`, or `void(std::exception_ptr)` when `f`
// returns void (R is f's return type, decayed; it must be move- and default-constructible).
// With `use_awaitable` the exception is rethrown at the `co_await`, type and message intact.
//
// Which pool: `offload(pool, f)` uses `pool`. `offload(f)` uses the cpu_pool of the runtime that
// owns the handler's executor's execution context (a coroutine on a runtime's io_context, or on
// its cpu_pool); for a coroutine on another cpu_pool, that pool; otherwise a process-wide default
// cpu_pool sized to the machine.
//
// Resumes on: the completion handler's associated executor (for a coroutine, its own executor;
// never a pool thread), never inline in `offload` itself. When that executor runs on the
// runtime's io_context (its own, a strand of it), the completion goes through the runtime's
// inbox and is dispatched to it on the loop; otherwise it is posted. Outstanding work is held
// on that executor while the operation is in flight, so its io_context does not run out of
// work; the completion never waits for the thread that finished `f`.
//
// Cancellation: through the handler's cancellation slot; `terminal`, `partial` and `total` are
// all honoured (a coroutine's own filter may let fewer through: Asio's default is terminal).
//  - Before `f` starts (queued in the pool, or waiting for an admission slot): `f` never runs and
//    the operation completes at once, even when the pool is saturated, with
//    `system_error(asio::error::operation_aborted)`.
//  - After `f` started: stop is requested on the `std::stop_token` `f` received (if it takes one)
//    and the operation completes when `f` returns, with `f`'s own outcome. The awaiter is never
//    resumed while `f` may still touch memory it borrowed. `f` must poll its token to stop early.
//  As for every Asio operation, cancellation must be emitted from the handler's own execution
//  context (its strand, or its single-threaded io_context).
//
// Backpressure: at most the pool's admission limit of offloads are queued or running at once
// (`runtime_options::admission`, core/admission.hpp: adaptive by default, following the time
// admitted offloads wait for a worker; or fixed: `max_offloads_in_flight = N`,
// `cpu_pool(threads, N)`); the others wait asynchronously in FIFO order for a slot — no thread
// blocks. With `admission_policy::reject_when_full` they complete at once with
// `ferry::offload_rejected` instead, as `try_offload`'s do.
//
// Lifetime: `f` (and the arguments) are decay-copied into the operation and destroyed on the
// pool thread after it ran (or with the operation if it never ran). What `f` borrows by reference
// must outlive the operation — with `co_await`, the awaiting frame's locals do.
//
// Thread safety: may be called from any thread; each call is an independent operation.
//
// Complexity: one allocation with the handler's allocator (Asio's thread-local recycling
// allocator by default), one task from oneTBB's small-object pool; the hand back to an
// io_context executor reuses a buffer inside the operation. No mutex of ferry's unless an
// admission bound is set and reached; no thread is created.
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <stdexcept>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "ferry/bridge/detail/bound_call.hpp"
#include "ferry/bridge/detail/context_lookup.hpp"
#include "ferry/bridge/detail/offload_op.hpp"
#include "ferry/core/cpu_pool.hpp"
#include "ferry/io/detail/task_registry.hpp"

namespace ferry {

/// What `try_offload` (try_offload.hpp) completes with when the pool's admission limit is
/// reached — and `offload` too, under `admission_policy::reject_when_full`.
class offload_rejected : public std::runtime_error {
 public:
  offload_rejected() : std::runtime_error("ferry: every admission slot of the cpu_pool is taken") {}
};

namespace detail {

struct initiate_offload {
  cpu_pool* pool;                 // nullptr: look the pool up from the handler's executor
  bool refuse_when_full = false;  // try_offload: refuse instead of waiting for a slot

  template <class Handler, class F>
  void operator()(Handler&& handler, F&& f) const {
    const auto ex = boost::asio::get_associated_executor(handler);
    cpu_pool& target = pool != nullptr ? *pool : cpu_pool_for(context_of(ex));
    loop_inbox* inbox = inbox_for(ex, target);
    using op = offload_op<std::decay_t<Handler>, std::decay_t<F>>;
    op* o = op::create(std::forward<Handler>(handler), std::forward<F>(f), &target, target);
    if (inbox != nullptr) o->complete_through(inbox);
    if (!refuse_when_full && !target.admission().reject_when_full) {
      pool_access::submit_bounded(target, o);
    } else if (!pool_access::try_submit_bounded(target, o)) {
      o->refuse(std::make_exception_ptr(offload_rejected()));
    }
  }
};

}  // namespace detail

/// For an offloaded function that gives up when asked: throws
/// `boost::system::system_error(boost::asio::error::operation_aborted)` if stop was requested on
/// `st`. The operation then completes as cancelled, so `ferry::timeout` reports a
/// `timeout_error` and `||` a cancelled loser — whereas a function that returns normally after a
/// stop request delivers its (partial) value, which is what callers then receive.
inline void throw_if_stop_requested(const std::stop_token& st) {
  if (st.stop_requested()) {
    throw boost::system::system_error(boost::asio::error::operation_aborted);
  }
}

/// Runs `f(args...)` on the cpu_pool of the handler's runtime (see the file comment for the
/// contract and for which argument is the completion token).
template <class F, class... Rest>
requires detail::offload_arguments<F, Rest...>
auto offload(F&& f, Rest&&... rest) {
  return detail::initiate_with_arguments(
      detail::noted("offload", detail::initiate_offload{nullptr}),
      std::forward<F>(f),
      std::forward<Rest>(rest)...);
}

/// Runs `f(args...)` on `pool`, which must outlive the operation.
template <class F, class... Rest>
requires detail::offload_arguments<F, Rest...>
auto offload(cpu_pool& pool, F&& f, Rest&&... rest) {
  return detail::initiate_with_arguments(detail::noted("offload", detail::initiate_offload{&pool}),
                                         std::forward<F>(f),
                                         std::forward<Rest>(rest)...);
}

}  // namespace ferry
