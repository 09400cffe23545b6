// ferry/io/detail/completion_executor.hpp — how ferry's operations hand a result back.
//
// Every ferry operation (offload, the toolkit's waits) completes by posting to the completion
// handler's associated executor, never inline, holding outstanding work on it meanwhile.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/require.hpp>
#include <optional>
#include <type_traits>
#include <utility>

namespace ferry::detail {

/// Holds the handler's executor with outstanding work tracked while the operation is in flight,
/// and posts the completion to it with the completion's own allocator.
template <class Executor>
class completion_executor {
 public:
  explicit completion_executor(const Executor& ex)
      : ex_(boost::asio::prefer(ex, boost::asio::execution::outstanding_work.tracked)) {}

  template <class Fn, class Alloc>
  void post(Fn&& fn, const Alloc& alloc) {
    namespace execution = boost::asio::execution;
    if constexpr (execution::is_executor<Executor>::value) {
      execution::execute(boost::asio::prefer(boost::asio::require(ex_, execution::blocking.never),
                                             execution::relationship.fork,
                                             execution::allocator(alloc)),
                         std::forward<Fn>(fn));
    } else {
      ex_.post(std::forward<Fn>(fn), alloc);
    }
  }

 private:
  std::decay_t<decltype(boost::asio::prefer(std::declval<const Executor&>(),
                                            boost::asio::execution::outstanding_work.tracked))>
      ex_;
};

/// Coroutines on an io_context have an any_io_executor: posting through the polymorphic wrapper
/// costs two allocations, so when its target is a plain io_context executor, post to that.
template <>
class completion_executor<boost::asio::any_io_executor> {
 public:
  explicit completion_executor(const boost::asio::any_io_executor& ex) {
    if (auto* io = ex.target<boost::asio::io_context::executor_type>()) {
      io_.emplace(boost::asio::prefer(*io, boost::asio::execution::outstanding_work.tracked));
    } else {
      any_ = boost::asio::prefer(ex, boost::asio::execution::outstanding_work.tracked);
    }
  }

  template <class Fn, class Alloc>
  void post(Fn&& fn, const Alloc& alloc) {
    namespace execution = boost::asio::execution;
    if (io_) {
      boost::asio::require(*io_, execution::blocking.never, execution::allocator(alloc))
          .execute(std::forward<Fn>(fn));
    } else {
      execution::execute(boost::asio::prefer(boost::asio::require(any_, execution::blocking.never),
                                             execution::relationship.fork,
                                             execution::allocator(alloc)),
                         std::forward<Fn>(fn));
    }
  }

 private:
  using tracked_io = std::decay_t<decltype(boost::asio::prefer(
      std::declval<const boost::asio::io_context::executor_type&>(),
      boost::asio::execution::outstanding_work.tracked))>;
  std::optional<tracked_io> io_;
  boost::asio::any_io_executor any_;
};

}  // namespace ferry::detail
