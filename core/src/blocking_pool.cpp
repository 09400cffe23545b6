// ferry/core/src/blocking_pool.cpp — elastic threads for blocking calls (no TBB here, on
// purpose: blocking calls must never run on the work-stealing pool's threads).
#include "ferry/core/blocking_pool.hpp"

#include <pthread.h>

#include <algorithm>
#include <stdexcept>
#include <thread>
#include <utility>

#include "ferry/core/detail/pool_tag.hpp"

namespace ferry {

namespace {

// The pool whose worker_loop the current thread is running, if any.
thread_local const blocking_pool* current_pool = nullptr;

}  // namespace

// One per thread. Nodes live in workers_ from reservation until the thread has exited and its
// std::thread is set, then in zombies_ until joined; std::list never moves them, so a thread may
// hold a pointer to its own node.
struct blocking_pool::worker {
  std::thread thread;                // set by the thread that started it, under the lock
  std::list<worker>::iterator self;  // this node's position, for splicing into zombies_
  std::condition_variable wake;      // signalled when this thread is handed a job or stopped
  detail::job* assigned = nullptr;   // a job handed directly to this thread
  worker* idle_prev = nullptr;       // links in the idle stack, valid while `idle`
  worker* idle_next = nullptr;
  bool idle = false;
  bool exited = false;  // worker_loop has finished with the pool's state
};

namespace {

// Clamped so that `steady_clock::now() + idle_timeout` cannot overflow (a century is "never").
std::chrono::milliseconds clamp_idle_timeout(std::chrono::milliseconds t) noexcept {
  constexpr std::chrono::milliseconds longest = std::chrono::hours(24 * 365 * 100);
  return std::clamp(t, std::chrono::milliseconds::zero(), longest);
}

}  // namespace

blocking_pool::blocking_pool(std::size_t max_threads, std::chrono::milliseconds idle_timeout)
    : max_threads_(max_threads),
      idle_timeout_(clamp_idle_timeout(idle_timeout)),
      thread_policy_(detail::thread_policy::of_this_thread()) {
  if (max_threads == 0) {
    throw std::invalid_argument("ferry::blocking_pool: max_threads must be at least 1");
  }
  boost::asio::add_service(*this, new detail::pool_tag<blocking_pool>(*this, this));
}

blocking_pool::~blocking_pool() {
  std::list<worker> dead;
  {
    detail::unique_lock lock(mutex_);
    stopping_ = true;
    while (worker* w = idle_head_) {
      remove_idle(w);
      w->wake.notify_one();  // it finds no job and exits
    }
    for (;;) {
      // Threads keep running the queue until it is empty; jobs they run may submit more.
      all_retired_.wait(lock.native(),
                        [this]() FERRY_REQUIRES(mutex_) { return workers_.empty(); });
      // Jobs can be left queued with no thread only after a thread failed to start: run them
      // here rather than lose them.
      detail::job* j = pop_front();
      if (j == nullptr) break;
      lock.unlock();
      j->run();
      lock.lock();
      ++completed_;
    }
    dead.splice(dead.end(), zombies_);
  }
  for (worker& w : dead) w.thread.join();
  shutdown();
  destroy();
}

blocking_pool::executor_type blocking_pool::get_executor() noexcept {
  // blocking.possibly by default, like asio::thread_pool's: dispatch from a pool thread runs
  // inline; asio::post requires blocking.never.
  return executor_type(*this);
}

bool blocking_pool::running_in_this_thread() const noexcept { return current_pool == this; }

blocking_pool_stats blocking_pool::stats() const {
  detail::lock_guard lock(mutex_);
  return blocking_pool_stats{threads_, idle_, queued_, peak_, completed_};
}

void blocking_pool::submit(detail::job* j) {
  std::list<worker> dead;
  worker* fresh = nullptr;
  {
    detail::lock_guard lock(mutex_);
    if (worker* w = idle_head_) {
      remove_idle(w);
      w->assigned = j;
      // Under the lock: once it is released the worker may run the job, time out, exit and be
      // joined and freed by someone else.
      w->wake.notify_one();
    } else if (threads_ < max_threads_) {
      fresh = &workers_.emplace_back();
      fresh->self = std::prev(workers_.end());
      fresh->assigned = j;
      peak_ = std::max(peak_, ++threads_);
    } else {
      push_back(j);
    }
    dead.splice(dead.end(), zombies_);  // last: nothing above may throw with zombies in `dead`
  }
  // Join first: start_thread may throw, and a std::thread destroyed unjoined terminates.
  for (worker& w : dead) w.thread.join();
  if (fresh != nullptr) start_thread(fresh);
}

void blocking_pool::start_thread(worker* w) {
  std::thread t;
  try {
    t = std::thread([this, w] { worker_loop(w); });
  } catch (...) {
    on_start_failure(w);  // rethrows when the job could not be kept
    return;
  }
  detail::lock_guard lock(mutex_);
  w->thread = std::move(t);
  if (w->exited) retire(w);  // it finished before we got here; nobody else could retire it
}

void blocking_pool::on_start_failure(worker* w) {
  detail::unique_lock lock(mutex_);
  detail::job* j = std::exchange(w->assigned, nullptr);
  --threads_;
  workers_.erase(w->self);
  if (workers_.empty()) all_retired_.notify_all();
  if (worker* idle = idle_head_) {
    // A thread went idle while we tried to start one.
    remove_idle(idle);
    idle->assigned = j;
    idle->wake.notify_one();
  } else if (running_ > 0) {
    // A running thread checks the queue before it may go idle or exit, so it will run j. The
    // job was accepted before anything queued meanwhile: it goes first.
    push_front(j);
  } else {
    lock.unlock();
    throw;  // the exception being handled by start_thread; j is unlinked and the caller's
  }
}

void blocking_pool::worker_loop(worker* w) noexcept {
  pthread_setname_np(pthread_self(), "ferry-blocking");
  // Not the scheduling of the thread that submitted (a loop at SCHED_FIFO, say): the pool's.
  thread_policy_.apply_to_this_thread();
  current_pool = this;
  detail::unique_lock lock(mutex_);
  ++running_;
  bool timed_out = false;
  for (;;) {
    detail::job* j = std::exchange(w->assigned, nullptr);
    if (j == nullptr) j = pop_front();
    if (j != nullptr) {
      lock.unlock();
      j->run();
      lock.lock();
      ++completed_;
      timed_out = false;
      continue;
    }
    if (stopping_ || timed_out) break;
    push_idle(w);
    const auto deadline = std::chrono::steady_clock::now() + idle_timeout_;
    if (!w->wake.wait_until(lock.native(), deadline, [w] { return !w->idle; })) {
      remove_idle(w);
      timed_out = true;  // look at the queue once more, then exit
    }
  }
  --running_;
  --threads_;
  w->exited = true;
  if (w->thread.joinable()) retire(w);  // else start_thread retires it once the handle is set
  current_pool = nullptr;
}

// Requires the lock, w->exited and w->thread set.
void blocking_pool::retire(worker* w) {
  zombies_.splice(zombies_.end(), workers_, w->self);
  if (workers_.empty()) all_retired_.notify_all();
}

void blocking_pool::push_back(detail::job* j) noexcept {
  j->next_ = nullptr;
  j->prev_ = tail_;
  if (tail_ != nullptr) {
    tail_->next_ = j;
  } else {
    head_ = j;
  }
  tail_ = j;
  ++queued_;
}

void blocking_pool::push_front(detail::job* j) noexcept {
  j->prev_ = nullptr;
  j->next_ = head_;
  if (head_ != nullptr) {
    head_->prev_ = j;
  } else {
    tail_ = j;
  }
  head_ = j;
  ++queued_;
}

detail::job* blocking_pool::pop_front() noexcept {
  detail::job* j = head_;
  if (j == nullptr) return nullptr;
  head_ = j->next_;
  if (head_ != nullptr) {
    head_->prev_ = nullptr;
  } else {
    tail_ = nullptr;
  }
  j->next_ = j->prev_ = nullptr;
  --queued_;
  return j;
}

void blocking_pool::push_idle(worker* w) noexcept {
  w->idle = true;
  w->idle_prev = nullptr;
  w->idle_next = idle_head_;
  if (idle_head_ != nullptr) idle_head_->idle_prev = w;
  idle_head_ = w;
  ++idle_;
}

void blocking_pool::remove_idle(worker* w) noexcept {
  if (w->idle_prev != nullptr) {
    w->idle_prev->idle_next = w->idle_next;
  } else {
    idle_head_ = w->idle_next;
  }
  if (w->idle_next != nullptr) w->idle_next->idle_prev = w->idle_prev;
  w->idle_prev = w->idle_next = nullptr;
  w->idle = false;
  --idle_;
}

}  // namespace ferry
