// ferry/bridge/detail/context_lookup.hpp — from a handler's executor to the pools that serve it.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/query.hpp>
#include <cstddef>
#include <type_traits>

namespace ferry {
class cpu_pool;
class blocking_pool;
}  // namespace ferry

namespace ferry::detail {

/// The execution context behind an executor (standard or Networking TS style).
template <class Executor>
boost::asio::execution_context& context_of(const Executor& ex) {
  if constexpr (boost::asio::execution::is_executor<Executor>::value) {
    return boost::asio::query(ex, boost::asio::execution::context);
  } else {
    return ex.context();
  }
}

/// The cpu_pool that serves work started from `ctx`: the runtime's pool when `ctx` is a
/// runtime's io_context (or its cpu_pool), the pool itself when `ctx` is a cpu_pool, otherwise
/// the process-wide default pool. Lock-free on a runtime's own io threads.
cpu_pool& cpu_pool_for(boost::asio::execution_context& ctx);

/// The blocking_pool that serves work started from `ctx` (same rules as cpu_pool_for).
blocking_pool& blocking_pool_for(boost::asio::execution_context& ctx);

class loop_inbox;

/// When `ctx` is a runtime's io_context and `target` (where the work runs, hence who posts the
/// completion) is not one of that runtime's pools: the count of foreign threads posting to it,
/// which the runtime's destructor waits to see at zero (it stops its loop without waiting for
/// outstanding work, so a post from a thread it does not own must be waited for). Otherwise
/// nullptr: the runtime drains its own pools before its io_context goes.
std::atomic<std::size_t>* foreign_posters(boost::asio::execution_context& ctx,
                                          const boost::asio::execution_context& target) noexcept;

/// The inbox of the runtime whose io thread calls, when `ctx` is that runtime's io_context and
/// `pool` its cpu_pool; otherwise nullptr.
loop_inbox* current_inbox(const boost::asio::execution_context& ctx, const cpu_pool& pool) noexcept;

/// The inbox through which an offload whose handler runs on `ex` may complete: any executor
/// that runs on the calling runtime's io_context qualifies — the io_context's own, a strand of
/// it (a task_group child, a server connection), or another wrapper of it. The inbox delivers
/// on the loop and dispatches to the executor, which keeps its own ordering (a strand's
/// handlers still never run concurrently and keep their order).
template <class Executor>
loop_inbox* inbox_for(const Executor& ex, const cpu_pool& pool) noexcept {
  if constexpr (std::is_same_v<Executor, boost::asio::io_context::executor_type>) {
    return current_inbox(ex.context(), pool);
  } else if constexpr (std::is_same_v<Executor, boost::asio::any_io_executor>) {
    if (!ex) return nullptr;
    if (const auto* io = ex.template target<boost::asio::io_context::executor_type>()) {
      return current_inbox(io->context(), pool);
    }
    return current_inbox(boost::asio::query(ex, boost::asio::execution::context), pool);
  } else if constexpr (boost::asio::execution::is_executor<Executor>::value) {
    return current_inbox(boost::asio::query(ex, boost::asio::execution::context), pool);
  } else {
    return nullptr;
  }
}

/// The process-wide pools, created on first use (hardware concurrency; 64 blocking threads).
cpu_pool& default_cpu_pool();
blocking_pool& default_blocking_pool();

}  // namespace ferry::detail
