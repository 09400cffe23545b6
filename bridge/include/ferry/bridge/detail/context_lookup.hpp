// ferry/bridge/detail/context_lookup.hpp — from a handler's executor to the pools that serve it.
#pragma once

#include <boost/asio/execution.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/query.hpp>

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

/// The process-wide pools, created on first use (hardware concurrency; 64 blocking threads).
cpu_pool& default_cpu_pool();
blocking_pool& default_blocking_pool();

}  // namespace ferry::detail
