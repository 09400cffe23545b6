// ferry/io/detail/child.hpp — child coroutines of gather, race, timeout and task_group.
//
// A child is a `task<T>` co_spawned by a scope (its *owner*: a gather operation, a task_group)
// with a cancellation signal of its own. The owner keeps a `detail::mutex` and its bookkeeping; the
// child machinery here gives it three guarantees:
//
//  - Exactly once: `child_owner::child_done(child)` is called once per child, after the child
//    has finished: on the child's executor when it ran (its value or error is stored first), or
//    where its starter or completion handler is destroyed unrun (context shut down, out of
//    memory) — then with `abandoned` set and operation_aborted as its error. After child_done the
//    child's coroutine frames are gone: nothing it borrowed is used any more.
//  - Cancellation in the child's own execution context: `request_stop` never emits the signal
//    on the caller's thread; it posts the emit to the child's executor, as Asio requires. The
//    signal is emitted at most once, and never lost: a stop requested before the child started
//    is either honoured by not running it at all (when the owner's `may_start` says so: a
//    task_group, like an asyncio task cancelled before its first step) or emitted right after
//    the child reached its first suspension point (gather, race, timeout: the operations their
//    caller handed in are always attempted, as asyncio.timeout(0) runs its body).
//  - No emit races with the child's own code, whatever the scope's executor: a child runs on its
//    own strand of that executor (`child_executor`), unless the executor already is a strand. So
//    children of one scope run in parallel on a multi-threaded io_context or on a cpu_pool, and
//    each one's cancellation is serialised with its code.
//
// Lifetime: the starter, the completion handler and every posted stop hold a shared_ptr to the
// child (for children stored inside their owner: an aliasing shared_ptr to the owner), so the
// owner outlives everything that may touch it.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/system/system_error.hpp>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "ferry/io/detail/child_strand.hpp"
#include "ferry/io/detail/task_registry.hpp"
#include "ferry/io/detail/waiter.hpp"
#include "ferry/io/errors.hpp"
#include "ferry/io/task.hpp"

namespace ferry::detail {

/// The executor a child of a scope on `ex` runs on: `ex` itself when it is a strand (everything
/// on it is serialised already), otherwise a new strand of `ex` — of the io_context executor
/// itself when `ex` is one, else a child_strand (both stored inline in an any_io_executor; see
/// child_strand.hpp). Throws std::invalid_argument for an empty executor.
inline boost::asio::any_io_executor child_executor(const boost::asio::any_io_executor& ex) {
  if (!ex) throw std::invalid_argument("ferry: a child coroutine needs a non-empty executor");
  using io_executor = boost::asio::io_context::executor_type;
  using io_strand = boost::asio::strand<io_executor>;
  using any_strand = boost::asio::strand<boost::asio::any_io_executor>;
  if (ex.target<io_strand>() != nullptr || ex.target<any_strand>() != nullptr ||
      ex.target<child_strand>() != nullptr) {
    return ex;
  }
  if (const io_executor* io = ex.target<io_executor>()) return boost::asio::make_strand(*io);
  return child_strand(boost::asio::make_strand(ex));
}

class child_base;

/// The scope a child reports to.
class child_owner {
 public:
  /// Asked on the child's executor just before it starts: false when it must not run at all.
  virtual bool may_start(const child_base& child) noexcept = 0;
  /// Whether the owner has asked the child to stop (`stop_requested`, under the owner's lock).
  virtual bool stop_requested_for(const child_base& child) noexcept = 0;
  /// Called exactly once per child, after it finished (see the file comment). Must not throw.
  virtual void child_done(child_base& child) noexcept = 0;

 protected:
  ~child_owner() = default;
};

class child_completion;
template <class T>
class child_starter;

/// The part of a child that does not depend on its result type.
class child_base {
 public:
  child_base() = default;
  child_base(const child_base&) = delete;
  child_base& operator=(const child_base&) = delete;

  /// Attaches the child to its owner and executor; before it is started or stopped.
  void bind(child_owner& owner, boost::asio::any_io_executor ex, std::size_t index) {
    owner_ = &owner;
    ex_ = std::move(ex);
    this->index = index;
  }

  const boost::asio::any_io_executor& executor() const noexcept { return ex_; }

  /// Drops the child's executor (its strand) once it is done, so that an object kept for its
  /// result (a task_handle) does not pin a strand of an execution context. Call under the
  /// owner's lock, after `done` is set: nothing reads the executor afterwards.
  void release_executor() noexcept { ex_ = nullptr; }

  /// Asks the child to stop: posts a terminal cancellation to the child's executor. Call after
  /// setting `stop_requested` under the owner's lock: a child that has not started by then sees
  /// it when it starts (see child_starter). Any thread; the post is not blocking. Out of memory,
  /// the request is dropped and the child finishes on its own.
  static void request_stop(std::shared_ptr<child_base> self) noexcept {
    try {
      const boost::asio::any_io_executor ex = self->ex_;
      boost::asio::post(ex, [self = std::move(self)] {
        if (self->started_) self->emit_stop();  // otherwise the starter will see the request
      });
    } catch (...) {
    }
  }

  // Written before child_done (on the thread that reports it), read by the owner afterwards.
  std::exception_ptr error;  ///< null on success
  bool abandoned = false;    ///< never ran or never finished: its context went away

  // The owner's bookkeeping, guarded by the owner's mutex.
  std::size_t index = 0;        ///< position in the owner (argument order, or list slot)
  bool done = false;            ///< child_done has been called
  bool stop_requested = false;  ///< the owner asked it to stop
  task_node* node = nullptr;    ///< what dump_tasks shows of it (task_group children only)

 protected:
  ~child_base() = default;

 private:
  friend class child_completion;
  template <class T>
  friend class child_starter;

  // Reports an abandoned child (its starter or completion handler is destroyed unrun).
  static void abandon(child_base& c) noexcept {
    c.error = operation_aborted();
    c.abandoned = true;
    c.owner_->child_done(c);
  }

  // In the child's execution context: at most one emit, none once it has finished.
  void emit_stop() {
    if (finished_ || emitted_) return;
    emitted_ = true;
    signal_.emit(boost::asio::cancellation_type::terminal);
  }

  child_owner* owner_ = nullptr;
  boost::asio::any_io_executor ex_;

  // The child's execution context only (its strand).
  boost::asio::cancellation_signal signal_;
  bool started_ = false;   // co_spawned: its signal is hooked
  bool finished_ = false;  // its completion ran
  bool emitted_ = false;   // the stop was emitted
};

/// A child whose task produces `T`.
template <class T>
class child : public child_base {
 public:
  /// Set (on the child's executor) when the task returned (std::monostate for void).
  std::optional<stored_t<T>> value;
};

/// The co_spawn completion handler of a child: reports it to its owner. Its associated executor
/// is the child's (so co_spawn delivers the completion and forwards cancellation there) and its
/// cancellation slot is the child's signal.
class child_completion {
 public:
  using executor_type = boost::asio::any_io_executor;
  using cancellation_slot_type = boost::asio::cancellation_slot;

  explicit child_completion(std::shared_ptr<child_base> c) noexcept : child_(std::move(c)) {}
  child_completion(child_completion&& other) noexcept : child_(std::move(other.child_)) {}
  child_completion& operator=(child_completion&&) = delete;
  ~child_completion() {
    if (child_) child_base::abandon(*child_);
  }

  executor_type get_executor() const noexcept { return child_->ex_; }
  cancellation_slot_type get_cancellation_slot() const noexcept { return child_->signal_.slot(); }

  void operator()(std::exception_ptr e) {
    std::shared_ptr<child_base> c = std::move(child_);
    c->finished_ = true;
    c->error = std::move(e);
    c->owner_->child_done(*c);
  }

 private:
  std::shared_ptr<child_base> child_;
};

/// The body of a child: awaits the user's task and stores its value in the child.
template <class T>
task<void> run_child(task<T> body, child<T>* c) {
  std::optional<own_thread_mark> mark;  // dump_tasks: this coroutine is the task's own
  if (c->node != nullptr) {
    mark.emplace(c->node);
    co_await record_own_thread(c->node);
  }
  if constexpr (std::is_void_v<T>) {
    co_await std::move(body);
    c->value.emplace();
  } else {
    T value = co_await std::move(body);
    c->value.emplace(std::move(value));
  }
}

/// Posted to the child's executor to start it there, so that hooking the child's signal into
/// co_spawn and every later emit happen in the child's execution context, in order.
template <class T>
class child_starter {
 public:
  child_starter(std::shared_ptr<child<T>> c, task<T> body) noexcept
      : child_(std::move(c)), body_(std::move(body)) {}
  child_starter(child_starter&& other) noexcept
      : child_(std::move(other.child_)), body_(std::move(other.body_)) {}
  child_starter& operator=(child_starter&&) = delete;
  ~child_starter() {
    if (child_) child_base::abandon(*child_);
  }

  const boost::asio::any_io_executor& executor() const noexcept { return child_->ex_; }

  void operator()() {
    std::shared_ptr<child<T>> c = std::move(child_);
    if (!c->owner_->may_start(*c)) {
      // Stopped before it started: the task is destroyed without running.
      c->finished_ = true;
      c->error = operation_aborted();
      c->owner_->child_done(*c);
      return;
    }
    child<T>* raw = c.get();
    try {
      boost::asio::any_io_executor ex = raw->ex_;
      task_scope scope(raw->node, true);  // dump_tasks: the child is current while it starts
      // Runs the child up to its first suspension; its completion is always posted, so the
      // child (kept alive by the completion handler, as run_child's raw pointer is) is still
      // there below.
      boost::asio::co_spawn(
          ex, run_child<T>(std::move(body_), raw), child_completion(std::move(c)));
    } catch (...) {
      return;  // out of memory: the destroyed completion handler reported the child abandoned
    }
    raw->started_ = true;
    if (raw->owner_->stop_requested_for(*raw)) raw->emit_stop();  // requested before the hook
  }

 private:
  std::shared_ptr<child<T>> child_;
  task<T> body_;
};

/// Starts `c` (bound already) with `body`: posts the starter to the child's executor. Never
/// throws: if the post fails, the starter reports the child abandoned.
template <class T>
void start_child(std::shared_ptr<child<T>> c, task<T> body) noexcept {
  child_starter<T> starter(std::move(c), std::move(body));
  try {
    boost::asio::any_io_executor ex = starter.executor();
    boost::asio::post(ex, std::move(starter));
  } catch (...) {
    // The starter, moved into the failed post or still here, reports the child when destroyed.
  }
}

}  // namespace ferry::detail
