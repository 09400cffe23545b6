// ferry/core/src/cpu_pool.cpp — the work-stealing pool on a oneTBB arena.
#include "ferry/core/cpu_pool.hpp"

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/task_scheduler_observer.h>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <thread>

#include "ferry/core/detail/pool_tag.hpp"

namespace ferry {
namespace {

// The pool whose arena the current thread is in (nullptr on other threads).
thread_local const cpu_pool* current_pool = nullptr;

// oneTBB's global worker limit must cover the workers of every live pool, or an arena gets fewer
// workers than it asked for. One process-wide global_control, resized as pools come and go.
class worker_budget {
 public:
  static worker_budget& instance() {
    static worker_budget budget;
    return budget;
  }

  void add(std::size_t threads) {
    std::lock_guard lock(mutex_);
    total_ += threads;
    resize();
  }

  void remove(std::size_t threads) {
    std::lock_guard lock(mutex_);
    total_ -= threads;
    if (total_ == 0) {
      // No pool left: stop constraining oneTBB (global_control values combine by minimum, so
      // a leftover control would cap whatever the program sets later).
      control_.reset();
      value_ = 0;
      return;
    }
    resize();
  }

 private:
  void resize() {
    // max_allowed_parallelism counts one slot for an external thread: workers = value - 1.
    const std::size_t floor = static_cast<std::size_t>(tbb::info::default_concurrency());
    const std::size_t value = std::max(total_ + 1, floor);
    if (control_ && value == value_) return;
    control_.reset();
    control_ =
        std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, value);
    value_ = value;
  }

  std::mutex mutex_;
  std::size_t total_ = 0;
  std::size_t value_ = 0;
  std::unique_ptr<tbb::global_control> control_;
};

std::size_t resolve_threads(std::size_t threads) {
  if (threads != 0) return threads;
  const int n = tbb::info::default_concurrency();
  return n > 0 ? static_cast<std::size_t>(n) : std::size_t{1};
}

int checked_int(std::size_t threads) {
  if (threads > 4096) {
    throw std::invalid_argument("ferry::cpu_pool: " + std::to_string(threads) +
                                " threads requested; the limit is 4096");
  }
  return static_cast<int>(threads);
}

void unlink(detail::job* j) noexcept {
  j->prev_->next_ = j->next_;
  j->next_->prev_ = j->prev_;
  j->next_ = j->prev_ = nullptr;
}

}  // namespace

// Marks the threads inside the pool's arena — the workers running submitted jobs and the ones
// that steal their nested subtasks alike — so `current()` answers on all of them.
class cpu_pool::arena_observer final : public tbb::task_scheduler_observer {
 public:
  arena_observer(tbb::task_arena& arena, const cpu_pool& pool)
      : tbb::task_scheduler_observer(arena), pool_(&pool) {
    observe(true);
  }
  ~arena_observer() override { observe(false); }

  void on_scheduler_entry(bool) override { current_pool = pool_; }
  void on_scheduler_exit(bool) override {
    if (current_pool == pool_) current_pool = nullptr;
  }

 private:
  const cpu_pool* pool_;
};

cpu_pool::cpu_pool(std::size_t threads, std::size_t max_in_flight)
    : threads_(resolve_threads(threads)),
      max_in_flight_(max_in_flight),
      arena_(checked_int(threads_), /*reserved_for_masters=*/0) {
  waiters_.next_ = waiters_.prev_ = &waiters_;
  boost::asio::add_service(*this, new detail::pool_tag<cpu_pool>(*this, this));
  worker_budget::instance().add(threads_);
  arena_.initialize();
  observer_ = std::make_unique<arena_observer>(arena_, *this);
}

cpu_pool::~cpu_pool() {
  for (std::size_t n = pending_.load(std::memory_order_acquire); n != 0;
       n = pending_.load(std::memory_order_acquire)) {
    pending_.wait(n, std::memory_order_acquire);
  }
  shutdown();
  destroy();
  observer_.reset();
  arena_.terminate();
  worker_budget::instance().remove(threads_);
}

cpu_pool_stats cpu_pool::stats() const noexcept {
  cpu_pool_stats s;
  s.threads = threads_;
  s.max_in_flight = max_in_flight_;
  s.submitted = submitted_.load(std::memory_order_relaxed);
  const std::size_t pending = pending_.load(std::memory_order_relaxed);
  s.completed = s.submitted >= pending ? s.submitted - pending : 0;
  s.waiting = waiting_.load(std::memory_order_relaxed);
  s.in_flight = pending >= s.waiting ? pending - s.waiting : 0;
  return s;
}

bool cpu_pool::running_in_this_thread() const noexcept { return current_pool == this; }

cpu_pool* cpu_pool::current() noexcept { return const_cast<cpu_pool*>(current_pool); }

void cpu_pool::submit(detail::job* j) {
  submitted_.fetch_add(1, std::memory_order_relaxed);
  pending_.fetch_add(1, std::memory_order_relaxed);
  enqueue(j, false);
}

void cpu_pool::submit_bounded(detail::job* j) {
  if (max_in_flight_ == 0) return submit(j);
  submitted_.fetch_add(1, std::memory_order_relaxed);
  pending_.fetch_add(1, std::memory_order_relaxed);
  // Take a free slot only when nobody waits, so waiters are admitted in FIFO order.
  if (waiting_.load(std::memory_order_seq_cst) == 0 && try_take_slot()) {
    enqueue(j, true);
    return;
  }
  {
    std::lock_guard lock(admission_mutex_);
    j->prev_ = waiters_.prev_;
    j->next_ = &waiters_;
    waiters_.prev_->next_ = j;
    waiters_.prev_ = j;
    waiting_.fetch_add(1, std::memory_order_seq_cst);
  }
  // A slot freed between the check above and the increment of waiting_ was released by a thread
  // that saw no waiter: take it now (seq_cst on both counters makes one side see the other).
  admit_waiters();
}

bool cpu_pool::withdraw(detail::job* j) noexcept {
  if (max_in_flight_ == 0) return false;
  {
    std::lock_guard lock(admission_mutex_);
    if (j->next_ == nullptr) return false;  // admitted already
    unlink(j);
    waiting_.fetch_sub(1, std::memory_order_seq_cst);
  }
  finish_one();
  return true;
}

bool cpu_pool::try_take_slot() noexcept {
  std::size_t n = in_flight_.load(std::memory_order_seq_cst);
  while (n < max_in_flight_) {
    if (in_flight_.compare_exchange_weak(n, n + 1, std::memory_order_seq_cst)) return true;
  }
  return false;
}

void cpu_pool::release_slot() noexcept {
  in_flight_.fetch_sub(1, std::memory_order_seq_cst);
  if (waiting_.load(std::memory_order_seq_cst) != 0) admit_waiters();
}

void cpu_pool::admit_waiters() noexcept {
  while (waiting_.load(std::memory_order_seq_cst) != 0 && try_take_slot()) {
    detail::job* j = nullptr;
    {
      std::lock_guard lock(admission_mutex_);
      if (waiters_.next_ != &waiters_) {
        j = waiters_.next_;
        unlink(j);
        waiting_.fetch_sub(1, std::memory_order_seq_cst);
      }
    }
    if (j == nullptr) {
      // Another thread admitted the last waiter first: give the slot back.
      in_flight_.fetch_sub(1, std::memory_order_seq_cst);
      continue;
    }
    enqueue(j, true);
  }
}

void cpu_pool::enqueue(detail::job* j, bool bounded) {
  // task_arena::enqueue calls its functor as const: the state lives behind the job pointer.
  arena_.enqueue([this, j, bounded] {
    tbb::this_task_arena::isolate([j] { j->run(); });
    if (bounded) release_slot();
    finish_one();
  });
}

void cpu_pool::finish_one() noexcept {
  // The last access to the pool by a job: once pending_ reaches zero the destructor may proceed.
  // notify_all only hands the address to the futex syscall; it does not read the object.
  if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_all();
}

}  // namespace ferry
