// ferry/bridge/try_offload.hpp — offload, or refuse at once when the pool's bound is full.
//
//   try {
//     auto html = co_await ferry::try_offload([&page] { return render(page); });
//   } catch (const ferry::offload_rejected&) {
//     co_return service_unavailable();   // 503 + Retry-After, instead of a queue
//   }
//
// `offload` with an admission bound (`runtime_options::max_offloads_in_flight`, or
// `cpu_pool(threads, N)`) waits for a slot: right for a batch job, wrong for a server that would
// rather shed load than queue it. `try_offload` is the same operation with the other policy: if
// a slot is free now and nobody is waiting for one, `f` is admitted exactly as `offload` would
// admit it; otherwise the operation completes at once with `ferry::offload_rejected` and `f` never
// runs (and is destroyed with the operation). A pool without a bound admits everything.
//
// Everything else is `offload`'s contract (offload.hpp): the pool it picks, the completion
// signature `void(std::exception_ptr[, R])`, any completion token, resumes on the handler's
// executor (a refusal too: posted, never inline), cancellation before and after `f` starts,
// `std::stop_token`, lifetime, thread safety.
//
// Counting: a refusal is counted in `cpu_pool_stats::rejected` (and `runtime::stats().cpu`);
// it is not a submission.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>
#include <stdexcept>
#include <utility>

#include "ferry/bridge/detail/context_lookup.hpp"
#include "ferry/bridge/detail/offload_op.hpp"
#include "ferry/core/cpu_pool.hpp"
#include "ferry/io/detail/task_registry.hpp"

namespace ferry {

/// What `try_offload` completes with when the pool's admission bound is full.
class offload_rejected : public std::runtime_error {
 public:
  offload_rejected()
      : std::runtime_error("ferry::try_offload: every admission slot of the cpu_pool is taken") {}
};

namespace detail {

struct initiate_try_offload {
  cpu_pool* pool;  // nullptr: look the pool up from the handler's executor

  template <class Handler, class F>
  void operator()(Handler&& handler, F&& f) const {
    const auto ex = boost::asio::get_associated_executor(handler);
    cpu_pool& target = pool != nullptr ? *pool : cpu_pool_for(context_of(ex));
    loop_inbox* inbox = inbox_for(ex, target);
    using op = offload_op<std::decay_t<Handler>, std::decay_t<F>>;
    op* o = op::create(std::forward<Handler>(handler), std::forward<F>(f), &target);
    if (inbox != nullptr) o->complete_through(inbox);
    if (!target.try_submit_bounded(o)) o->refuse(std::make_exception_ptr(offload_rejected()));
  }
};

}  // namespace detail

/// Runs `f` on the cpu_pool of the handler's runtime if an admission slot is free now;
/// otherwise completes with `offload_rejected` (see the file comment).
template <detail::offloadable F, class Token = boost::asio::use_awaitable_t<>>
auto try_offload(F&& f, Token&& token = {}) {
  detail::check_offload_result<F>();
  return boost::asio::async_initiate<Token, detail::offload_signature_t<F>>(
      detail::noted("try_offload", detail::initiate_try_offload{nullptr}),
      token,
      std::forward<F>(f));
}

/// Runs `f` on `pool` (which must outlive the operation) if a slot is free now; otherwise
/// completes with `offload_rejected`.
template <detail::offloadable F, class Token = boost::asio::use_awaitable_t<>>
auto try_offload(cpu_pool& pool, F&& f, Token&& token = {}) {
  detail::check_offload_result<F>();
  return boost::asio::async_initiate<Token, detail::offload_signature_t<F>>(
      detail::noted("try_offload", detail::initiate_try_offload{&pool}), token, std::forward<F>(f));
}

}  // namespace ferry
