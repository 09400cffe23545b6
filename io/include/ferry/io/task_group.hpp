// ferry/io/task_group.hpp — asyncio.TaskGroup: children that never outlive their group.
//
// The form to use is the scope, asyncio's `async with TaskGroup() as tg:` — its body is the
// group's first member, and every exit awaits every child:
//
//   auto page = co_await ferry::task_group::scope(
//       [&](ferry::task_group& tg) -> ferry::task<page_t> {   // a named local under g++ 12
//         auto user = tg.spawn(load_user(id));
//         auto orders = tg.spawn(load_orders(id));
//         co_await render_header();          // cancelled if a child fails meanwhile
//         co_return page_t{};                // the scope then waits for user and orders
//       });
//
// Scopes (`task_group::scope(ex, body)`, `task_group::scope(body)` on the awaiting coroutine's
// executor):
//  - `body(tg)` runs as a child of a new group on `ex` (after scope is awaited, on a strand of
//    its own unless `ex` is a strand, like any child), so the group can cancel it: the first
//    failure of a child cancels the body and the other children, as a failure of the body
//    cancels the children.
//  - The scope completes only when the body and every child — including children spawned after
//    the body returned — have finished, on every exit: the body returned, threw, or was
//    cancelled; the awaiter was cancelled. So what the children borrow from the frame that
//    awaits the scope stays valid. The body's own locals do not: they die when the body
//    returns, possibly before its children finish; share them by capture or from that frame.
//  - Outcome: the body's value, once everything finished and nothing failed. Otherwise one
//    `exception_group`: the children's failures in completion order, then the body's own
//    exception (asyncio's order). A body ended by the group's cancellation is not a failure. When
//    nothing failed: `system_error(operation_aborted)` if the awaiter was cancelled, the body was
//    cancelled by something other than the group, or `tg.cancel()` cancelled the body.
//  - Cancelling the awaiter cancels the body and every child; so nested scopes carry a
//    cancellation both ways: an outer failure cancels the outer body, which is awaiting the
//    inner scope, which cancels the inner body and children; an inner failure surfaces from
//    the inner scope as an exception_group that fails the outer body.
//  - The body must not `join()` its own group (std::logic_error): the scope joins it.
//
// The group object alone is the unstructured form (asyncio's TaskGroup without `async with`):
//
//   ferry::task_group tg{co_await boost::asio::this_coro::executor};
//   auto user = tg.spawn(load_user(id));
//   auto orders = tg.spawn(load_orders(id));
//   co_await tg.join();                 // waits for every child; throws ferry::exception_group
//   render(user.result(), orders.result());
//
// Nothing cancels the coroutine that made it when a child fails, and if that coroutine leaves
// before `join()` (an exception between spawn and join) the destructor cannot await the
// children — a destructor cannot suspend — so they may outlive the frame whose locals they
// borrow (see Lifetime). Use it where the group's life is not a block of one coroutine (a
// server's connections, a long-lived object's workers) and join it on every path; use a scope
// everywhere else.
//
// `spawn(task<T>)` co_spawns a child on the group's executor and returns a `task_handle<T>`.
// `join()` waits until every child has finished — including children spawned meanwhile, by the
// children themselves or by anyone else — and then closes the group. The first child to fail
// makes the group cancel its siblings; the failures surface from `join()`, once every child has
// finished, as one `ferry::exception_group` (in completion order). `cancel()` cancels every child.
//
// Children run on the group's executor: each on a strand of its own when it is not a strand (so
// they run in parallel on a multi-threaded io_context or a cpu_pool, and each one's cancellation
// is serialised with its code), or directly on it when it is a strand (then they interleave on
// it, like any code sharing that strand). A child starts after `spawn` returns, never inline in
// it; `co_await this_coro::executor` in a child yields the strand it runs on.
//
// Thread safety: distinct objects: safe. Shared objects: `spawn`, `cancel`, `async_join`/`join`
// and the task_handle members may be called concurrently from any thread — a child on a cpu_pool
// may spawn a sibling on an io_context group. The destructor must not race with other calls.
//
// Resumes on: `join()` and `scope` resume the awaiting coroutine on its own executor, by post,
// after the last child (and a scope's body) has finished.
//
// Cancellation:
//  - `cancel()`, the first failure and the destructor ask every unfinished child to stop with a
//    terminal cancellation, posted to the child's own executor (Asio requires cancellation to be
//    emitted in the operation's execution context). A child that had not started yet never runs.
//    A child spawned while the group is cancelling is cancelled the same way: it never runs.
//  - A child that then finishes with `system_error(operation_aborted)` is not a failure: the
//    group cancelled it (as in asyncio). Any other exception is a failure, even one thrown
//    while handling the cancellation; so is operation_aborted from a child the group had not
//    cancelled (it was cancelled by something else).
//  - `task_handle::cancel()` cancels one child the same way (not a failure if it then ends with
//    operation_aborted; its siblings are not affected).
//  - Cancelling the coroutine that awaits `join()` (terminal, partial or total, what its filter
//    lets through) cancels every child; join still waits for all of them, then throws
//    `exception_group` if any child failed, otherwise `system_error(operation_aborted)`.
//
// Lifetime:
//  - No child outlives its group's join: `join()` returns only when every child has finished.
//  - After `join()` has completed the group is closed: `spawn` throws std::logic_error, a later
//    `join()` completes at once with the same outcome, and `task_handle::result()` is readable.
//  - Destroying a group whose join was never awaited cancels every child and returns at once —
//    it does not block (blocking there could deadlock a single-threaded loop). The group's
//    shared state lives on until the last child has finished, so ferry's own bookkeeping does
//    not dangle; the children's failures are discarded and their results stay unreadable
//    (result() throws logic_error). But the children are still running — at least until their
//    cancellation is delivered — so what they borrow must outlive them, not the group object:
//    a local of the frame that made the group does not qualify when that frame can end without
//    `join()` (an exception thrown between spawn and join ends it at once). Nor may a child use
//    the destroyed `task_group` object itself (e.g. to spawn a sibling through a reference it
//    captured). A scope has none of these hazards: its exit always awaits the children.
//  - What a child borrows must outlive it, hence the group's join — locals of the frame that
//    awaits `join()` qualify when every path through that frame awaits `join()`; locals of the
//    frame that awaits a scope always do.
//  - A task_handle keeps the child's result (and the group's bookkeeping) alive, not its
//    executor: once the group is joined or destroyed, handles may outlive the executor's context.
//
// Errors: `scope` throws `exception_group` (the children's failures, then the body's), or
// operation_aborted (see Scopes), or std::invalid_argument for an empty executor. `join()` throws
// `exception_group` (one entry per failed child, in completion order), or operation_aborted when
// its awaiting coroutine was cancelled and nothing failed, or std::logic_error when another
// coroutine is already awaiting the join or the group is a scope's. `spawn` throws
// std::logic_error after the join completed. `task_handle::result()` throws std::logic_error
// before the join completed, and otherwise returns the child's value or rethrows its exception.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <concepts>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ferry/detail/thread_annotations.hpp"
#include "ferry/io/detail/basic_op.hpp"
#include "ferry/io/detail/child.hpp"
#include "ferry/io/detail/task_registry.hpp"
#include "ferry/io/task.hpp"

namespace ferry {

/// Several exceptions at once: the failures of a task_group's children (asyncio's
/// ExceptionGroup). Copies share the list (copying never throws).
class exception_group : public std::exception {
 public:
  explicit exception_group(std::vector<std::exception_ptr> exceptions)
      : data_(std::make_shared<const data>(make(std::move(exceptions)))) {}

  /// The exceptions, in the order the children failed.
  const std::vector<std::exception_ptr>& exceptions() const noexcept { return data_->exceptions; }

  /// "ferry::exception_group: 3 failures; first: <what() of the first>".
  const char* what() const noexcept override { return data_->message.c_str(); }

 private:
  struct data {
    std::vector<std::exception_ptr> exceptions;
    std::string message;
  };

  static data make(std::vector<std::exception_ptr> exceptions) {
    std::string message = "ferry::exception_group: ";
    if (exceptions.empty()) {
      message += "no failures";
    } else if (exceptions.size() == 1) {
      message += "1 failure: " + ferry::what(exceptions.front());
    } else {
      message += std::to_string(exceptions.size()) +
                 " failures; first: " + ferry::what(exceptions.front());
    }
    return data{std::move(exceptions), std::move(message)};
  }

  std::shared_ptr<const data> data_;
};

namespace detail {

class group_state;

/// Whether R is a task<T> (what a scope's body returns), and its T.
template <class R>
struct is_task : std::false_type {};
template <class T>
struct is_task<task<T>> : std::true_type {
  using value_type = T;
};

/// What task_group::scope accepts: a callable taking the group and returning a task<T>.
template <class F, class Group>
concept scope_body = std::invocable<F&, Group&> && is_task<std::invoke_result_t<F&, Group&>>::value;

/// The T of a scope body's task<T>.
template <class F, class Group>
using scope_value_t = typename is_task<std::invoke_result_t<F&, Group&>>::value_type;

/// The pending join of a group.
class group_joiner {
 public:
  /// Completes the join with `error` (null: success). Called once, without the group's lock.
  virtual void finish(std::exception_ptr error) noexcept = 0;

 protected:
  ~group_joiner() = default;
};

/// A child of a group: owned by the group while it runs, and by its handles.
template <class T>
class group_child final : public child<T> {
 public:
  group_child(std::shared_ptr<group_state> g, const spawn_location& where) noexcept
      : group(std::move(g)) {
    task.file = where.file;
    task.line = where.line;
    this->node = &task;
  }
  const std::shared_ptr<group_state> group;
  task_node task;  // dump_tasks
};

/// A group's shared state: the group object, every running child and the pending join hold it.
class group_state final : public child_owner,
                          public registered_group,
                          public std::enable_shared_from_this<group_state> {
 public:
  explicit group_state(boost::asio::any_io_executor ex)
      : registered_group(&boost::asio::query(ex, boost::asio::execution::context)),
        ex_(std::move(ex)) {
    enroll();
  }
  ~group_state() { withdraw(); }

  /// Starts a child. `scope_body`: the child is the body of a scope (task_group::scope), spawned
  /// first, before anything else can reach the group.
  template <class T>
  std::shared_ptr<group_child<T>> spawn(task<T> body,
                                        const spawn_location& where,
                                        bool scope_body = false) {
    auto c = std::make_shared<group_child<T>>(shared_from_this(), where);
    c->task.owner = c;  // awaited operations keep the node alive (task_node::owner)
    {
      detail::lock_guard lock(mutex_);
      if (closed_.load(std::memory_order_relaxed) || !ex_) {
        throw std::logic_error("ferry::task_group::spawn: the group has already been joined");
      }
      c->bind(*this, child_executor(ex_), 0);
      if (scope_body) body_ = c.get();
      active_.push_back(c);
      c->index = active_.size() - 1;
      c->stop_requested = cancelling_;  // a group that is cancelling never runs a new child
    }
    start_child<T>(c, std::move(body));
    return c;
  }

  /// Registers the join (see task_group::async_join). `by_scope`: the scope's own join; any
  /// other join of a scope's group is refused.
  template <class Handler>
  void join(Handler&& handler, bool by_scope);

  /// Cancels every unfinished child (task_group::cancel).
  void cancel() noexcept {
    detail::lock_guard lock(mutex_);
    if (closed_.load(std::memory_order_relaxed)) return;
    cancelling_ = true;
    stop_all_locked();
  }

  /// The group object is being destroyed: cancels the children, and drops the group's executor
  /// (no spawn can come any more), so that the state, kept by handles, pins no strand.
  void release() noexcept {
    cancel();
    detail::lock_guard lock(mutex_);
    ex_ = nullptr;
  }

  /// The awaiting coroutine of `joiner` was cancelled.
  void cancel_join(const group_joiner* joiner) noexcept {
    detail::lock_guard lock(mutex_);
    if (joiner_ != joiner || joiner == nullptr) return;  // not (or no longer) the pending join
    join_cancelled_ = true;
    cancelling_ = true;
    stop_all_locked();
  }

  /// Cancels one child (task_handle::cancel).
  void cancel_child(const std::shared_ptr<child_base>& c) noexcept {
    detail::lock_guard lock(mutex_);
    if (c->done || c->stop_requested) return;
    c->stop_requested = true;
    child_base::request_stop(c);
  }

  bool is_done(const child_base& c) const {
    detail::lock_guard lock(mutex_);
    return c.done;
  }

  void snapshot(std::vector<task_info>& out) const override {
    detail::lock_guard lock(mutex_);
    for (const std::shared_ptr<child_base>& c : active_) {
      if (c->node != nullptr) out.push_back(task_info::of(*c->node));
    }
  }

  /// The join has completed (acquire: the children's results are visible).
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

 private:
  // A child the group cancelled before it started never runs.
  bool may_start(const child_base& c) noexcept override { return !stop_requested_for(c); }

  bool stop_requested_for(const child_base& c) noexcept override {
    detail::lock_guard lock(mutex_);
    return c.stop_requested;
  }

  void child_done(child_base& c) noexcept override {
    const bool cancellation = is_cancellation(c.error);
    group_joiner* joiner = nullptr;
    std::exception_ptr result;
    std::shared_ptr<child_base> self;  // the child's own reference keeps it alive meanwhile
    {
      detail::lock_guard lock(mutex_);
      c.done = true;
      c.release_executor();
      if (&c == body_) {
        // A scope's body (asyncio's `async with` block): its exception is listed after the
        // children's; a cancellation the group did not cause is the scope's outcome when nothing
        // failed. Either way the other children are cancelled; a body that returned leaves them
        // running.
        if (c.error && !c.abandoned && !(cancellation && c.stop_requested)) {
          if (cancellation) {
            body_cancelled_ = true;
          } else {
            body_error_ = c.error;
          }
          if (!cancelling_) {
            cancelling_ = true;
            stop_all_locked();
          }
        }
      } else if (c.error && !c.abandoned && !(cancellation && c.stop_requested)) {
        try {
          failures_.push_back(c.error);
        } catch (...) {
          // Out of memory: the failure is still acted on below, but not listed.
        }
        if (!cancelling_) {
          cancelling_ = true;
          stop_all_locked();
        }
      }
      const std::size_t i = c.index;
      self = std::move(active_[i]);
      if (i + 1 != active_.size()) {
        active_[i] = std::move(active_.back());
        active_[i]->index = i;
      }
      active_.pop_back();
      if (active_.empty() && joiner_ != nullptr) {
        joiner = std::exchange(joiner_, nullptr);
        result = close_locked();
      }
    }
    if (joiner != nullptr) joiner->finish(std::move(result));
  }

  void stop_all_locked() noexcept FERRY_REQUIRES(mutex_) {
    for (const std::shared_ptr<child_base>& c : active_) {
      if (c->done || c->stop_requested) continue;
      c->stop_requested = true;
      child_base::request_stop(c);
    }
  }

  // Closes the group and returns the outcome of its join.
  std::exception_ptr close_locked() noexcept FERRY_REQUIRES(mutex_) {
    try {
      if (body_error_) {
        failures_.push_back(std::exchange(body_error_, nullptr));  // last, as asyncio lists it
      }
      if (!failures_.empty()) {
        join_result_ = std::make_exception_ptr(exception_group(failures_));
      } else if (join_cancelled_ || body_cancelled_) {
        join_result_ = operation_aborted();
      }
    } catch (...) {
      join_result_ = std::current_exception();
    }
    ex_ = nullptr;  // no spawn any more: handles kept for results pin no strand
    closed_.store(true, std::memory_order_release);
    return join_result_;
  }

  mutable detail::mutex mutex_;
  // null once closed or released
  boost::asio::any_io_executor ex_ FERRY_GUARDED_BY(mutex_);
  // unfinished children; child.index = slot
  std::vector<std::shared_ptr<child_base>> active_ FERRY_GUARDED_BY(mutex_);
  std::vector<std::exception_ptr> failures_ FERRY_GUARDED_BY(mutex_);
  group_joiner* joiner_ FERRY_GUARDED_BY(mutex_) = nullptr;
  bool cancelling_ FERRY_GUARDED_BY(mutex_) = false;
  bool join_cancelled_ FERRY_GUARDED_BY(mutex_) = false;
  // a scope's body (compared, never dereferenced), its failure, its own cancellation
  const child_base* body_ FERRY_GUARDED_BY(mutex_) = nullptr;
  std::exception_ptr body_error_ FERRY_GUARDED_BY(mutex_);
  bool body_cancelled_ FERRY_GUARDED_BY(mutex_) = false;
  std::exception_ptr join_result_ FERRY_GUARDED_BY(mutex_);
  std::atomic<bool> closed_{false};
};

/// The asynchronous operation behind task_group::async_join: a wait whose cancellation cancels
/// the group instead of withdrawing the wait.
template <class Handler>
class join_op final : public group_joiner, public basic_op<join_op<Handler>, Handler> {
  using base = basic_op<join_op, Handler>;

 public:
  static join_op* create(Handler handler, std::weak_ptr<group_state> state) {
    join_op* op = base::allocate(std::move(handler));
    // In the awaiting coroutine's execution context. `op` is compared, never dereferenced.
    op->connect_cancellation([state = std::move(state), op] {
      if (std::shared_ptr<group_state> s = state.lock()) s->cancel_join(op);
    });
    return op;
  }

  void finish(std::exception_ptr error) noexcept override {
    error_ = std::move(error);
    try {
      this->post_completion(completion(this));
    } catch (...) {
      // Out of memory for the posted completion: destroyed unrun, the handler cannot run.
    }
  }

 private:
  friend base;
  friend class owning_completion<join_op>;
  using completion = owning_completion<join_op>;

  explicit join_op(Handler&& handler) : base(std::move(handler)) {}

  void complete(bool invoke) { this->upcall(invoke, std::move(error_)); }

  std::exception_ptr error_;
};

template <class Handler>
void group_state::join(Handler&& handler, bool by_scope) {
  join_op<std::decay_t<Handler>>* op =
      join_op<std::decay_t<Handler>>::create(std::forward<Handler>(handler), weak_from_this());
  std::exception_ptr result;
  {
    detail::lock_guard lock(mutex_);
    if (body_ != nullptr && !by_scope) {
      result = std::make_exception_ptr(std::logic_error(
          "ferry::task_group::join: a scope's group is joined by the scope itself"));
    } else if (joiner_ != nullptr) {
      result = std::make_exception_ptr(std::logic_error(
          "ferry::task_group::join: another coroutine is already awaiting this group"));
    } else if (closed_.load(std::memory_order_relaxed)) {
      result = join_result_;
    } else if (active_.empty()) {
      result = close_locked();
    } else {
      joiner_ = op;
      return;
    }
  }
  op->finish(std::move(result));
}

}  // namespace detail

/// A child of a task_group: cancel it, ask whether it finished, read its result after the join.
/// Copies refer to the same child. A default-constructed handle refers to none.
template <class T>
class task_handle {
 public:
  task_handle() noexcept = default;

  /// True when the handle refers to a child.
  bool valid() const noexcept { return child_ != nullptr; }

  /// True once the child has finished (a snapshot; its result is readable only after the join).
  bool done() const {
    check_valid();
    return child_->group->is_done(*child_);
  }

  /// Asks this child to stop (terminal cancellation, posted to its executor). Its siblings are
  /// not affected; ending with operation_aborted after this is not a failure. No-op once done.
  void cancel() const {
    check_valid();
    child_->group->cancel_child(child_);
  }

  /// The child's value (a reference into the shared result: move from it if you like), or its
  /// exception rethrown. Throws std::logic_error until the group's join has completed.
  std::add_lvalue_reference_t<T> result() const {
    check_valid();
    if (!child_->group->closed()) {
      throw std::logic_error("ferry::task_handle::result: the task_group has not been joined");
    }
    if (child_->error) std::rethrow_exception(child_->error);
    if constexpr (!std::is_void_v<T>) return *child_->value;
  }

 private:
  friend class task_group;
  explicit task_handle(std::shared_ptr<detail::group_child<T>> c) noexcept : child_(std::move(c)) {}

  void check_valid() const {
    if (child_ == nullptr) throw std::logic_error("ferry::task_handle: empty handle");
  }

  std::shared_ptr<detail::group_child<T>> child_;
};

/// A scope for child coroutines; see the file comment for the whole contract.
class task_group {
 public:
  using executor_type = boost::asio::any_io_executor;

  /// A group whose children run on `ex` (see the file comment). Throws std::invalid_argument for
  /// an empty executor.
  explicit task_group(const executor_type& ex) : ex_(ex), state_(make_state(ex)) {}

  /// A group whose children run on `ctx`'s executor (an io_context, a cpu_pool...).
  template <class ExecutionContext>
  requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
  explicit task_group(ExecutionContext& ctx) : task_group(executor_type(ctx.get_executor())) {}

  /// Cancels the children if the group was not joined; never blocks (see Lifetime).
  ~task_group() { state_->release(); }

  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;

  executor_type get_executor() const noexcept { return ex_; }

  /// Starts `child` on the group's executor (after this call returns) and returns its handle.
  /// Throws std::logic_error once the group's join has completed. `where` is what
  /// runtime::dump_tasks shows for the child.
  template <class T>
  task_handle<T> spawn(task<T> child, const spawn_location& where = spawn_location::current()) {
    return task_handle<T>(state_->spawn(std::move(child), where));
  }

  /// Waits for every child, for any completion token. Signature `void(std::exception_ptr)`:
  /// null, an exception_group, operation_aborted or std::logic_error (see the file comment).
  /// The group must be alive when the operation starts (with use_awaitable: when it is
  /// awaited); the operation itself keeps what it needs.
  template <class Token = boost::asio::use_awaitable_t<>>
  auto async_join(Token&& token = {}) {
    return boost::asio::async_initiate<Token, void(std::exception_ptr)>(
        detail::noted("task_group::join", initiate_join{state_.get(), false}), token);
  }

  /// Waits for every child; throws exception_group when any failed (see the file comment).
  task<void> join();

  /// Cancels every unfinished child; children spawned from now on never run. Any thread.
  void cancel() noexcept { state_->cancel(); }

  /// asyncio's `async with TaskGroup() as tg:` — runs `body(tg)` as the first member of a new
  /// group on `ex` and completes once the body and every child have finished, whatever the
  /// exit: returns the body's value, or throws exception_group (the children's failures in
  /// completion order, then the body's own), or operation_aborted (see "Scopes" in the file
  /// comment). `body` is kept in the scope's frame until then, so its captures outlive the
  /// body's coroutine. Throws std::invalid_argument at once for an empty executor.
  template <class F>
  requires detail::scope_body<F, task_group>
  static task<detail::scope_value_t<F, task_group>> scope(
      const executor_type& ex, F body, const spawn_location& where = spawn_location::current()) {
    if (!ex) throw std::invalid_argument("ferry::task_group::scope: empty executor");
    return run_scope<detail::scope_value_t<F, task_group>>(ex, std::move(body), where);
  }

  /// The same on the awaiting coroutine's executor.
  template <class F>
  requires detail::scope_body<F, task_group>
  static task<detail::scope_value_t<F, task_group>> scope(
      F body, const spawn_location& where = spawn_location::current()) {
    return run_scope<detail::scope_value_t<F, task_group>>(std::nullopt, std::move(body), where);
  }

 private:
  struct initiate_join {
    detail::group_state* state;  // alive: the group outlives the initiation
    bool by_scope;
    template <class Handler>
    void operator()(Handler&& handler) const {
      state->join(std::forward<Handler>(handler), by_scope);
    }
  };

  // The scope's own join (task_group::scope).
  task<void> join_scope();

  template <class T, class F>
  static task<T> run_scope(std::optional<executor_type> ex, F body, spawn_location where) {
    if (!ex) ex.emplace(co_await boost::asio::this_coro::executor);
    task_group group(*ex);
    task_handle<T> handle(group.state_->spawn(body(group), where, /*scope_body=*/true));
    co_await group.join_scope();
    // No failure and no cancellation of the awaiter: the body returned, or the group was
    // cancelled (cancel()) and the body with it — then its operation_aborted is rethrown.
    if constexpr (std::is_void_v<T>) {
      handle.result();
    } else {
      co_return std::move(handle.result());
    }
  }

  static std::shared_ptr<detail::group_state> make_state(const executor_type& ex) {
    if (!ex) throw std::invalid_argument("ferry::task_group: empty executor");
    return std::make_shared<detail::group_state>(ex);
  }

  executor_type ex_;
  std::shared_ptr<detail::group_state> state_;
};

}  // namespace ferry
