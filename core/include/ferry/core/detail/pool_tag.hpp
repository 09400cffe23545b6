// ferry/core/detail/pool_tag.hpp — lets code holding only an execution_context& find the pool.
#pragma once

#include <boost/asio/execution_context.hpp>

namespace ferry::detail {

/// A service each pool adds to itself. `boost::asio::execution_context` is not polymorphic, so
/// "is this context a cpu_pool?" is answered by `has_service<pool_tag<cpu_pool>>(ctx)`.
template <class Pool>
class pool_tag : public boost::asio::execution_context::service {
 public:
  static inline boost::asio::execution_context::id id;

  explicit pool_tag(boost::asio::execution_context& ctx, Pool* pool = nullptr)
      : boost::asio::execution_context::service(ctx), pool_(pool) {}

  Pool* pool() const noexcept { return pool_; }

 private:
  void shutdown() override {}
  Pool* pool_;
};

/// The pool behind `ctx`, or nullptr when `ctx` is not a `Pool`. Takes the context's service
/// registry lock: callers try a lock-free check first.
template <class Pool>
Pool* pool_from_context(boost::asio::execution_context& ctx) {
  if (!boost::asio::has_service<pool_tag<Pool>>(ctx)) return nullptr;
  return boost::asio::use_service<pool_tag<Pool>>(ctx).pool();
}

}  // namespace ferry::detail
