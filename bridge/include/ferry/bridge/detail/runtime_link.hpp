// ferry/bridge/detail/runtime_link.hpp — marks an execution context as belonging to a runtime.
#pragma once

#include <boost/asio/execution_context.hpp>

namespace ferry {
class runtime;
}

namespace ferry::detail {

/// A service added to a runtime's io_context and cpu_pool, so that an operation started from
/// any executor on them (the io_context's, a strand of it, the pool's) finds the runtime.
class runtime_link : public boost::asio::execution_context::service {
 public:
  static inline boost::asio::execution_context::id id;

  explicit runtime_link(boost::asio::execution_context& ctx, runtime* owner = nullptr)
      : boost::asio::execution_context::service(ctx), owner_(owner) {}

  /// The runtime; nullptr only for a link created by use_service without has_service first.
  runtime* owner() const noexcept { return owner_; }

 private:
  void shutdown() override {}
  runtime* owner_;
};

}  // namespace ferry::detail
