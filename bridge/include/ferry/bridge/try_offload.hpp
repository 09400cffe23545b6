// ferry/bridge/try_offload.hpp — offload, or refuse at once when the pool's bound is full.
//
//   try {
//     auto html = co_await ferry::try_offload(render, std::move(page));
//   } catch (const ferry::offload_rejected&) {
//     co_return service_unavailable();   // 503 + Retry-After, instead of a queue
//   }
//
// `offload` with an admission bound (`runtime_options::max_offloads_in_flight`, or
// `cpu_pool(threads, N)`) waits for a slot: right for a batch job, wrong for a server that would
// rather shed load than queue it. `try_offload` is the same operation with the other policy: if
// a slot is free now and nobody is waiting for one, `f` is admitted exactly as `offload` would
// admit it; otherwise the operation completes at once with `ferry::offload_rejected` and `f` never
// runs (and is destroyed with the operation). A pool without a bound admits everything. An
// offload holds its slot until its function has returned on the worker, which may be a moment
// after its awaiter has resumed: an offload started right after another one completes can still
// find that slot taken.
//
// Everything else is `offload`'s contract (offload.hpp): the pool it picks, the completion
// signature `void(std::exception_ptr[, R])`, any completion token, resumes on the handler's
// executor (a refusal too: posted, never inline), cancellation before and after `f` starts,
// `std::stop_token`, lifetime, thread safety.
//
// Counting: a refusal is counted in `cpu_pool_stats::rejected` (and `runtime::stats().cpu`);
// it is not a submission.
#pragma once

#include <utility>

#include "ferry/bridge/offload.hpp"
#include "ferry/core/cpu_pool.hpp"
#include "ferry/io/detail/task_registry.hpp"

namespace ferry {

/// Runs `f(args...)` on the cpu_pool of the handler's runtime if an admission slot is free now;
/// otherwise completes with `offload_rejected` (see the file comment; the arguments and the
/// token follow `offload`'s rule).
template <class F, class... Rest>
requires detail::offload_arguments<F, Rest...>
auto try_offload(F&& f, Rest&&... rest) {
  return detail::initiate_with_arguments(
      detail::noted("try_offload", detail::initiate_offload{nullptr, true}),
      std::forward<F>(f),
      std::forward<Rest>(rest)...);
}

/// Runs `f(args...)` on `pool` (which must outlive the operation) if a slot is free now;
/// otherwise completes with `offload_rejected`.
template <class F, class... Rest>
requires detail::offload_arguments<F, Rest...>
auto try_offload(cpu_pool& pool, F&& f, Rest&&... rest) {
  return detail::initiate_with_arguments(
      detail::noted("try_offload", detail::initiate_offload{&pool, true}),
      std::forward<F>(f),
      std::forward<Rest>(rest)...);
}

}  // namespace ferry
