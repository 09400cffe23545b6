// ferry/io/detail/task_registry.hpp — what runtime::dump_tasks reads: a node per task
// (where it was spawned, which of ferry's operations it waits in, since when) and the list of
// live task_groups.
//
// Cost when nobody dumps:
//  - per task: a task_node (4 words) in the child, filled at spawn; no lock beyond the group's
//    own (the group already keeps its unfinished children).
//  - per task_group: one registration in a process-wide list when its state is made and one
//    removal when it is destroyed, under the list's mutex.
//  - per task: one extra suspension when it starts (own_thread records which coroutine is the
//    task's own).
//  - per awaited operation (only when a coroutine awaits it): a thread-local read, a compare, a
//    coarse clock read and two relaxed stores at initiation, one relaxed store and two
//    thread-local writes at completion. Never a lock, never a read-modify-write — except for an
//    operation awaited by a coroutine that is not the task's own (below), which holds the node's
//    owner (a reference count) until it completes.
//
// Which task awaits: a thread-local `current_task`, set only for the extent of code that runs a
// task's coroutine and that ferry controls — the start of a group child (child_starter), of
// run's main, and the completion of an operation noted here (noted_handler), which resumes the
// coroutine until its next suspension. An operation initiated there is attributed to that task.
// After the coroutine resumes from an operation ferry does not note (a socket read), no task is
// current while it runs: its later waits are not shown (it shows as "running, or awaiting an
// operation ferry does not track"), never attributed to another task.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdint>
#include <ctime>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "ferry/detail/thread_annotations.hpp"

namespace boost::asio::detail {
template <typename, typename...>
class awaitable_handler;
}  // namespace boost::asio::detail

namespace ferry {

/// Where a task was spawned (what runtime::dump_tasks shows): `spawn_location::current()` as a
/// default argument is the caller's file and line, like `std::source_location::current()` —
/// which clang 14 with libstdc++ 12 does not offer, hence the builtins both compilers have.
struct spawn_location {
  const char* file = "";
  std::uint_least32_t line = 0;

  static constexpr spawn_location current(const char* file = __builtin_FILE(),
                                          std::uint_least32_t line = __builtin_LINE()) noexcept {
    return {file, line};
  }
};

}  // namespace ferry

namespace ferry::detail {

/// A task as dump_tasks shows it. Written by the task's own threads (relaxed atomics), read by
/// dump_tasks while the task is alive (under its group's lock, or run's).
struct task_node {
  const char* file = "";
  std::uint_least32_t line = 0;
  std::atomic<bool> started{false};
  std::atomic<const char*> waiting{nullptr};  // the operation it awaits, or nullptr
  std::atomic<std::int64_t> since_ns{0};      // now_ns() when it started to wait
  /// The task's own coroutine: the entry point of its Asio coroutine thread (set by
  /// mark_own_thread when the task starts, cleared when its body ends), or nullptr. An
  /// operation that coroutine awaits needs no hold on the node: the suspended task keeps it.
  std::atomic<const void*> own_thread{nullptr};
  /// What owns the node (a task_group child, run's state). An operation awaited by a coroutine
  /// that is not the task's own — one it co_spawned, started inline while the task was current,
  /// which may outlive it — holds the owner, so a note written when the operation completes
  /// never lands in freed memory. Not set: such operations note nothing on the node.
  std::weak_ptr<const void> owner;

  /// CLOCK_MONOTONIC_COARSE (a few ns to read, a few ms of resolution): what a wait in the
  /// dump needs, at a fraction of a precise clock's cost on every awaited operation.
  static std::int64_t now_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  }
};

/// The task whose coroutine the calling thread runs (see the file comment), or nullptr.
inline thread_local task_node* current_task = nullptr;

/// Makes `node` the current task for the scope's extent (then restores the previous one).
class task_scope {
 public:
  explicit task_scope(task_node* node, bool starting = false) noexcept
      : previous_(std::exchange(current_task, node)) {
    if (starting && node != nullptr) node->started.store(true, std::memory_order_relaxed);
  }
  ~task_scope() { current_task = previous_; }
  task_scope(const task_scope&) = delete;
  task_scope& operator=(const task_scope&) = delete;

 private:
  task_node* previous_;
};

template <class Handler>
inline constexpr bool is_coroutine_handler = false;
template <class... Ts>
inline constexpr bool is_coroutine_handler<boost::asio::detail::awaitable_handler<Ts...>> = true;

/// A completion handler that, when invoked, clears its task's note and makes the task current
/// while the coroutine runs. Forwards every association of the handler it wraps.
template <class Handler>
class noted_handler {
 public:
  noted_handler(Handler handler, task_node* node, std::shared_ptr<const void> keep) noexcept(
      std::is_nothrow_move_constructible_v<Handler>)
      : handler_(std::move(handler)), node_(node), keep_(std::move(keep)) {}

  template <class... Args>
  void operator()(Args&&... args) {
    task_node* node = node_;
    if (node != nullptr) node->waiting.store(nullptr, std::memory_order_relaxed);
    task_scope scope(node);
    std::move(handler_)(std::forward<Args>(args)...);
  }

  const Handler& get() const noexcept { return handler_; }

 private:
  Handler handler_;
  task_node* node_;
  std::shared_ptr<const void> keep_;  // holds node_ for a coroutine not the task's own (owner)
};

/// Wraps an operation's initiation: when a coroutine awaits it, notes "waiting in `what`" on
/// the current task and wraps the handler in a noted_handler. Other completion tokens go
/// through untouched.
template <class Initiation>
class noted_initiation {
 public:
  noted_initiation(const char* what, Initiation init) : what_(what), init_(std::move(init)) {}

  template <class Handler, class... Args>
  void operator()(Handler&& handler, Args&&... args) {
    if constexpr (is_coroutine_handler<std::decay_t<Handler>>) {
      task_node* node = current_task;
      std::shared_ptr<const void> keep;
      if (node != nullptr &&
          node->own_thread.load(std::memory_order_relaxed) != handler.entry_point()) {
        keep = node->owner.lock();            // not the task's own coroutine: hold the node
        if (keep == nullptr) node = nullptr;  // an owner that is gone (or none): note nothing
      }
      if (node != nullptr) {
        node->since_ns.store(task_node::now_ns(), std::memory_order_relaxed);
        node->waiting.store(what_, std::memory_order_relaxed);
      }
      init_(noted_handler<std::decay_t<Handler>>(
                std::forward<Handler>(handler), node, std::move(keep)),
            std::forward<Args>(args)...);
    } else {
      init_(std::forward<Handler>(handler), std::forward<Args>(args)...);
    }
  }

 private:
  const char* what_;
  Initiation init_;
};

/// The first step of a task's body (run_child, run's main): `own_thread_mark mark(node);
/// co_await record_own_thread(node);` records the awaiting coroutine as `node`'s own
/// (task_node::own_thread). The mark, a local of the body, clears the record when the body's
/// frame ends, so the address of a finished coroutine is never taken for a later one's.
class own_thread_mark {
 public:
  explicit own_thread_mark(task_node* node) noexcept : node_(node) {}
  ~own_thread_mark() { node_->own_thread.store(nullptr, std::memory_order_relaxed); }
  own_thread_mark(const own_thread_mark&) = delete;
  own_thread_mark& operator=(const own_thread_mark&) = delete;

 private:
  task_node* node_;
};

/// The handler of an operation gives its coroutine thread's entry point; the operation
/// resumes the coroutine at once, on the same thread, inside its own initiation. Suspending
/// marks the thread as having switched context, which co_spawn reads to decide whether to post
/// or dispatch the spawner's completion handler (task_group and run rely on it being posted for
/// a body that never really suspends), so the mark is put back as it was: nothing switched.
template <class Executor = boost::asio::any_io_executor>
boost::asio::awaitable<void, Executor> record_own_thread(task_node* node) {
  bool& switched = co_await boost::asio::detail::awaitable_thread_has_context_switched{};
  const bool was = switched;
  co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<Executor>&, void()>(
      [node](auto handler) {
        node->own_thread.store(handler.entry_point(), std::memory_order_relaxed);
        std::move(handler)();
      },
      boost::asio::use_awaitable_t<Executor>());
  switched = was;
}

/// `async_initiate<Token, Sig>(noted("queue::get", init), token, args...)`.
template <class Initiation>
noted_initiation<std::decay_t<Initiation>> noted(const char* what, Initiation&& init) {
  return noted_initiation<std::decay_t<Initiation>>(what, std::forward<Initiation>(init));
}

/// `boost::asio::async_initiate<Token, Signatures...>(init, token, args...)`, noted as
/// waiting in `what` when a coroutine awaits it (the one-line hook of each ferry operation).
template <class Token, class... Signatures, class Initiation, class... Args>
auto noted_initiate(const char* what, Initiation&& init, Token& token, Args&&... args) {
  return boost::asio::async_initiate<Token, Signatures...>(
      noted(what, std::forward<Initiation>(init)), token, std::forward<Args>(args)...);
}

/// What dump_tasks knows of one child, copied under its group's lock.
struct task_info {
  const task_node* node = nullptr;  // identity only
  const char* file = "";
  std::uint_least32_t line = 0;
  bool started = false;
  const char* waiting = nullptr;
  std::int64_t since_ns = 0;

  static task_info of(const task_node& n) noexcept {
    task_info i;
    i.node = &n;
    i.file = n.file;
    i.line = n.line;
    i.started = n.started.load(std::memory_order_relaxed);
    i.waiting = n.waiting.load(std::memory_order_relaxed);
    i.since_ns = i.waiting != nullptr ? n.since_ns.load(std::memory_order_relaxed) : 0;
    return i;
  }
};

/// What dump_tasks knows of one group.
struct group_info {
  const void* id = nullptr;
  const task_node* parent = nullptr;  // the task that created it (identity only), or nullptr
  std::vector<task_info> children;
};

class group_registry;

/// A task_group's registration (its shared state derives from it).
class registered_group {
 public:
  registered_group(const registered_group&) = delete;
  registered_group& operator=(const registered_group&) = delete;

  /// Copies the unfinished children (under the group's own lock).
  virtual void snapshot(std::vector<task_info>& out) const = 0;

 protected:
  explicit registered_group(const boost::asio::execution_context* context) noexcept
      : context_(context), parent_(current_task) {}
  ~registered_group() = default;
  /// At the end of the derived constructor: from then on dump_tasks may call snapshot.
  inline void enroll() noexcept;
  /// At the start of the derived destructor: afterwards snapshot is never called.
  inline void withdraw() noexcept;

 private:
  friend class group_registry;
  const boost::asio::execution_context* context_;
  const task_node* parent_;  // current_task at construction
  registered_group* prev_ = nullptr;
  registered_group* next_ = nullptr;
};

/// Every live task_group of the process.
class group_registry {
 public:
  static group_registry& instance() noexcept {
    static group_registry registry;
    return registry;
  }

  /// The groups whose executor belongs to one of `contexts`.
  std::vector<group_info> snapshot(
      std::initializer_list<const boost::asio::execution_context*> contexts) const {
    std::vector<group_info> out;
    detail::lock_guard lock(mutex_);
    for (const registered_group* g = head_; g != nullptr; g = g->next_) {
      bool mine = false;
      for (const auto* c : contexts) mine = mine || c == g->context_;
      if (!mine) continue;
      group_info info;
      info.id = g;
      info.parent = g->parent_;
      g->snapshot(info.children);
      out.push_back(std::move(info));
    }
    return out;
  }

 private:
  friend class registered_group;
  void add(registered_group* g) noexcept {
    detail::lock_guard lock(mutex_);
    g->next_ = head_;
    if (head_ != nullptr) head_->prev_ = g;
    head_ = g;
  }
  void remove(registered_group* g) noexcept {
    detail::lock_guard lock(mutex_);
    if (g->prev_ != nullptr) {
      g->prev_->next_ = g->next_;
    } else {
      head_ = g->next_;
    }
    if (g->next_ != nullptr) g->next_->prev_ = g->prev_;
  }

  mutable detail::mutex mutex_;
  registered_group* head_ FERRY_GUARDED_BY(mutex_) = nullptr;
};

void registered_group::enroll() noexcept { group_registry::instance().add(this); }

void registered_group::withdraw() noexcept { group_registry::instance().remove(this); }

}  // namespace ferry::detail

namespace boost::asio {

template <template <typename, typename> class Associator,
          typename Handler,
          typename DefaultCandidate>
struct associator<Associator, ferry::detail::noted_handler<Handler>, DefaultCandidate> {
  using type = typename Associator<Handler, DefaultCandidate>::type;

  static type get(const ferry::detail::noted_handler<Handler>& h) noexcept {
    return Associator<Handler, DefaultCandidate>::get(h.get());
  }

  static auto get(const ferry::detail::noted_handler<Handler>& h,
                  const DefaultCandidate& c) noexcept
      -> decltype(Associator<Handler, DefaultCandidate>::get(h.get(), c)) {
    return Associator<Handler, DefaultCandidate>::get(h.get(), c);
  }
};

}  // namespace boost::asio
