// ferry/bridge/src/runtime_impl.hpp — the runtime's private state, shared by its source files:
// runtime.cpp (construction, destruction, the io threads), run.cpp (run, SIGINT/SIGTERM) and
// context_lookup.cpp (from an executor to the runtime's pools and inbox).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>

#include "ferry/bridge/detail/loop_inbox.hpp"
#include "ferry/bridge/runtime.hpp"

namespace ferry {
namespace detail {

/// The runtime whose io thread the caller is (set by the io thread itself), or nullptr.
/// constinit: the offload hot path reads it from another file without a TLS init wrapper.
extern constinit thread_local runtime* current_runtime;

/// SIGINT and SIGTERM watched for the run in progress (run.cpp).
struct run_signals;

}  // namespace detail

struct runtime::impl {
  impl(boost::asio::io_context& io,
       std::chrono::nanoseconds spin,
       std::size_t spin_limit,
       std::size_t workers,
       std::chrono::nanoseconds batch_window)
      : inbox(io, spin, spin_limit, workers, batch_window) {}

  /// The fast lane from the runtime's cpu_pool back to its loop (loop_inbox.hpp), reached by
  /// detail::current_inbox.
  detail::loop_inbox inbox;
  /// Threads that are not the runtime's (another pool, another executor) posting a completion
  /// to io_ right now; the destructor waits for them before io_ goes (detail::foreign_posters).
  std::atomic<std::size_t> foreign_posters{0};
  /// The signal watch of the run in progress; under run_mutex_.
  std::shared_ptr<detail::run_signals> signals;
};

}  // namespace ferry
