// ferry/bridge/src/context_lookup.cpp — from a handler's executor to the pools that serve it:
// the runtime's own pools and inbox, a pool's own context, or the process-wide default pools.
#include "ferry/bridge/detail/context_lookup.hpp"

#include <boost/asio/execution_context.hpp>

#include "ferry/bridge/detail/runtime_link.hpp"
#include "ferry/core/blocking_pool.hpp"
#include "ferry/core/cpu_pool.hpp"
#include "ferry/core/detail/pool_tag.hpp"
#include "runtime_impl.hpp"

namespace ferry::detail {
namespace {

runtime* runtime_of(boost::asio::execution_context& ctx) {
  if (!boost::asio::has_service<runtime_link>(ctx)) return nullptr;
  return boost::asio::use_service<runtime_link>(ctx).owner();
}

}  // namespace

std::atomic<std::size_t>* foreign_posters(boost::asio::execution_context& ctx,
                                          const boost::asio::execution_context& target) noexcept {
  runtime* rt = current_runtime;
  if (rt == nullptr || &ctx != &rt->io_) {
    try {
      rt = runtime_of(ctx);
    } catch (...) {
      return nullptr;
    }
    if (rt == nullptr || &ctx != &rt->io_) return nullptr;
  }
  const bool own_pool = &target == rt->cpu_.get() || &target == rt->blocking_.get();
  return own_pool ? nullptr : &rt->impl_->foreign_posters;
}

loop_inbox* current_inbox(const boost::asio::execution_context& ctx,
                          const cpu_pool& pool) noexcept {
  runtime* rt = current_runtime;
  if (rt == nullptr || &ctx != &rt->io_ || &pool != rt->cpu_.get()) return nullptr;
  return &rt->impl_->inbox;
}

cpu_pool& cpu_pool_for(boost::asio::execution_context& ctx) {
  if (runtime* rt = current_runtime; rt != nullptr && &ctx == &rt->io_context()) return rt->cpu();
  if (cpu_pool* pool = cpu_pool::current(); pool != nullptr && &ctx == pool) return *pool;
  // Slow paths (the contexts' service registry lock): a strand or executor of another thread.
  if (runtime* rt = runtime_of(ctx)) return rt->cpu();
  if (cpu_pool* pool = pool_from_context<cpu_pool>(ctx)) return *pool;
  return default_cpu_pool();
}

blocking_pool& blocking_pool_for(boost::asio::execution_context& ctx) {
  if (runtime* rt = current_runtime; rt != nullptr && &ctx == &rt->io_context()) {
    return rt->blocking();
  }
  if (runtime* rt = runtime_of(ctx)) return rt->blocking();
  if (blocking_pool* pool = pool_from_context<blocking_pool>(ctx)) return *pool;
  return default_blocking_pool();
}

cpu_pool& default_cpu_pool() {
  static cpu_pool pool;
  return pool;
}

blocking_pool& default_blocking_pool() {
  static blocking_pool pool;
  return pool;
}

}  // namespace ferry::detail
