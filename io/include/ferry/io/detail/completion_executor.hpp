// ferry/io/detail/completion_executor.hpp — how ferry's operations hand a result back.
//
// Every ferry operation (offload, the toolkit's waits) completes by posting to the completion
// handler's associated executor, never inline, holding outstanding work on it meanwhile.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/require.hpp>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>

namespace ferry::detail {

// Two copies of the executor are kept: a tracked one, which keeps the handler's context from
// running out of work while the operation is in flight, and an untracked one to post through.
// The tracked copy dies with the operation, in the completion, on the handler's own executor.
//
// Posting from another thread leaves a window: once the completion is queued, it may run, and
// the program may go on to destroy the handler's context, while the posting thread is still
// inside `execute` (Asio signals the scheduler after unlocking it) or destroying the temporary
// executors it made (a strand copy may hold the last reference to its implementation). So the
// poster raises `posted_` when it is entirely done, and the completion waits for it
// (`wait_posted`) before it does anything else: the window is a few instructions, the wait
// almost always finds the flag already up.

/// Holds the handler's executor with outstanding work tracked while the operation is in flight,
/// and posts the completion to it with the completion's own allocator.
/// Tells the completion when the posting thread no longer touches anything; see above. Moving
/// a completion_executor out of its operation (the first thing a completion does) waits for it.
class post_flag {
 public:
  post_flag() = default;
  post_flag(post_flag&& other) noexcept { other.wait(); }
  post_flag& operator=(post_flag&&) = delete;

  /// Marks a post in progress until the returned scope ends (also when the post throws).
  [[nodiscard]] auto scope() noexcept {
    state_.store(posting, std::memory_order_relaxed);
    struct ender {
      post_flag* flag;
      ~ender() { flag->state_.store(done, std::memory_order_release); }
    };
    return ender{this};
  }

  /// Returns once no post is in progress (at once when none was started).
  void wait() const noexcept {
    for (int spins = 0; state_.load(std::memory_order_acquire) == posting; ++spins) {
      if (spins > 64) std::this_thread::yield();
    }
  }

 private:
  enum : unsigned char { idle, posting, done };
  std::atomic<unsigned char> state_{idle};
};

/// The function object an operation posts to complete itself. It owns the operation until it
/// runs (`op->complete(true)`: deliver) or is destroyed unrun because its execution context shut
/// down (`op->complete(false)`: destroy without invoking). `Op` befriends it and provides
/// `complete(bool)`, `handler_allocator` and the handler's allocator as `alloc_`.
template <class Op>
class owning_completion {
 public:
  using allocator_type = typename Op::handler_allocator;

  explicit owning_completion(Op* op) noexcept : op_(op) {}
  owning_completion(owning_completion&& other) noexcept : op_(std::exchange(other.op_, nullptr)) {}
  owning_completion& operator=(owning_completion&&) = delete;
  ~owning_completion() {
    if (op_ != nullptr) op_->complete(false);
  }

  allocator_type get_allocator() const noexcept { return op_->alloc_; }
  void operator()() { std::exchange(op_, nullptr)->complete(true); }

 private:
  Op* op_;
};

template <class Executor, bool = boost::asio::execution::is_executor<Executor>::value>
class completion_executor {
 public:
  explicit completion_executor(const Executor& ex)
      : work_(boost::asio::prefer(ex, boost::asio::execution::outstanding_work.tracked)),
        post_(boost::asio::prefer(ex, boost::asio::execution::outstanding_work.untracked)) {}

  template <class Fn, class Alloc>
  void post(Fn&& fn, const Alloc& alloc) {
    namespace execution = boost::asio::execution;
    const auto posting = posted_.scope();
    execution::execute(boost::asio::prefer(boost::asio::require(post_, execution::blocking.never),
                                           execution::relationship.fork,
                                           execution::allocator(alloc)),
                       std::forward<Fn>(fn));
  }

  void wait_posted() const noexcept { posted_.wait(); }

 private:
  post_flag posted_;
  std::decay_t<decltype(boost::asio::prefer(std::declval<const Executor&>(),
                                            boost::asio::execution::outstanding_work.tracked))>
      work_;
  std::decay_t<decltype(boost::asio::prefer(std::declval<const Executor&>(),
                                            boost::asio::execution::outstanding_work.untracked))>
      post_;
};

/// A Networking TS style executor: work is counted with a work guard.
template <class Executor>
class completion_executor<Executor, false> {
 public:
  explicit completion_executor(const Executor& ex) : work_(ex), post_(ex) {}

  template <class Fn, class Alloc>
  void post(Fn&& fn, const Alloc& alloc) {
    const auto posting = posted_.scope();
    post_.post(std::forward<Fn>(fn), alloc);
  }

  void wait_posted() const noexcept { posted_.wait(); }

 private:
  post_flag posted_;
  boost::asio::executor_work_guard<Executor> work_;
  Executor post_;
};

/// Coroutines on an io_context have an any_io_executor: posting through the polymorphic wrapper
/// costs two allocations, so when its target is a plain io_context executor, post to that.
template <>
class completion_executor<boost::asio::any_io_executor, true> {
 public:
  explicit completion_executor(const boost::asio::any_io_executor& ex) {
    if (auto* io = ex.target<boost::asio::io_context::executor_type>()) {
      io_work_.emplace(boost::asio::prefer(*io, boost::asio::execution::outstanding_work.tracked));
      io_post_.emplace(*io);
    } else {
      any_work_ = boost::asio::prefer(ex, boost::asio::execution::outstanding_work.tracked);
      any_post_ = boost::asio::prefer(ex, boost::asio::execution::outstanding_work.untracked);
    }
  }

  template <class Fn, class Alloc>
  void post(Fn&& fn, const Alloc& alloc) {
    namespace execution = boost::asio::execution;
    const auto posting = posted_.scope();
    if (io_post_) {
      boost::asio::require(*io_post_, execution::blocking.never, execution::allocator(alloc))
          .execute(std::forward<Fn>(fn));
    } else {
      execution::execute(
          boost::asio::prefer(boost::asio::require(any_post_, execution::blocking.never),
                              execution::relationship.fork,
                              execution::allocator(alloc)),
          std::forward<Fn>(fn));
    }
  }

  void wait_posted() const noexcept { posted_.wait(); }

 private:
  post_flag posted_;
  using tracked_io = std::decay_t<decltype(boost::asio::prefer(
      std::declval<const boost::asio::io_context::executor_type&>(),
      boost::asio::execution::outstanding_work.tracked))>;
  std::optional<tracked_io> io_work_;
  std::optional<boost::asio::io_context::executor_type> io_post_;
  boost::asio::any_io_executor any_work_;
  boost::asio::any_io_executor any_post_;
};

}  // namespace ferry::detail
