// ferry/bridge/detail/offload_op.hpp — the state of one offload, to_thread or run_in_executor.
//
// One offload_op is allocated per operation, with the completion handler's associated allocator
// (Asio's thread-local recycling allocator by default, so the steady state allocates nothing).
// It is a detail::job: the pool runs it in place, no further wrapper is allocated.
//
// Ownership and the state machine. Two sides touch the op:
//  - the pool side (the job run by a pool thread: `do_run`), and
//  - the completion side (everything that runs on the handler's executor: the cancellation
//    handler and the posted completion). Asio requires cancellation to be emitted from the
//    handler's own execution context, so these never run concurrently with each other.
//
//   queued --(pool: CAS)--> running --> result stored, completion posted (normal)
//   queued --(cancel: CAS)--> cancelled --> completion posted (aborted_shared); the pool side,
//            finding `cancelled`, does not run f. Both sides then `release`; the second frees.
//   waiting for admission --(cancel: cpu_pool::withdraw)--> never reaches the pool
//            (aborted_sole): the completion side alone owns the op.
//
// On the normal path the pool side's last access is the post of the completion, which then owns
// the op: no reference count on the fast path, one CAS on each side.
//
// The completion is posted with an allocator that hands out a buffer inside the op, so the hand
// back to an io_context allocates nothing. Asio releases that buffer before it invokes the
// completion; if the completion is destroyed without being invoked (its execution context shut
// down), the op is freed when Asio releases the buffer.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/require.hpp>
#include <boost/system/system_error.hpp>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "ferry/bridge/detail/context_lookup.hpp"
#include "ferry/bridge/detail/loop_inbox.hpp"
#include "ferry/core/cpu_pool.hpp"
#include "ferry/core/detail/job.hpp"
#include "ferry/core/detail/pool_access.hpp"
#include "ferry/io/detail/basic_op.hpp"

namespace ferry::detail {

// --- what f takes and returns --------------------------------------------------------------

template <class F>
inline constexpr bool takes_stop_token_v = std::is_invocable_v<std::decay_t<F>&&, std::stop_token>;

template <class F, bool = takes_stop_token_v<F>>
struct offload_result {
  using type = std::decay_t<std::invoke_result_t<std::decay_t<F>&&>>;
};

template <class F>
struct offload_result<F, true> {
  using type = std::decay_t<std::invoke_result_t<std::decay_t<F>&&, std::stop_token>>;
};

/// The value an offload of `F` delivers (f's return type, decayed).
template <class F>
using offload_result_t = typename offload_result<F>::type;

template <class R>
struct offload_signature {
  using type = void(std::exception_ptr, R);
};

template <>
struct offload_signature<void> {
  using type = void(std::exception_ptr);
};

template <class F>
using offload_signature_t = typename offload_signature<offload_result_t<F>>::type;

/// What every offloaded callable must satisfy; checked where the user calls, with a message.
template <class F>
concept offloadable = std::is_constructible_v<std::decay_t<F>, F> &&
    (std::is_invocable_v<std::decay_t<F>&&> || takes_stop_token_v<F>);

template <class F>
constexpr void check_offload_result() {
  using R = offload_result_t<F>;
  static_assert(std::is_void_v<R> || std::is_move_constructible_v<R>,
                "ferry: the result of an offloaded function must be move-constructible");
  static_assert(std::is_void_v<R> || std::is_default_constructible_v<R>,
                "ferry: the result of an offloaded function must be default-constructible (a "
                "failed operation passes R{} beside the exception); return std::optional<R>");
}

template <class R>
struct result_slot {
  template <class Fn>
  void produce(Fn&& fn) {
    value_.emplace(std::forward<Fn>(fn)());
  }
  R take() { return value_ ? R(std::move(*value_)) : R(); }
  std::optional<R> value_;
};

template <>
struct result_slot<void> {
  template <class Fn>
  void produce(Fn&& fn) {
    std::forward<Fn>(fn)();
  }
};

template <bool Enabled>
struct stop_state {
  std::stop_source source_;
  void request_stop() noexcept { source_.request_stop(); }
};

template <>
struct stop_state<false> {
  void request_stop() noexcept {}
};

// --- the non-template part of an op -------------------------------------------------------

enum class completion_kind : unsigned char {
  normal,          // f ran (or threw); the pool side is done with the op
  aborted_shared,  // cancelled while queued in a pool: the pool side still holds the op
  aborted_sole,    // never reached a pool (withdrawn, or its executor dropped it)
  refused,         // never reached a pool, refused at submission: error_ says why
};

class op_base : public job, public inbox_node {
 public:
  static constexpr std::size_t buffer_size = 96;

  /// Completes through `inbox` (see loop_inbox.hpp) instead of posting to the handler's
  /// executor. Set before the op is submitted, on the loop that `inbox` serves.
  void complete_through(loop_inbox* inbox) noexcept {
    inbox_ = inbox;
    inbox->started();
  }

 protected:
  enum : unsigned char { queued, running, cancelled, released };

  using destroy_fn = void (*)(op_base*) noexcept;

  op_base(job::run_fn run, destroy_fn destroy) noexcept : job(run), destroy_(destroy) {}

  /// Drops one side's hold on an op whose f was cancelled while queued; the second frees it.
  void release_shared() noexcept {
    if (state_.exchange(released, std::memory_order_acq_rel) == released) destroy_(this);
  }

  /// The completion side is done with the op: free it, or (aborted_shared) drop its hold. If
  /// Asio still holds the completion buffer, this is deferred until Asio releases it.
  void finish_completion_side(completion_kind kind) noexcept {
    if (buffer_busy_) {
      deferred_ = true;
      deferred_kind_ = kind;
      return;
    }
    if (kind == completion_kind::aborted_shared) {
      release_shared();
    } else {
      destroy_(this);
    }
  }

  std::atomic<unsigned char> state_{queued};
  cpu_pool* admission_ = nullptr;  // the pool whose admission queue may hold this op
  loop_inbox* inbox_ = nullptr;    // the fast lane back to the loop, when eligible

 private:
  template <class T>
  friend class inline_allocator;

  void* allocate_buffer(std::size_t bytes, std::size_t align) {
    if (!buffer_busy_ && bytes <= buffer_size && align <= alignof(std::max_align_t)) {
      buffer_busy_ = true;
      return buffer_;
    }
    return ::operator new(bytes, std::align_val_t(align));
  }

  void deallocate_buffer(void* p, std::size_t align) noexcept {
    if (p != buffer_) {
      ::operator delete(p, std::align_val_t(align));
      return;
    }
    buffer_busy_ = false;
    if (deferred_) {
      deferred_ = false;
      finish_completion_side(deferred_kind_);
    }
  }

  destroy_fn destroy_;
  bool buffer_busy_ = false;
  bool deferred_ = false;
  completion_kind deferred_kind_ = completion_kind::normal;
  alignas(std::max_align_t) unsigned char buffer_[buffer_size];
};

/// Hands Asio the buffer inside an op for the posted completion (falls back to the heap when
/// the buffer is taken or too small).
template <class T>
class inline_allocator {
 public:
  using value_type = T;

  explicit inline_allocator(op_base* op) noexcept : op_(op) {}
  template <class U>
  inline_allocator(const inline_allocator<U>& other) noexcept : op_(other.op_) {}

  T* allocate(std::size_t n) {
    return static_cast<T*>(op_->allocate_buffer(n * sizeof(T), alignof(T)));
  }
  void deallocate(T* p, std::size_t) noexcept { op_->deallocate_buffer(p, alignof(T)); }

  template <class U>
  friend bool operator==(const inline_allocator& a, const inline_allocator<U>& b) noexcept {
    return a.op_ == b.op_;
  }
  template <class U>
  friend bool operator!=(const inline_allocator& a, const inline_allocator<U>& b) noexcept {
    return a.op_ != b.op_;
  }

 private:
  template <class U>
  friend class inline_allocator;
  op_base* op_;
};

// --- the op -------------------------------------------------------------------------------

template <class Handler, class F>
class offload_op final : public op_base, public basic_op<offload_op<Handler, F>, Handler> {
  using base = basic_op<offload_op, Handler>;

 public:
  using result_type = offload_result_t<F>;
  using typename base::executor_type;
  using typename base::handler_allocator;

  /// Allocates the op with the handler's allocator and hooks up the handler's cancellation slot.
  /// `admission` is the pool whose admission queue the op will enter (or nullptr); `target` the
  /// execution context that runs `f`.
  template <class H, class G>
  static offload_op* create(H&& handler,
                            G&& f,
                            cpu_pool* admission,
                            const boost::asio::execution_context& target) {
    offload_op* op = base::allocate(std::forward<H>(handler), std::forward<G>(f), admission);
    op->connect_cancellation([op] { op->cancel(); });
    // A runtime stops its loop without waiting for outstanding work: a post from a thread it
    // does not own (not one of its pools') is counted, so that its destructor can wait for it
    // (runtime.cpp).
    op->foreign_posters_ = foreign_posters(context_of(boost::asio::get_associated_executor(
                                               op->handler_, boost::asio::system_executor())),
                                           target);
    if (op->foreign_posters_ != nullptr) {
      op->foreign_posters_->fetch_add(1, std::memory_order_relaxed);
    }
    return op;
  }

  /// For a target executor that does not run jobs in place: the function object posted to it.
  /// Destroyed without being called (its context shut down), it completes the operation with
  /// operation_aborted instead of leaving the awaiter suspended forever.
  class runner {
   public:
    explicit runner(offload_op* op) noexcept : op_(op) {}
    runner(runner&& other) noexcept : op_(std::exchange(other.op_, nullptr)) {}
    runner& operator=(runner&&) = delete;
    ~runner() {
      if (op_ != nullptr) op_->drop_unrun();
    }
    void operator()() { do_run(std::exchange(op_, nullptr)); }

   private:
    offload_op* op_;
  };

  /// Initiation side: the pool refused the op (`try_offload`, bound full). It completes with
  /// `error`, posted — never inline in the initiating function. The state leaves `queued`, so a
  /// cancellation arriving before the completion runs finds nothing to do.
  void refuse(std::exception_ptr error) noexcept {
    FERRY_ASSERT(state_.load(std::memory_order_relaxed) == queued);  // refused before it ran
    error_ = std::move(error);
    admission_ = nullptr;
    state_.store(cancelled, std::memory_order_relaxed);
    complete_with(completion_kind::refused);
  }

 private:
  friend base;
  friend class owning_completion<offload_op>;
  using completion = owning_completion<offload_op>;

  template <class H, class G>
  offload_op(H&& handler, G&& f, cpu_pool* admission)
      : op_base(&do_run, &do_destroy), base(std::forward<H>(handler)), f_(std::forward<G>(f)) {
    admission_ = admission;
    deliver_ = &do_deliver;
  }

  // Pool side: run f unless the operation was cancelled first.
  static job_outcome do_run(job* j) noexcept {
    auto* self = static_cast<offload_op*>(j);
    unsigned char expected = queued;
    if (!self->state_.compare_exchange_strong(
            expected, running, std::memory_order_acq_rel, std::memory_order_acquire)) {
      FERRY_ASSERT(expected == cancelled || expected == released);
      self->release_shared();  // cancelled while queued: the completion is already posted
      return job_outcome::skipped;
    }
    job_outcome outcome = job_outcome::ran;
    try {
      if constexpr (takes_stop_token_v<F>) {
        self->result_.produce([self]() -> decltype(auto) {
          return std::invoke(std::move(self->f_), self->stop_.source_.get_token());
        });
      } else {
        self->result_.produce(
            [self]() -> decltype(auto) { return std::invoke(std::move(self->f_)); });
      }
    } catch (...) {
      self->error_ = std::current_exception();
      outcome = job_outcome::failed;
    }
    self->complete_with(completion_kind::normal);  // last access: the completion owns the op
    return outcome;
  }

  // Pool side, for a target executor that destroyed the runner without calling it.
  void drop_unrun() noexcept {
    unsigned char expected = queued;
    if (state_.compare_exchange_strong(
            expected, cancelled, std::memory_order_acq_rel, std::memory_order_acquire)) {
      complete_with(completion_kind::aborted_sole);
    } else {
      release_shared();
    }
  }

  // Completion side (the handler's executor): the handler's cancellation slot fired.
  void cancel() {
    if (admission_ != nullptr && pool_access::withdraw(*admission_, this)) {
      // Withdrawn from the admission queue: the op never reached the pool, so it holds no slot.
      FERRY_ASSERT(state_.load(std::memory_order_relaxed) == queued);
      state_.store(cancelled, std::memory_order_relaxed);
      complete_with(completion_kind::aborted_sole);
      return;
    }
    unsigned char expected = queued;
    if (state_.compare_exchange_strong(
            expected, cancelled, std::memory_order_acq_rel, std::memory_order_acquire)) {
      complete_with(completion_kind::aborted_shared);
    } else if (expected == running) {
      stop_.request_stop();
    }
  }

  // Sends the completion to the handler's executor: through the inbox when the op has one
  // (delivered on the loop), posted otherwise. Either way the caller must not touch the op
  // afterwards.
  void complete_with(completion_kind kind) noexcept {
    kind_ = kind;
    std::atomic<std::size_t>* const posters = foreign_posters_;  // the op may go at the post
    if (inbox_ != nullptr) {
      inbox_->push(this);  // last access: the loop owns the op
    } else {
      try {
        this->post_completion(completion(this), inline_allocator<void>(this));
      } catch (...) {
        // Only a failed allocation of a larger-than-inline completion can get here; the
        // completion object, destroyed unrun, destroyed the operation, as its context would.
      }
    }
    // This thread no longer touches the runtime's io_context (see create).
    if (posters != nullptr && posters->fetch_sub(1, std::memory_order_release) == 1) {
      posters->notify_all();
    }
  }

  // Completion side: deliver the outcome (or, with invoke = false, just destroy it).
  void complete(bool invoke) {
    std::exception_ptr error = kind_ == completion_kind::normal || kind_ == completion_kind::refused
                                   ? std::move(error_)
                                   : operation_aborted();
    if constexpr (std::is_void_v<result_type>) {
      this->upcall(invoke, std::move(error));
    } else {
      this->upcall(invoke, std::move(error), result_.take());
    }
  }

  // The completion side is done: free the op, or (aborted_shared) drop its hold on it.
  void release() noexcept { finish_completion_side(kind_); }

  // The loop side of the inbox lane (see loop_inbox.hpp), on a thread of the runtime's loop:
  // a plain io_context handler resumes right here; a strand (or any other executor on the loop)
  // gets the completion dispatched, so it runs here when the strand is free and keeps its
  // order behind the strand's other handlers when it is not. On shutdown (invoke = false), the
  // outcome is destroyed.
  static void do_deliver(inbox_node* node, bool invoke) {
    auto* self = static_cast<offload_op*>(node);
    if (!invoke || self->work_.is_plain_io()) {
      self->mark_completing();
      self->complete(invoke);
      return;
    }
    self->dispatch_completion(completion(self), inline_allocator<void>(self));
  }

  static void do_destroy(op_base* op) noexcept { static_cast<offload_op*>(op)->base::release(); }

  std::decay_t<F> f_;
  [[no_unique_address]] stop_state<takes_stop_token_v<F>> stop_;
  result_slot<result_type> result_;
  std::exception_ptr error_;
  completion_kind kind_ = completion_kind::normal;
  std::atomic<std::size_t>* foreign_posters_ = nullptr;  // see create
};

}  // namespace ferry::detail
