// ferry/core/src/cpu_pool.cpp — the work-stealing pool on a oneTBB arena.
#include "ferry/core/cpu_pool.hpp"

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/task_scheduler_observer.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "ferry/detail/assert.hpp"
#include "ferry/detail/thread_annotations.hpp"

#if defined(__linux__)
#include <pthread.h>
#endif

#include "ferry/core/detail/admission_control.hpp"
#include "ferry/core/detail/pool_tag.hpp"
#include "ferry/core/detail/spin.hpp"

namespace ferry {
namespace {

using detail::cpu_relax;
using detail::now_ns;

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
    detail::lock_guard lock(mutex_);
    total_ += threads;
    resize();
  }

  void remove(std::size_t threads) {
    detail::lock_guard lock(mutex_);
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
  void resize() FERRY_REQUIRES(mutex_) {
    // max_allowed_parallelism counts one slot for an external thread: workers = value - 1.
    const std::size_t floor = static_cast<std::size_t>(tbb::info::default_concurrency());
    const std::size_t value = std::max(total_ + 1, floor);
    if (control_ && value == value_) return;
    control_.reset();
    control_ =
        std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, value);
    value_ = value;
  }

  detail::mutex mutex_;
  std::size_t total_ FERRY_GUARDED_BY(mutex_) = 0;
  std::size_t value_ FERRY_GUARDED_BY(mutex_) = 0;
  std::unique_ptr<tbb::global_control> control_ FERRY_GUARDED_BY(mutex_);
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

std::int64_t checked_spin(std::chrono::nanoseconds spin) {
  if (spin.count() < 0 || spin > std::chrono::milliseconds(10)) {
    throw std::invalid_argument("ferry::cpu_pool: spin must be between 0 and 10 ms, got " +
                                std::to_string(spin.count()) + " ns");
  }
  return spin.count();
}

// The scheduling of the pool's workers: the creating thread's, `nice_increment` lower (0..19).
detail::thread_policy worker_policy_for(int nice_increment) {
  if (nice_increment < 0 || nice_increment > 19) {
    throw std::invalid_argument("ferry::cpu_pool: nice_increment must be between 0 and 19, got " +
                                std::to_string(nice_increment));
  }
  return detail::thread_policy::of_this_thread(nice_increment);
}

admission_policy as_policy(std::size_t max_in_flight) {
  return max_in_flight == 0 ? admission_policy::unbounded()
                            : admission_policy::fixed(max_in_flight);
}

// Checks `p` and resolves an adaptive ceiling of 0 to its default (256 per worker).
admission_policy resolved(admission_policy p, std::size_t threads) {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  switch (p.kind) {
    case admission_policy::mode::unbounded:
      break;
    case admission_policy::mode::fixed:
      if (p.limit == 0) {
        throw std::invalid_argument("ferry::cpu_pool: a fixed admission limit must be at least 1");
      }
      break;
    case admission_policy::mode::adaptive:
      if (p.target <= std::chrono::nanoseconds(0) || p.target > seconds(10)) {
        throw std::invalid_argument(
            "ferry::cpu_pool: the adaptive admission target must be above 0 and at most 10 s, "
            "got " +
            std::to_string(p.target.count()) + " ns");
      }
      if (p.interval < milliseconds(1) || p.interval > seconds(10)) {
        throw std::invalid_argument(
            "ferry::cpu_pool: the adaptive admission interval must be between 1 ms and 10 s, "
            "got " +
            std::to_string(p.interval.count()) + " ns");
      }
      if (p.limit == 0) p.limit = 256 * threads;
      p.limit = std::max(p.limit, threads);  // the limit never falls below the workers
      break;
    default:
      throw std::invalid_argument("ferry::cpu_pool: unknown admission mode");
  }
  return p;
}

std::unique_ptr<detail::admission_control> control_for(const admission_policy& p,
                                                       std::size_t threads) {
  if (p.kind != admission_policy::mode::adaptive) return nullptr;
  detail::admission_control::config c;
  c.target_ns = p.target.count();
  c.interval_ns = p.interval.count();
  c.min_limit = threads;
  c.max_limit = p.limit;
  c.initial_limit = 2 * threads;  // room for one queued job per worker, then it adapts
  c.start_ns = now_ns();
  return std::make_unique<detail::admission_control>(c);
}

// What a worker slot holds when its worker spins and no job has been handed over yet.
detail::job* const spin_waiting = reinterpret_cast<detail::job*>(alignof(detail::job));

void bump(std::atomic<std::uint64_t>& a) noexcept {
  a.store(a.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

void unlink(detail::job* j) noexcept {
  j->prev_->next_ = j->next_;
  j->next_->prev_ = j->prev_;
  j->next_ = j->prev_ = nullptr;
}

}  // namespace

// Per arena slot: written only by the worker that holds the slot (oneTBB gives a slot to one
// thread at a time, and hands it over with synchronization), read by `stats` at any time.
struct alignas(64) cpu_pool::worker_slot {
  std::atomic<detail::job*> handoff{nullptr};  // nullptr, spin_waiting, or a handed-over job
  alignas(64) detail::spin_budget spin;
  std::atomic<std::uint64_t> ran{0}, failed{0}, skipped{0}, handed_off{0};
  latency_histogram queue_wait;
  latency_histogram run_time;
};

// One cell of the batch queue: `seq` says whose turn it is (Vyukov's bounded MPMC queue): equal
// to the position when the cell is free for the push at that position, position + 1 once the job
// is published, position + capacity once it is popped.
struct cpu_pool::batch_cell {
  std::atomic<std::size_t> seq{0};
  detail::job* job = nullptr;
};

namespace {
constexpr std::size_t batch_capacity = 4096;  // a power of two
constexpr std::size_t batch_mask = batch_capacity - 1;

/// Adds one to `count` if it is below `limit` (seq_cst): whether it did. An admission slot, a
/// batch-queue task.
bool increment_below(std::atomic<std::size_t>& count, std::size_t limit) noexcept {
  std::size_t n = count.load(std::memory_order_seq_cst);
  while (n < limit) {
    if (count.compare_exchange_weak(n, n + 1, std::memory_order_seq_cst)) return true;
  }
  return false;
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

  void on_scheduler_entry(bool worker) override {
    current_pool = pool_;
    // A oneTBB worker inherits the name of the thread that first woke the arena (a loop thread,
    // say): give it its own, so top -H, gdb and chrt tell the two apart.
#if defined(__linux__)
    if (worker) pthread_setname_np(pthread_self(), "ferry-cpu");
#endif
    // It also inherits that thread's scheduling (a loop at SCHED_FIFO, say): it takes the
    // pool's instead (see thread_policy.hpp).
    if (worker) pool_->worker_policy_.apply_to_this_thread();
  }
  void on_scheduler_exit(bool) override {
    if (current_pool == pool_) current_pool = nullptr;
  }

 private:
  const cpu_pool* pool_;
};

cpu_pool::cpu_pool(std::size_t threads,
                   std::size_t max_in_flight,
                   std::chrono::nanoseconds spin,
                   int nice_increment)
    : cpu_pool(threads, as_policy(max_in_flight), spin, nice_increment) {}

cpu_pool::cpu_pool(std::size_t threads,
                   const admission_policy& admission,
                   std::chrono::nanoseconds spin,
                   int nice_increment)
    : threads_(resolve_threads(threads)),
      admission_(resolved(admission, threads_)),
      bounded_(admission_.kind != admission_policy::mode::unbounded),
      control_(control_for(admission_, threads_)),
      spin_ns_(checked_spin(spin)),
      worker_policy_(worker_policy_for(nice_increment)),
      arena_(checked_int(threads_), /*reserved_for_masters=*/0),
      slot_count_(threads_ + 1),
      slots_(std::make_unique<worker_slot[]>(slot_count_)),
      batch_(std::make_unique<batch_cell[]>(batch_capacity)) {
  for (std::size_t i = 0; i < slot_count_; ++i) slots_[i].spin = detail::spin_budget(spin_ns_);
  for (std::size_t i = 0; i < batch_capacity; ++i) {
    batch_[i].seq.store(i, std::memory_order_relaxed);
  }
  waiters_.next_ = waiters_.prev_ = &waiters_;
  boost::asio::add_service(*this, new detail::pool_tag<cpu_pool>(*this, this));
  worker_budget::instance().add(threads_);
  arena_.initialize();
  observer_ = std::make_unique<arena_observer>(arena_, *this);
}

cpu_pool::~cpu_pool() {
  stopping_.store(true, std::memory_order_relaxed);
  for (std::size_t n = pending_.load(std::memory_order_acquire); n != 0;
       n = pending_.load(std::memory_order_acquire)) {
    pending_.wait(n, std::memory_order_acquire);
  }
  // A worker raises serving_ before it finishes its first job, and a batch-queue task is counted
  // in it before it is enqueued, so every task that can still touch the pool is counted by now;
  // they see stopping_ (or an empty queue) and leave within one spin check.
  for (std::size_t n = serving_.load(std::memory_order_acquire); n != 0;
       n = serving_.load(std::memory_order_acquire)) {
    serving_.wait(n, std::memory_order_acquire);
  }
  shutdown();
  destroy();
  observer_.reset();
  arena_.terminate();
  worker_budget::instance().remove(threads_);
}

cpu_pool_stats cpu_pool::stats() const {
  cpu_pool_stats s;
  s.threads = threads_;
  s.max_in_flight = max_in_flight();
  s.admitted = admitted_.load(std::memory_order_relaxed);
  if (control_) s.queue_delay = std::chrono::nanoseconds(control_->queue_delay_ns());
  s.submitted = submitted_.load(std::memory_order_relaxed);
  s.skipped = withdrawn_.load(std::memory_order_relaxed);
  s.rejected = rejected_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < slot_count_; ++i) {
    const worker_slot& slot = slots_[i];
    s.completed += slot.ran.load(std::memory_order_relaxed);
    s.failed += slot.failed.load(std::memory_order_relaxed);
    s.skipped += slot.skipped.load(std::memory_order_relaxed);
    s.handed_off += slot.handed_off.load(std::memory_order_relaxed);
    slot.queue_wait.merge_into(s.queue_wait);
    slot.run_time.merge_into(s.run_time);
  }
  latency_histogram::finish(s.queue_wait);
  latency_histogram::finish(s.run_time);
  s.completed += s.failed + s.skipped;
  const std::size_t pending = pending_.load(std::memory_order_relaxed);
  s.waiting = waiting_.load(std::memory_order_relaxed);
  s.in_flight = pending >= s.waiting ? pending - s.waiting : 0;
  return s;
}

bool cpu_pool::running_in_this_thread() const noexcept { return current_pool == this; }

cpu_pool* cpu_pool::current() noexcept { return const_cast<cpu_pool*>(current_pool); }

std::size_t cpu_pool::max_in_flight() const noexcept {
  if (control_) return control_->limit();
  return bounded_ ? admission_.limit : 0;
}

void cpu_pool::submit(detail::job* j) {
  submitted_.fetch_add(1, std::memory_order_relaxed);
  pending_.fetch_add(1, std::memory_order_relaxed);
  j->submitted_ns_ = now_ns();
  j->bounded_ = false;
  enqueue(j);
}

void cpu_pool::submit_bounded(detail::job* j) {
  if (!bounded_) return submit(j);
  submitted_.fetch_add(1, std::memory_order_relaxed);
  pending_.fetch_add(1, std::memory_order_relaxed);
  j->submitted_ns_ = now_ns();
  j->admitted_ns_ = j->submitted_ns_;
  j->bounded_ = true;
  // Take a free slot only when nobody waits, so waiters are admitted in FIFO order.
  if (waiting_.load(std::memory_order_seq_cst) == 0 && try_take_slot()) {
    admitted_.fetch_add(1, std::memory_order_relaxed);
    enqueue(j);
    return;
  }
  if (control_) control_->on_full();
  {
    detail::lock_guard lock(admission_mutex_);
    FERRY_ASSERT(j->next_ == nullptr && j->prev_ == nullptr);  // not queued twice
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

bool cpu_pool::try_submit_bounded(detail::job* j) {
  if (!bounded_) {
    submit(j);
    return true;
  }
  // FIFO fairness: a free slot belongs to the waiters first.
  if (waiting_.load(std::memory_order_seq_cst) != 0 || !try_take_slot()) {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    if (control_) control_->on_full();
    return false;
  }
  admitted_.fetch_add(1, std::memory_order_relaxed);
  submitted_.fetch_add(1, std::memory_order_relaxed);
  pending_.fetch_add(1, std::memory_order_relaxed);
  j->submitted_ns_ = now_ns();
  j->admitted_ns_ = j->submitted_ns_;
  j->bounded_ = true;
  enqueue(j);
  return true;
}

bool cpu_pool::withdraw(detail::job* j) noexcept {
  if (!bounded_) return false;
  {
    detail::lock_guard lock(admission_mutex_);
    if (j->next_ == nullptr) return false;  // admitted already
    FERRY_ASSERT(j->bounded_);              // only a bounded job waits for a slot
    unlink(j);
    [[maybe_unused]] const std::size_t was_waiting =
        waiting_.fetch_sub(1, std::memory_order_seq_cst);
    FERRY_ASSERT(was_waiting > 0);
  }
  withdrawn_.fetch_add(1, std::memory_order_relaxed);
  finish_one();
  return true;
}

void cpu_pool::note_loop_lag(std::chrono::nanoseconds lag) noexcept {
  if (control_ && control_->on_loop_lag(lag.count(), now_ns())) admit_waiters();
}

bool cpu_pool::try_take_slot() noexcept { return increment_below(in_flight_, max_in_flight()); }

void cpu_pool::release_slot() noexcept {
  // A slot is released once, by the job that took it: the count never drops below zero. (It
  // may be above the limit: an adaptive limit falls below the jobs admitted before the cut.)
  [[maybe_unused]] const std::size_t was = in_flight_.fetch_sub(1, std::memory_order_seq_cst);
  FERRY_ASSERT(was > 0);
  if (waiting_.load(std::memory_order_seq_cst) != 0) admit_waiters();
}

void cpu_pool::admit_waiters() noexcept {
  while (waiting_.load(std::memory_order_seq_cst) != 0 && try_take_slot()) {
    detail::job* j = nullptr;
    {
      detail::lock_guard lock(admission_mutex_);
      if (waiters_.next_ != &waiters_) {
        j = waiters_.next_;
        unlink(j);
        [[maybe_unused]] const std::size_t was_waiting =
            waiting_.fetch_sub(1, std::memory_order_seq_cst);
        FERRY_ASSERT(was_waiting > 0);
      }
    }
    if (j == nullptr) {
      // Another thread admitted the last waiter first: give the slot back.
      [[maybe_unused]] const std::size_t was = in_flight_.fetch_sub(1, std::memory_order_seq_cst);
      FERRY_ASSERT(was > 0);
      continue;
    }
    admitted_.fetch_add(1, std::memory_order_relaxed);
    if (control_) j->admitted_ns_ = now_ns();
    enqueue(j);
  }
}

void cpu_pool::enqueue(detail::job* j) {
  if (try_hand_off(j)) return;
  if (batch_push(j)) {
    // `j` may run and be freed from here on. A drainer that finds the queue empty leaves only
    // after it has lowered drainers_ and looked at the queue again (drain): one of the two sees
    // the other (seq_cst on both sides), so a published job always has a drainer.
    add_drainer();  // its first load of drainers_ is the seq_cst load that argument needs
    return;
  }
  // The batch queue is full: one oneTBB task for this job.
  queued_.fetch_add(1, std::memory_order_seq_cst);
  // task_arena::enqueue calls its functor as const: the state lives behind the job pointer.
  arena_.enqueue([this, j] {
    queued_.fetch_sub(1, std::memory_order_relaxed);
    serve(j);
  });
}

bool cpu_pool::batch_push(detail::job* j) noexcept {
  std::size_t pos = batch_tail_.load(std::memory_order_relaxed);
  batch_cell* cell = nullptr;
  for (;;) {
    cell = &batch_[pos & batch_mask];
    const std::size_t seq = cell->seq.load(std::memory_order_acquire);
    const auto diff = static_cast<std::ptrdiff_t>(seq - pos);
    if (diff == 0) {
      if (batch_tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
    } else if (diff < 0) {
      return false;  // full (or the cell's last job is still being popped): never wait for it
    } else {
      pos = batch_tail_.load(std::memory_order_relaxed);
    }
  }
  cell->job = j;
  cell->seq.store(pos + 1, std::memory_order_seq_cst);  // publish; see enqueue
  return true;
}

detail::job* cpu_pool::batch_pop() noexcept {
  std::size_t pos = batch_head_.load(std::memory_order_relaxed);
  batch_cell* cell = nullptr;
  for (;;) {
    cell = &batch_[pos & batch_mask];
    const std::size_t seq = cell->seq.load(std::memory_order_acquire);
    const auto diff = static_cast<std::ptrdiff_t>(seq - (pos + 1));
    if (diff == 0) {
      if (batch_head_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
    } else if (diff < 0) {
      return nullptr;  // empty, or the next job is not published yet: its pusher adds a drainer
    } else {
      pos = batch_head_.load(std::memory_order_relaxed);
    }
  }
  detail::job* j = cell->job;
  cell->seq.store(pos + batch_capacity, std::memory_order_release);
  return j;
}

bool cpu_pool::batch_empty() const noexcept {
  const std::size_t pos = batch_head_.load(std::memory_order_seq_cst);
  return batch_[pos & batch_mask].seq.load(std::memory_order_seq_cst) != pos + 1;
}

// Noexcept: a published job must get a drainer, and there is no way to take it back.
void cpu_pool::add_drainer() noexcept {
  if (!increment_below(drainers_, threads_)) return;  // enough drainers serve the queue
  // Counted before the task exists: the destructor waits for it to end.
  serving_.fetch_add(1, std::memory_order_relaxed);
  arena_.enqueue([this] { drain(); });
}

// A oneTBB task: runs the batch queue's jobs until it is empty, then (spin on) the jobs handed
// to this worker, and leaves once neither brings anything.
void cpu_pool::drain() noexcept {
  const int index = tbb::this_task_arena::current_thread_index();
  worker_slot* slot = index >= 0 && static_cast<std::size_t>(index) < slot_count_
                          ? &slots_[static_cast<std::size_t>(index)]
                          : nullptr;
  for (;;) {
    while (detail::job* j = batch_pop()) {
      run_job(j, slot);
      finish_one();
    }
    if (slot != nullptr && spin_ns_ != 0) {
      if (detail::job* next = spin_for_job(*slot)) {
        bump(slot->handed_off);
        run_job(next, slot);
        finish_one();
        continue;
      }
    }
    if (!batch_empty()) continue;  // the spin ended because a job was pushed
    drainers_.fetch_sub(1, std::memory_order_seq_cst);
    // A job published before the decrement was seen by its pusher as served: look again.
    if (batch_empty() || !increment_below(drainers_, threads_)) break;  // or others serve it
  }
  // The last access to the pool by this task: the destructor waits for serving_ to drain.
  if (serving_.fetch_sub(1, std::memory_order_acq_rel) == 1) serving_.notify_all();
}

bool cpu_pool::try_hand_off(detail::job* j) noexcept {
  if (spinning_.load(std::memory_order_seq_cst) == 0) return false;
  for (std::size_t i = 0; i < slot_count_; ++i) {
    std::atomic<detail::job*>& slot = slots_[i].handoff;
    detail::job* expected = spin_waiting;
    // Release: the spinning worker that takes `j` sees everything written before the submit.
    if (slot.load(std::memory_order_relaxed) == spin_waiting &&
        slot.compare_exchange_strong(
            expected, j, std::memory_order_acq_rel, std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

// A oneTBB task: runs `j`, then the jobs handed to this worker while it spins.
void cpu_pool::serve(detail::job* j) noexcept {
  const int index = tbb::this_task_arena::current_thread_index();
  worker_slot* slot = index >= 0 && static_cast<std::size_t>(index) < slot_count_
                          ? &slots_[static_cast<std::size_t>(index)]
                          : nullptr;
  if (slot == nullptr || spin_ns_ == 0) {
    run_job(j, slot);
    finish_one();
    return;
  }
  serving_.fetch_add(1, std::memory_order_relaxed);
  run_job(j, slot);
  finish_one();
  while (detail::job* next = spin_for_job(*slot)) {
    bump(slot->handed_off);
    run_job(next, slot);
    finish_one();
  }
  // The last access to the pool by this worker: the destructor waits for serving_ to drain.
  if (serving_.fetch_sub(1, std::memory_order_acq_rel) == 1) serving_.notify_all();
}

void cpu_pool::run_job(detail::job* j, worker_slot* slot) noexcept {
  const bool bounded = j->bounded_;
  const std::int64_t submitted = j->submitted_ns_;
  const std::int64_t start = now_ns();
  // The adaptive limit's sensor: how long an admitted job waited for a worker. A raise admits
  // waiters now, while this job runs.
  if (bounded && control_ && control_->on_start(start - j->admitted_ns_, start)) admit_waiters();
  // j may free itself in run(): nothing of it is read afterwards.
  const detail::job_outcome outcome = tbb::this_task_arena::isolate([j] { return j->run(); });
  if (slot != nullptr) {
    switch (outcome) {
      case detail::job_outcome::ran:
        bump(slot->ran);
        break;
      case detail::job_outcome::failed:
        bump(slot->failed);
        break;
      case detail::job_outcome::skipped:
        bump(slot->skipped);
        break;
    }
    if (outcome != detail::job_outcome::skipped) {
      slot->queue_wait.record_ns(start - submitted);
      slot->run_time.record_ns(now_ns() - start);
    }
  }
  if (bounded) release_slot();
}

// Spins on the worker's slot for the next job; nullptr once the budget is spent, something is
// queued in the arena (oneTBB will hand it to this worker), or the pool is being destroyed.
detail::job* cpu_pool::spin_for_job(worker_slot& slot) noexcept {
  if (queued_.load(std::memory_order_relaxed) != 0 || stopping_.load(std::memory_order_relaxed) ||
      !batch_empty()) {
    return nullptr;
  }
  slot.handoff.store(spin_waiting, std::memory_order_relaxed);
  spinning_.fetch_add(1, std::memory_order_seq_cst);
  const std::int64_t start = now_ns();
  const std::int64_t deadline = start + slot.spin.ns();
  detail::spin_pacer pace(start);
  detail::job* got = nullptr;
  for (;;) {
    detail::job* h = slot.handoff.load(std::memory_order_acquire);
    if (h != spin_waiting) {
      got = h;
      break;
    }
    std::int64_t now = 0;
    if (!pace.tick(now)) continue;
    if (now >= deadline || queued_.load(std::memory_order_relaxed) != 0 ||
        stopping_.load(std::memory_order_relaxed) || !batch_empty()) {
      detail::job* expected = spin_waiting;
      if (slot.handoff.compare_exchange_strong(
              expected, nullptr, std::memory_order_acq_rel, std::memory_order_acquire)) {
        break;  // nothing came: give up
      }
      got = expected;  // a job landed just now
      break;
    }
    pace.rest(now);  // see spin.hpp: the thread that hands the next job over may want this core
  }
  spinning_.fetch_sub(1, std::memory_order_relaxed);
  if (got != nullptr) {
    slot.handoff.store(nullptr, std::memory_order_relaxed);
    slot.spin.rewarded();
  } else {
    slot.spin.unrewarded();
  }
  return got;
}

void cpu_pool::finish_one() noexcept {
  // The last access to the pool by a job: once pending_ reaches zero the destructor may proceed.
  // notify_all only hands the address to the futex syscall; it does not read the object.
  const std::size_t was = pending_.fetch_sub(1, std::memory_order_acq_rel);
  FERRY_ASSERT(was > 0);  // a job finishes once
  if (was == 1) pending_.notify_all();
}

}  // namespace ferry
