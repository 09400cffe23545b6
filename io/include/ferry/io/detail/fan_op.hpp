// ferry/io/detail/fan_op.hpp — the operation behind gather, gather_settled, race and timeout.
//
// A fan operation starts a fixed set of child coroutines (detail/child.hpp) on the caller's
// executor and completes once every child has finished — never earlier, whatever happens: that
// is what makes gather, race and timeout structured (nothing they started outlives them).
//
//  - Policy: `fail_fast` (gather) asks the other children to stop at the first failure;
//    `first_wins` (race) at the first completion of any kind; `settle` (gather_settled, timeout)
//    never by itself.
//  - Outer cancellation (terminal, partial or total on the handler's slot) asks every child to
//    stop; the operation still completes only when they have all finished. The caller's slot
//    handler holds a weak_ptr, so a late emit after the operation is gone does nothing.
//  - Deadline (timeout): a steady_timer on the caller's executor asks every child to stop when it
//    fires. Its handler holds a weak_ptr; destroying the operation cancels the timer. A deadline
//    that has already passed (zero or negative) arms no timer: every child is marked stopped
//    before it starts, so the stop is emitted right after its first step, before anything else
//    the loop has ready (a sleep(0) due in the same reactor pass) can complete its operation.
//  - Completion: posted to the handler's associated executor (never inline) with outstanding
//    work held meanwhile, the handler's allocator used for the operation and the post. Signature
//    `void(std::exception_ptr, std::optional<Result>)`: a `Collect` policy turns the children's
//    outcomes into the result or the exception (the optional spares Result a default
//    constructor).
//
// Thread safety: children finish on their own strands, concurrently; the owner's mutex guards
// the bookkeeping (first failure and first completion by completion order, what was stopped and
// why). Stops are posted to the children's executors (child.hpp), never emitted here.
#pragma once

#include <array>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/system_executor.hpp>
#include <chrono>
#include <cstddef>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "ferry/detail/thread_annotations.hpp"
#include "ferry/io/detail/basic_op.hpp"
#include "ferry/io/detail/child.hpp"
#include "ferry/io/detail/deadline.hpp"
#include "ferry/io/task.hpp"

namespace ferry::detail {

enum class fan_policy { settle, fail_fast, first_wins };

/// Why the children were first asked to stop: the deadline (what timeout needs to know), or
/// anything else — outer cancellation, a failure under fail_fast, a winner under first_wins.
enum class fan_cause { none, deadline, other };

/// What a Collect policy is told once every child has finished.
struct fan_summary {
  std::exception_ptr first_error;  ///< the first failure, by completion order
  std::size_t winner = 0;          ///< the index of the first child to finish
  fan_cause cause = fan_cause::none;
  std::chrono::nanoseconds timeout{0};  ///< the timeout's duration (timeout only)
};

/// The non-template core: bookkeeping under the mutex.
class fan_base : public child_owner, public std::enable_shared_from_this<fan_base> {
 public:
  fan_base(const fan_base&) = delete;
  fan_base& operator=(const fan_base&) = delete;

  /// Asks every unfinished child to stop (outer cancellation, deadline). Any thread.
  void stop_children(fan_cause cause) noexcept {
    detail::lock_guard lock(mutex_);
    if (outstanding_ == 0) return;
    stop_all_locked(cause);
  }

  /// Before any child has started: every child is to be stopped at its first suspension point
  /// (child_starter emits the stop right after the child's first step). A deadline that has
  /// already passed uses this instead of a timer: a timer would fire in the same reactor pass as
  /// whatever the children wait for, and the stop, posted behind their completions, would
  /// arrive too late.
  void stop_before_start(fan_cause cause) noexcept {
    detail::lock_guard lock(mutex_);
    if (summary_.cause == fan_cause::none) summary_.cause = cause;
    for (std::size_t i = 0; i < count_; ++i) child_at(i).stop_requested = true;
  }

 protected:
  fan_base(fan_policy policy, std::size_t count) noexcept
      : policy_(policy), count_(count), outstanding_(count) {}
  virtual ~fan_base() = default;

  virtual child_base& child_at(std::size_t i) noexcept = 0;
  /// Posts the completion. Called once, without the lock, after the last child_done.
  virtual void finish() noexcept = 0;

  // Every child starts, even one stopped already: it is cancelled at its first suspension.
  bool may_start(const child_base&) noexcept override { return true; }

  bool stop_requested_for(const child_base& c) noexcept override {
    detail::lock_guard lock(mutex_);
    return c.stop_requested;
  }

  void child_done(child_base& c) noexcept override {
    bool last = false;
    {
      detail::lock_guard lock(mutex_);
      c.done = true;
      if (!has_winner_) {
        has_winner_ = true;
        summary_.winner = c.index;
        if (policy_ == fan_policy::first_wins) stop_all_locked(fan_cause::other);
      }
      if (c.error && !summary_.first_error) {
        summary_.first_error = c.error;
        if (policy_ == fan_policy::fail_fast) stop_all_locked(fan_cause::other);
      }
      last = --outstanding_ == 0;
    }
    if (last) finish();
  }

  /// Nothing could be started (out of memory while binding): every child is reported failed
  /// with `error` and the operation completes.
  void fail_start(std::exception_ptr error) noexcept {
    {
      detail::lock_guard lock(mutex_);
      for (std::size_t i = 0; i < count_; ++i) {
        child_base& c = child_at(i);
        c.error = error;
        c.done = true;
      }
      summary_.first_error = error;
      outstanding_ = 0;
    }
    finish();
  }

  /// Valid once every child has finished (read in the completion, after finish()). Not
  /// analysed, nor is set_timeout (before any child starts): no other thread can touch it then.
  const fan_summary& summary() const noexcept FERRY_NO_THREAD_SAFETY_ANALYSIS { return summary_; }
  void set_timeout(std::chrono::nanoseconds d) noexcept FERRY_NO_THREAD_SAFETY_ANALYSIS {
    summary_.timeout = d;
  }
  std::size_t count() const noexcept { return count_; }

 private:
  void stop_all_locked(fan_cause cause) noexcept FERRY_REQUIRES(mutex_) {
    if (summary_.cause == fan_cause::none) summary_.cause = cause;
    for (std::size_t i = 0; i < count_; ++i) {
      child_base& c = child_at(i);
      if (c.done || c.stop_requested) continue;
      c.stop_requested = true;
      child_base::request_stop(std::shared_ptr<child_base>(shared_from_this(), &c));
    }
  }

  detail::mutex mutex_;
  const fan_policy policy_;
  const std::size_t count_;
  std::size_t outstanding_ FERRY_GUARDED_BY(mutex_);
  bool has_winner_ FERRY_GUARDED_BY(mutex_) = false;
  fan_summary summary_ FERRY_GUARDED_BY(mutex_);
};

/// Children of types T... stored in place, started with a tuple of tasks.
template <class... T>
class tuple_children {
 public:
  using bodies_type = std::tuple<task<T>...>;

  explicit tuple_children(bodies_type&& bodies) : bodies_(std::move(bodies)) {
    std::apply([this](auto&... c) { ptrs_ = {static_cast<child_base*>(&c)...}; }, children_);
  }

  static constexpr std::size_t count(const bodies_type&) noexcept { return sizeof...(T); }
  static constexpr std::size_t size() noexcept { return sizeof...(T); }
  child_base& at(std::size_t i) noexcept { return *ptrs_[i]; }

  template <std::size_t I>
  auto& get() noexcept {
    return std::get<I>(children_);
  }

  /// Posts every child's starter; `owner` keeps the children (stored inside it) alive.
  void start(const std::shared_ptr<fan_base>& owner) noexcept {
    start_each(owner, std::index_sequence_for<T...>());
  }

 private:
  template <std::size_t... I>
  void start_each(const std::shared_ptr<fan_base>& owner, std::index_sequence<I...>) noexcept {
    (start_child(std::shared_ptr<child<T>>(owner, &std::get<I>(children_)),
                 std::move(std::get<I>(bodies_))),
     ...);
  }

  bodies_type bodies_;
  std::tuple<child<T>...> children_;
  std::array<child_base*, sizeof...(T)> ptrs_{};
};

/// Children of one type T, as many as tasks in a vector.
template <class T>
class vector_children {
 public:
  using bodies_type = std::vector<task<T>>;

  explicit vector_children(bodies_type&& bodies)
      : bodies_(std::move(bodies)), children_(std::make_unique<child<T>[]>(bodies_.size())) {}

  static std::size_t count(const bodies_type& bodies) noexcept { return bodies.size(); }
  std::size_t size() const noexcept { return bodies_.size(); }
  child_base& at(std::size_t i) noexcept { return children_[i]; }
  child<T>& operator[](std::size_t i) noexcept { return children_[i]; }

  void start(const std::shared_ptr<fan_base>& owner) noexcept {
    for (std::size_t i = 0; i < bodies_.size(); ++i) {
      start_child(std::shared_ptr<child<T>>(owner, &children_[i]), std::move(bodies_[i]));
    }
  }

 private:
  bodies_type bodies_;
  std::unique_ptr<child<T>[]> children_;
};

/// The templated operation: the handler, the children, the timer. Shared with the children
/// while they run; the completion holds the last reference.
template <class Handler, class Children, class Collect>
class fan_op final : public fan_base, public basic_op<fan_op<Handler, Children, Collect>, Handler> {
  using base = basic_op<fan_op, Handler>;
  struct private_tag {};

 public:
  using result_type = typename Collect::result_type;
  using handler_allocator = typename base::handler_allocator;

  /// Creates and starts the operation. `deadline`: the timeout's duration, if any.
  static void launch(Handler handler,
                     const boost::asio::any_io_executor& ex,
                     typename Children::bodies_type bodies,
                     fan_policy policy,
                     std::optional<std::chrono::nanoseconds> deadline) {
    handler_allocator alloc =
        boost::asio::get_associated_allocator(handler, boost::asio::recycling_allocator<void>());
    using op_allocator =
        typename std::allocator_traits<handler_allocator>::template rebind_alloc<fan_op>;
    std::shared_ptr<fan_op> op = std::allocate_shared<fan_op>(
        op_allocator(alloc), private_tag{}, std::move(handler), std::move(bodies), policy);
    op->start(op, ex, deadline);
  }

  fan_op(private_tag, Handler&& handler, typename Children::bodies_type&& bodies, fan_policy policy)
      : fan_base(policy, Children::count(bodies)),
        base(std::move(handler)),
        children_(std::move(bodies)) {}

 private:
  friend base;

  // Runs the completion in the caller's execution context; destroyed unrun, it drops its
  // reference and the handler goes with the operation.
  class completion {
   public:
    explicit completion(std::shared_ptr<fan_op> op) noexcept : op_(std::move(op)) {}
    void operator()() { fan_op::complete(std::move(op_)); }

   private:
    std::shared_ptr<fan_op> op_;
  };

  struct deadline_handler {
    void operator()(boost::system::error_code ec) const {
      if (ec) return;  // cancelled: the operation is gone or finished
      if (std::shared_ptr<fan_base> op = op_.lock()) op->stop_children(fan_cause::deadline);
    }
    std::weak_ptr<fan_base> op_;
  };

  child_base& child_at(std::size_t i) noexcept override { return children_.at(i); }

  void start(const std::shared_ptr<fan_op>& self,
             const boost::asio::any_io_executor& ex,
             std::optional<std::chrono::nanoseconds> deadline) {
    // Everything that may throw comes before the first child is started; the caller's slot is
    // connected before a child can finish (and the completion, on another thread, clear it).
    try {
      for (std::size_t i = 0; i < children_.size(); ++i) {
        children_.at(i).bind(*this, child_executor(ex), i);
      }
      // Forwards the caller's cancellation to the children.
      this->connect_cancellation([op = weak_from_this()] {
        if (std::shared_ptr<fan_base> o = op.lock()) o->stop_children(fan_cause::other);
      });
      if (deadline && *deadline <= std::chrono::nanoseconds::zero()) {
        set_timeout(*deadline);
        stop_before_start(fan_cause::deadline);
      } else if (deadline) {
        set_timeout(*deadline);
        timer_.emplace(ex);
        timer_->expires_at(deadline_after(*deadline));
        timer_->async_wait(deadline_handler{weak_from_this()});
      }
    } catch (...) {
      fail_start(std::current_exception());
      return;
    }
    if (children_.size() == 0) {
      finish();
      return;
    }
    children_.start(self);
  }

  void finish() noexcept override {
    try {
      this->post_completion(completion(std::static_pointer_cast<fan_op>(shared_from_this())));
    } catch (...) {
      // Out of memory for the posted completion: the handler is destroyed without running.
    }
  }

  static void complete(std::shared_ptr<fan_op> op) {
    std::exception_ptr error;
    std::optional<result_type> result;
    try {
      result = Collect::collect(op->children_, op->summary(), error);
    } catch (...) {
      error = std::current_exception();
      result.reset();
    }
    fan_op* self = op.get();
    self->self_ = std::move(op);
    self->upcall(true, std::move(error), std::move(result));
  }

  // The children and the timer go before the caller resumes.
  void release() noexcept { [[maybe_unused]] std::shared_ptr<fan_op> last = std::move(self_); }

  Children children_;
  std::optional<boost::asio::steady_timer> timer_;
  std::shared_ptr<fan_op> self_;  // during the upcall only
};

/// The signature of a fan operation that produces `Result`.
template <class Result>
using fan_signature_t = void(std::exception_ptr, std::optional<Result>);

template <class Children, class Collect>
struct initiate_fan {
  template <class Handler>
  void operator()(Handler&& handler,
                  const boost::asio::any_io_executor& ex,
                  typename Children::bodies_type bodies,
                  fan_policy policy,
                  std::optional<std::chrono::nanoseconds> deadline) const {
    fan_op<std::decay_t<Handler>, Children, Collect>::launch(
        std::forward<Handler>(handler), ex, std::move(bodies), policy, deadline);
  }
};

/// Starts the children `bodies` on `ex` (each on its own strand unless `ex` is one) and completes
/// with `Collect`'s result once all have finished.
template <class Children, class Collect, class Token>
auto async_fan(const boost::asio::any_io_executor& ex,
               typename Children::bodies_type bodies,
               fan_policy policy,
               std::optional<std::chrono::nanoseconds> deadline,
               Token&& token) {
  return boost::asio::async_initiate<Token, fan_signature_t<typename Collect::result_type>>(
      initiate_fan<Children, Collect>{}, token, ex, std::move(bodies), policy, deadline);
}

}  // namespace ferry::detail
