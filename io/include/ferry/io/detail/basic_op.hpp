// ferry/io/detail/basic_op.hpp — the skeleton of every ferry asynchronous operation.
//
// offload, to_thread, run_in_executor, the toolkit's waits, task_group's join and the fan
// operations (gather, race, timeout) are each one object that
//  - is allocated with its completion handler's associated allocator (`basic_op::allocate`,
//    which frees the memory again if construction throws, like Asio's `ptr p = {...}`);
//  - holds the handler, outstanding work on the handler's associated executor (`handler_work`),
//    and the handler's cancellation slot, connected to a filter that lets terminal, partial and
//    total cancellation through (`connect_cancellation`);
//  - ends exactly once, in the handler's execution context, in one of two ways: delivered (the
//    handler is invoked with the result) or destroyed unrun (the context shut down before the
//    completion ran). `owning_completion` is the function object that carries the operation to
//    its executor: calling it delivers, destroying it uncalled destroys;
//  - frees its memory before the upcall (`upcall`), so that a handler starting a new operation
//    reuses it — Asio's `do_complete(owner, ...)`.
//
// The completion protocol (docs/design.md, "Completion: nobody waits for the poster"):
//  - One thread posts a given completion, once (asserted): a pool thread after `f`, a notifier
//    that unlinked a waiter, or the cancellation handler on the handler's own executor.
//  - Before posting, the poster moves the operation's outstanding work into its own frame
//    (`handler_work::post` is `&&`). From the post on it touches nothing of the operation: only
//    its own executor copies (which keep a strand's implementation alive) and the work it holds
//    (which keeps the handler's io_context from running out of work: `run()` cannot return, so a
//    program cannot destroy the context, while the poster is still inside `execute`). Its last
//    act is to drop that work — what an `executor_work_guard` reset on a foreign thread does,
//    Asio's own contract for that case.
//  - The posted completion is outstanding work on its own while it is queued (Asio counts every
//    queued handler), so nothing is lost when the poster drops its hold first.
//  - The completion therefore runs at once, without checking on its poster: no thread ever
//    waits for another thread's progress here.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/require.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/system/system_error.hpp>
#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "ferry/detail/assert.hpp"

namespace ferry::detail {

template <class Handler>
using handler_executor_t =
    boost::asio::associated_executor_t<Handler, boost::asio::system_executor>;

template <class Handler>
using handler_allocator_t =
    boost::asio::associated_allocator_t<Handler, boost::asio::recycling_allocator<void>>;

/// The error an aborted operation completes with.
inline std::exception_ptr operation_aborted() {
  return std::make_exception_ptr(
      boost::system::system_error(boost::asio::error::operation_aborted));
}

// --- handler_work: outstanding work on the handler's executor, and how to reach it ----------

/// Takes `tracked` (outstanding work) into this frame and posts `fn` through an untracked copy:
/// the work is dropped last, once this thread no longer touches the executor (see the file
/// comment). Never runs `fn` inline.
template <class Tracked, class Fn, class Alloc>
void post_holding(Tracked& tracked, Fn&& fn, const Alloc& alloc) {
  namespace execution = boost::asio::execution;
  const Tracked held(std::move(tracked));
  execution::execute(
      boost::asio::prefer(
          boost::asio::require(boost::asio::prefer(held, execution::outstanding_work.untracked),
                               execution::blocking.never),
          execution::relationship.fork,
          execution::allocator(alloc)),
      std::forward<Fn>(fn));
}

/// Like post_holding, but lets the executor run `fn` inline when it allows (called on a thread
/// of the executor's own context: an idle strand runs it at once, a busy one queues it).
template <class Tracked, class Fn, class Alloc>
void dispatch_holding(Tracked& tracked, Fn&& fn, const Alloc& alloc) {
  namespace execution = boost::asio::execution;
  const Tracked held(std::move(tracked));
  execution::execute(
      boost::asio::prefer(boost::asio::prefer(held, execution::outstanding_work.untracked),
                          execution::blocking.possibly,
                          execution::allocator(alloc)),
      std::forward<Fn>(fn));
}

template <class Executor>
using tracked_executor_t = std::decay_t<decltype(boost::asio::prefer(
    std::declval<const Executor&>(), boost::asio::execution::outstanding_work.tracked))>;

/// Holds the handler's executor with outstanding work tracked while the operation is in
/// flight, and hands the completion to it: `post` (from any thread, never inline) or `dispatch`
/// (from a thread of the executor's own context: inline when the executor allows — an idle
/// strand, an io_context on its own thread). Both consume the work (see the file comment).
template <class Executor, bool = boost::asio::execution::is_executor<Executor>::value>
class handler_work {
 public:
  explicit handler_work(const Executor& ex)
      : work_(boost::asio::prefer(ex, boost::asio::execution::outstanding_work.tracked)) {}

  template <class Fn, class Alloc>
  void post(Fn&& fn, const Alloc& alloc) && {
    post_holding(work_, std::forward<Fn>(fn), alloc);
  }

  template <class Fn, class Alloc>
  void dispatch(Fn&& fn, const Alloc& alloc) && {
    dispatch_holding(work_, std::forward<Fn>(fn), alloc);
  }

  /// True when a completion may run inline on a thread of the executor's io_context with no
  /// dispatch at all: the executor is a plain io_context executor (no strand, no wrapper).
  bool is_plain_io() const noexcept {
    return std::is_same_v<Executor, boost::asio::io_context::executor_type>;
  }

 private:
  tracked_executor_t<Executor> work_;
};

/// A Networking TS style executor: work is counted with a work guard.
template <class Executor>
class handler_work<Executor, false> {
 public:
  explicit handler_work(const Executor& ex) : work_(ex) {}

  template <class Fn, class Alloc>
  void post(Fn&& fn, const Alloc& alloc) && {
    const boost::asio::executor_work_guard<Executor> held(std::move(work_));
    Executor ex = held.get_executor();
    ex.post(std::forward<Fn>(fn), alloc);
  }

  template <class Fn, class Alloc>
  void dispatch(Fn&& fn, const Alloc& alloc) && {
    const boost::asio::executor_work_guard<Executor> held(std::move(work_));
    Executor ex = held.get_executor();
    ex.dispatch(std::forward<Fn>(fn), alloc);
  }

  bool is_plain_io() const noexcept { return false; }

 private:
  boost::asio::executor_work_guard<Executor> work_;
};

/// Coroutines have an any_io_executor: going through the polymorphic wrapper costs an
/// allocation and an indirect call per hand-off, so when its target is a plain io_context
/// executor or a strand of one (a task_group child, a server connection), use that directly.
template <>
class handler_work<boost::asio::any_io_executor, true> {
  using io_executor = boost::asio::io_context::executor_type;
  using io_strand = boost::asio::strand<io_executor>;

 public:
  explicit handler_work(const boost::asio::any_io_executor& ex) {
    namespace execution = boost::asio::execution;
    if (const auto* io = ex.target<io_executor>()) {
      io_.emplace(boost::asio::prefer(*io, execution::outstanding_work.tracked));
    } else if (const auto* strand = ex.target<io_strand>()) {
      strand_.emplace(boost::asio::prefer(*strand, execution::outstanding_work.tracked));
    } else {
      any_ = boost::asio::prefer(ex, execution::outstanding_work.tracked);
    }
  }

  template <class Fn, class Alloc>
  void post(Fn&& fn, const Alloc& alloc) && {
    if (io_) {
      post_holding(*io_, std::forward<Fn>(fn), alloc);
    } else if (strand_) {
      post_holding(*strand_, std::forward<Fn>(fn), alloc);
    } else {
      post_holding(any_, std::forward<Fn>(fn), alloc);
    }
  }

  template <class Fn, class Alloc>
  void dispatch(Fn&& fn, const Alloc& alloc) && {
    if (io_) {
      dispatch_holding(*io_, std::forward<Fn>(fn), alloc);
    } else if (strand_) {
      dispatch_holding(*strand_, std::forward<Fn>(fn), alloc);
    } else {
      dispatch_holding(any_, std::forward<Fn>(fn), alloc);
    }
  }

  bool is_plain_io() const noexcept { return io_.has_value(); }

 private:
  std::optional<tracked_executor_t<io_executor>> io_;
  std::optional<tracked_executor_t<io_strand>> strand_;
  boost::asio::any_io_executor any_;
};

/// Posts `fn` to `ex` from any thread under the completion protocol: the calling thread holds
/// outstanding work on `ex` until it has returned from the post.
template <class Executor, class Fn>
void post_holding_work(const Executor& ex, Fn&& fn) {
  std::move(handler_work<Executor>(ex))
      .post(std::forward<Fn>(fn), boost::asio::recycling_allocator<void>());
}

// --- owning_completion: the function object a completion travels in ------------------------

/// Owns the operation until it runs (`op->complete(true)`: deliver) or is destroyed unrun
/// because its execution context shut down (`op->complete(false)`: destroy without invoking).
template <class Op>
class owning_completion {
 public:
  explicit owning_completion(Op* op) noexcept : op_(op) {}
  owning_completion(owning_completion&& other) noexcept : op_(std::exchange(other.op_, nullptr)) {}
  owning_completion& operator=(owning_completion&&) = delete;
  ~owning_completion() {
    if (op_ != nullptr) op_->complete(false);
  }

  void operator()() { std::exchange(op_, nullptr)->complete(true); }

 private:
  Op* op_;
};

// --- basic_op ---------------------------------------------------------------------------

/// The parts every operation shares. `Derived` befriends `basic_op` and provides
/// `complete(bool invoke)`, which moves its result out and calls `upcall`; it may replace
/// `release()` (default: destroy and free) when the operation is shared with another side.
template <class Derived, class Handler>
class basic_op {
 public:
  using handler_type = Handler;
  using executor_type = handler_executor_t<Handler>;
  using handler_allocator = handler_allocator_t<Handler>;

  /// Allocates and constructs a `Derived(handler, args...)` with the handler's allocator.
  template <class H, class... Args>
  static Derived* allocate(H&& handler, Args&&... args) {
    handler_allocator base =
        boost::asio::get_associated_allocator(handler, boost::asio::recycling_allocator<void>());
    op_allocator alloc(base);
    Derived* op = std::allocator_traits<op_allocator>::allocate(alloc, 1);
    try {
      ::new (static_cast<void*>(op)) Derived(std::forward<H>(handler), std::forward<Args>(args)...);
    } catch (...) {
      std::allocator_traits<op_allocator>::deallocate(alloc, op, 1);
      throw;
    }
    return op;
  }

 protected:
  template <class H>
  explicit basic_op(H&& handler)
      : handler_(std::forward<H>(handler)),
        alloc_(boost::asio::get_associated_allocator(handler_,
                                                     boost::asio::recycling_allocator<void>())),
        work_(boost::asio::get_associated_executor(handler_, boost::asio::system_executor())) {}
  basic_op(const basic_op&) = delete;
  basic_op& operator=(const basic_op&) = delete;
  ~basic_op() = default;

  /// Connects the handler's cancellation slot (if it has one) to `on_cancel()`, called for
  /// terminal, partial and total cancellation — in the handler's execution context, as Asio
  /// requires of whoever emits it.
  template <class OnCancel>
  void connect_cancellation(OnCancel on_cancel) {
    slot_ = boost::asio::get_associated_cancellation_slot(handler_);
    if (slot_.is_connected()) slot_.template emplace<filtered<OnCancel>>(std::move(on_cancel));
  }

  /// Posts the completion (an `owning_completion` of the operation) to the handler's executor:
  /// once, from any thread; see the protocol in the file comment. The caller must not touch the
  /// operation afterwards.
  template <class Fn, class Alloc>
  void post_completion(Fn&& fn, const Alloc& alloc) {
    mark_completing();
    std::move(work_).post(std::forward<Fn>(fn), alloc);
  }
  template <class Fn>
  void post_completion(Fn&& fn) {
    const handler_allocator alloc = alloc_;
    post_completion(std::forward<Fn>(fn), alloc);
  }

  /// Hands the completion to the handler's executor from a thread of its own execution context:
  /// inline when the executor allows, queued on it (a busy strand) otherwise.
  template <class Fn, class Alloc>
  void dispatch_completion(Fn&& fn, const Alloc& alloc) {
    mark_completing();
    std::move(work_).dispatch(std::forward<Fn>(fn), alloc);
  }

  /// Marks the operation as completing without a post (it completes inline, in its handler's
  /// context). Each operation completes once: the debug build checks it.
  void mark_completing() noexcept {
    FERRY_ASSERT(!completing_);
#if FERRY_ASSERTS_ENABLED
    completing_ = true;
#endif
  }

  /// The end of the operation, in the handler's execution context: disconnects the slot, moves
  /// the handler out, releases the operation (its memory is free from here on), then invokes the
  /// handler with `results` (already moved out of the operation) unless `invoke` is false.
  template <class... Results>
  void upcall(bool invoke, Results... results) {
    if (slot_.is_connected()) slot_.clear();
    // Work still held here (a completion delivered inline on the loop) lasts until the handler
    // has returned.
    [[maybe_unused]] handler_work<executor_type> work(std::move(work_));
    Handler handler(std::move(handler_));
    static_cast<Derived*>(this)->release();
    if (invoke) std::move(handler)(std::move(results)...);
  }

  /// Destroys and frees the operation.
  void release() noexcept {
    auto* self = static_cast<Derived*>(this);
    op_allocator alloc(alloc_);
    self->~Derived();
    std::allocator_traits<op_allocator>::deallocate(alloc, self, 1);
  }

  Handler handler_;
  handler_allocator alloc_;
  handler_work<executor_type> work_;
  boost::asio::cancellation_slot slot_;

 private:
  using op_allocator =
      typename std::allocator_traits<handler_allocator>::template rebind_alloc<Derived>;

  template <class OnCancel>
  struct filtered {
    explicit filtered(OnCancel fn) noexcept(std::is_nothrow_move_constructible_v<OnCancel>)
        : fn_(std::move(fn)) {}
    void operator()(boost::asio::cancellation_type_t type) {
      using ct = boost::asio::cancellation_type;
      if ((type & (ct::terminal | ct::partial | ct::total)) != ct::none) fn_();
    }
    OnCancel fn_;
  };

#if FERRY_ASSERTS_ENABLED
  bool completing_ = false;
#endif
};

}  // namespace ferry::detail
