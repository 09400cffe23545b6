// tests/core/cpu_pool_test.cpp — black-box tests of ferry::cpu_pool.
//
// Deterministic: jobs rendezvous with each other or are held until the test releases them, and
// every wait is bounded by a generous hang guard (ferry::test::hang_guard) that only turns a bug
// into a failure instead of a hang. No assertion depends on how long anything took.
#include "ferry/core/cpu_pool.hpp"

#include <gtest/gtest.h>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/parallel_reduce.h>

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <vector>

#include "ferry/core/detail/job.hpp"
#include "ferry/core/detail/pool_access.hpp"
#include "ferry_test.hpp"

namespace {

using ferry::detail::pool_access;  // the pools' job entry points

using ferry::test::hang_guard;

// Polls `pred` until it holds or the hang guard expires; returns the last value of `pred`.
using ferry::test::wait_until;

// A gate that jobs wait on until the test opens it (bounded by the hang guard).
using ferry::test::gate;

// `n` jobs that each announce their arrival and then wait (bounded) until all `n` have arrived.
// Every job observing all the others proves that `n` pool threads ran them at the same time.
struct rendezvous {
  explicit rendezvous(int n) : expected(n) {}

  // The job body: true when this job saw every other job arrive while it was itself running.
  bool arrive_and_wait() {
    arrived.fetch_add(1, std::memory_order_acq_rel);
    const bool all =
        wait_until([this] { return arrived.load(std::memory_order_acquire) >= expected; });
    if (all) observed_all.fetch_add(1, std::memory_order_acq_rel);
    done.fetch_add(1, std::memory_order_acq_rel);
    return all;
  }

  const int expected;
  std::atomic<int> arrived{0};
  std::atomic<int> observed_all{0};
  std::atomic<int> done{0};
};

// --- a job subclass for the admission tests -------------------------------------------------

// What the counting jobs of one test share: the admission order, the number running at once.
struct job_log {
  void enter(int id) {
    const int now = active.fetch_add(1, std::memory_order_acq_rel) + 1;
    int seen = max_active.load(std::memory_order_relaxed);
    while (now > seen && !max_active.compare_exchange_weak(seen, now)) {
    }
    std::lock_guard lock(mutex);
    order.push_back(id);
  }

  void leave() {
    active.fetch_sub(1, std::memory_order_acq_rel);
    finished.fetch_add(1, std::memory_order_acq_rel);
  }

  std::vector<int> run_order() {
    std::lock_guard lock(mutex);
    return order;
  }

  std::atomic<int> active{0};
  std::atomic<int> max_active{0};
  std::atomic<int> finished{0};
  std::mutex mutex;
  std::vector<int> order;  // guarded by mutex
};

// A job that records when it runs and, if `held`, waits on the gate before finishing.
struct counting_job : ferry::detail::job {
  counting_job(job_log& log, int id, gate* held = nullptr)
      : job(&do_run), log_(&log), id_(id), held_(held) {}

  static ferry::detail::job_outcome do_run(ferry::detail::job* base) noexcept {
    auto* self = static_cast<counting_job*>(base);
    self->started.store(true, std::memory_order_release);
    self->log_->enter(self->id_);
    if (self->held_ != nullptr) self->held_->wait();
    self->log_->leave();  // last access to the job: the test may destroy it from here on
    return ferry::detail::job_outcome::ran;
  }

  std::atomic<bool> started{false};

 private:
  job_log* log_;
  int id_;
  gate* held_;
};

// Set by job A around its nested parallel_for (see NestedWaitNeverPicksUpAnUnrelatedJob).
thread_local bool inside_a_nested_wait = false;

// --- executor -----------------------------------------------------------------------------

TEST(CpuPool, PostRunsOnAPoolThread) {
  ferry::cpu_pool pool(2);
  std::promise<std::tuple<std::thread::id, bool, ferry::cpu_pool*>> where;
  asio::post(pool.get_executor(), [&] {
    where.set_value(
        {std::this_thread::get_id(), pool.running_in_this_thread(), ferry::cpu_pool::current()});
  });
  auto f = where.get_future();
  ASSERT_EQ(f.wait_for(hang_guard), std::future_status::ready);
  const auto [id, in_pool, current] = f.get();
  EXPECT_NE(id, std::this_thread::get_id());
  EXPECT_TRUE(in_pool);
  EXPECT_EQ(current, &pool);
  EXPECT_FALSE(pool.running_in_this_thread());
  EXPECT_EQ(ferry::cpu_pool::current(), nullptr);
}

TEST(CpuPool, RunningInThisThreadIsFalseOnAnotherPoolsThread) {
  ferry::cpu_pool a(1);
  ferry::cpu_pool b(1);
  std::promise<std::tuple<bool, bool, ferry::cpu_pool*>> seen;
  asio::post(b.get_executor(), [&] {
    seen.set_value(
        {a.running_in_this_thread(), b.running_in_this_thread(), ferry::cpu_pool::current()});
  });
  auto f = seen.get_future();
  ASSERT_EQ(f.wait_for(hang_guard), std::future_status::ready);
  const auto [in_a, in_b, current] = f.get();
  EXPECT_FALSE(in_a);
  EXPECT_TRUE(in_b);
  EXPECT_EQ(current, &b);
}

TEST(CpuPool, ExecutorIsAnAsioExecutorOfThisPool) {
  ferry::cpu_pool pool(1);
  // Like asio::thread_pool's executor (Asio 1.26's dispatch executes on the executor as given).
  ferry::test::expect_asio_executor_of(pool);
}

TEST(CpuPool, DispatchFromAPoolFunctionRunsInline) {
  ferry::cpu_pool pool(2);
  // Shared, so that a dispatched function that (wrongly) runs later touches live memory.
  struct state {
    std::atomic<bool> dispatched_ran{false};
    std::atomic<bool> same_thread{false};
    std::atomic<bool> ran_before_dispatch_returned{false};
  };
  auto s = std::make_shared<state>();
  std::promise<void> done;
  asio::post(pool.get_executor(), [&pool, &done, s] {
    const auto me = std::this_thread::get_id();
    asio::dispatch(pool.get_executor(), [s, me] {
      s->same_thread = std::this_thread::get_id() == me;
      s->dispatched_ran = true;
    });
    s->ran_before_dispatch_returned = s->dispatched_ran.load();
    done.set_value();
  });
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(hang_guard), std::future_status::ready);
  ASSERT_TRUE(wait_until([&] { return s->dispatched_ran.load(); }));
  EXPECT_TRUE(s->ran_before_dispatch_returned.load());
  EXPECT_TRUE(s->same_thread.load());
}

TEST(CpuPool, DispatchFromOutsideThePoolRunsOnAPoolThread) {
  ferry::cpu_pool pool(1);
  std::promise<std::thread::id> where;
  asio::dispatch(pool.get_executor(), [&] { where.set_value(std::this_thread::get_id()); });
  auto f = where.get_future();
  ASSERT_EQ(f.wait_for(hang_guard), std::future_status::ready);
  EXPECT_NE(f.get(), std::this_thread::get_id());
}

TEST(CpuPool, CoSpawnRunsTheCoroutineOnThePoolAndDeliversItsValue) {
  ferry::cpu_pool pool(2);
  // The function-object overload of co_spawn keeps the lambda alive inside the coroutine.
  auto f = asio::co_spawn(
      pool.get_executor(),
      [&pool]() -> asio::awaitable<std::tuple<int, bool, std::thread::id>> {
        const bool before = pool.running_in_this_thread();
        co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
        co_return std::tuple{
            41 + 1, before && pool.running_in_this_thread(), std::this_thread::get_id()};
      },
      asio::use_future);
  ASSERT_EQ(f.wait_for(hang_guard), std::future_status::ready);
  const auto [value, on_pool, id] = f.get();
  EXPECT_EQ(value, 42);
  EXPECT_TRUE(on_pool);
  EXPECT_NE(id, std::this_thread::get_id());
}

TEST(CpuPool, CoSpawnDeliversTheCoroutinesException) {
  ferry::cpu_pool pool(1);
  auto f = asio::co_spawn(
      pool.get_executor(),
      []() -> asio::awaitable<int> {
        throw std::runtime_error("boom");
        co_return 0;
      },
      asio::use_future);
  ASSERT_EQ(f.wait_for(hang_guard), std::future_status::ready);
  // A shared_future keeps the shared state (and the exception in it) alive on this thread while
  // the pool thread may still be releasing the promise: the exception object is then freed
  // after an instrumented shared_ptr hand-off, which ThreadSanitizer can follow (the reference
  // count inside std::exception_ptr is in uninstrumented libstdc++).
  const std::shared_future<int> shared = f.share();
  try {
    shared.get();
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "boom");
  }
}

// --- every worker serves submitted work ------------------------------------------------------

// oneTBB's defaults give work enqueued from a non-TBB thread one worker fewer than the arena
// has: both jobs can only see each other if both workers serve the arena.
TEST(CpuPool, TwoJobsRunAtTheSameTimeOnATwoThreadPool) {
  ferry::cpu_pool pool(2);
  rendezvous r(2);
  for (int i = 0; i < 2; ++i) asio::post(pool.get_executor(), [&r] { r.arrive_and_wait(); });
  ASSERT_TRUE(wait_until([&] { return r.done.load() == 2; }));
  EXPECT_EQ(r.observed_all.load(), 2);
}

TEST(CpuPool, FourJobsRunAtTheSameTimeOnAFourThreadPool) {
  ferry::cpu_pool pool(4);  // more threads than cores: oversubscription is fine
  rendezvous r(4);
  for (int i = 0; i < 4; ++i) asio::post(pool.get_executor(), [&r] { r.arrive_and_wait(); });
  ASSERT_TRUE(wait_until([&] { return r.done.load() == 4; }));
  EXPECT_EQ(r.observed_all.load(), 4);
}

// The global worker limit must cover every live pool, not just the largest one.
TEST(CpuPool, TwoLivePoolsEachServeWithAllTheirThreads) {
  ferry::cpu_pool a(2);
  ferry::cpu_pool b(2);
  rendezvous r(4);
  for (int i = 0; i < 2; ++i) {
    asio::post(a.get_executor(), [&r] { r.arrive_and_wait(); });
    asio::post(b.get_executor(), [&r] { r.arrive_and_wait(); });
  }
  ASSERT_TRUE(wait_until([&] { return r.done.load() == 4; }));
  EXPECT_EQ(r.observed_all.load(), 4);
}

// --- nested parallelism and isolation --------------------------------------------------------

TEST(CpuPool, NestedParallelForComputesTheRightResult) {
  ferry::cpu_pool pool(2);
  constexpr std::int64_t n = 100'000;
  std::promise<std::int64_t> sum;
  asio::post(pool.get_executor(), [&] {
    std::vector<std::int64_t> squares(n);
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n),
                      [&](const tbb::blocked_range<std::int64_t>& r) {
                        for (std::int64_t i = r.begin(); i != r.end(); ++i) squares[i] = i * i;
                      });
    sum.set_value(tbb::parallel_reduce(
        tbb::blocked_range<std::int64_t>(0, n),
        std::int64_t{0},
        [&](const tbb::blocked_range<std::int64_t>& r, std::int64_t acc) {
          for (std::int64_t i = r.begin(); i != r.end(); ++i) acc += squares[i];
          return acc;
        },
        std::plus<>()));
  });
  auto f = sum.get_future();
  ASSERT_EQ(f.wait_for(hang_guard), std::future_status::ready);
  EXPECT_EQ(f.get(), (n - 1) * n * (2 * n - 1) / 6);
}

// Job A runs a nested parallel_for whose iterations are slow; while A is inside it, many
// unrelated B jobs are queued. A worker waiting inside A's parallel_for (for subtasks stolen by
// the other worker) must only run A's own subtasks, never a B job.
TEST(CpuPool, NestedWaitNeverPicksUpAnUnrelatedJob) {
  ferry::cpu_pool pool(2);
  constexpr int iterations = 200;
  constexpr int b_jobs = 100;
  std::atomic<bool> a_inside{false};
  std::atomic<bool> b_queued{false};
  std::atomic<int> a_iterations{0};
  std::atomic<bool> a_done{false};
  std::atomic<int> b_ran{0};
  std::atomic<int> b_in_a_wait{0};

  asio::post(pool.get_executor(), [&] {
    inside_a_nested_wait = true;
    tbb::parallel_for(
        tbb::blocked_range<int>(0, iterations, 1),
        [&](const tbb::blocked_range<int>& r) {
          for (int i = r.begin(); i != r.end(); ++i) {
            a_inside.store(true, std::memory_order_release);
            // Keep A's parallel_for busy until the B jobs are queued behind it.
            wait_until([&] { return b_queued.load(std::memory_order_acquire); });
            std::this_thread::sleep_for(100us);
            a_iterations.fetch_add(1, std::memory_order_relaxed);
          }
        },
        tbb::simple_partitioner());
    inside_a_nested_wait = false;
    a_done.store(true, std::memory_order_release);
  });

  ASSERT_TRUE(wait_until([&] { return a_inside.load(std::memory_order_acquire); }));
  for (int i = 0; i < b_jobs; ++i) {
    asio::post(pool.get_executor(), [&] {
      if (inside_a_nested_wait) b_in_a_wait.fetch_add(1, std::memory_order_relaxed);
      b_ran.fetch_add(1, std::memory_order_acq_rel);
    });
  }
  b_queued.store(true, std::memory_order_release);

  ASSERT_TRUE(wait_until([&] { return a_done.load() && b_ran.load() == b_jobs; }));
  EXPECT_EQ(a_iterations.load(), iterations);
  EXPECT_EQ(b_in_a_wait.load(), 0);
}

// --- construction ---------------------------------------------------------------------------

TEST(CpuPool, ConcurrencyIsTheRequestedThreadCount) {
  ferry::cpu_pool one(1);
  ferry::cpu_pool three(3);
  EXPECT_EQ(one.concurrency(), 1u);
  EXPECT_EQ(three.concurrency(), 3u);
  EXPECT_EQ(three.stats().threads, 3u);
  EXPECT_EQ(three.max_in_flight(), 0u);
}

TEST(CpuPool, ZeroThreadsMeansTheDefaultConcurrency) {
  ferry::cpu_pool pool;
  EXPECT_EQ(pool.concurrency(), static_cast<std::size_t>(tbb::info::default_concurrency()));
  ferry::cpu_pool zero(0);
  EXPECT_EQ(zero.concurrency(), pool.concurrency());
}

TEST(CpuPool, MoreThan4096ThreadsThrowsInvalidArgument) {
  EXPECT_THROW(ferry::cpu_pool(4097), std::invalid_argument);
  // A failed construction leaves the process able to make pools.
  ferry::cpu_pool pool(1);
  std::promise<void> ran;
  asio::post(pool.get_executor(), [&] { ran.set_value(); });
  EXPECT_EQ(ran.get_future().wait_for(hang_guard), std::future_status::ready);
}

// --- admission bound ------------------------------------------------------------------------

TEST(CpuPool, AdmissionBoundAdmitsInFifoOrderOneAtATime) {
  gate first_held;
  job_log log;
  counting_job j0(log, 0, &first_held);
  counting_job j1(log, 1);
  counting_job j2(log, 2);
  counting_job j3(log, 3);
  counting_job j4(log, 4);
  ferry::cpu_pool pool(2, /*max_in_flight=*/1);
  EXPECT_EQ(pool.max_in_flight(), 1u);

  pool_access::submit_bounded(pool, &j0);
  ASSERT_TRUE(wait_until([&] { return j0.started.load(); }));
  for (counting_job* j : {&j1, &j2, &j3, &j4}) pool_access::submit_bounded(pool, j);

  ferry::cpu_pool_stats s = pool.stats();
  EXPECT_EQ(s.max_in_flight, 1u);
  EXPECT_EQ(s.submitted, 5u);
  EXPECT_EQ(s.in_flight, 1u);
  EXPECT_EQ(s.waiting, 4u);
  EXPECT_EQ(s.completed, 0u);

  EXPECT_TRUE(pool_access::withdraw(pool, &j2));   // still waiting: removed, will never run
  EXPECT_FALSE(pool_access::withdraw(pool, &j0));  // admitted (running): it will run to the end

  s = pool.stats();
  EXPECT_EQ(s.submitted, 5u);
  EXPECT_EQ(s.in_flight, 1u);
  EXPECT_EQ(s.waiting, 3u);
  EXPECT_EQ(s.completed, 1u);  // the withdrawn one
  EXPECT_FALSE(j1.started.load());

  first_held.open();
  ASSERT_TRUE(wait_until([&] { return log.finished.load() == 4; }));
  // `completed` counts a job before it hands back its admission slot: wait for both.
  ASSERT_TRUE(wait_until([&] {
    const ferry::cpu_pool_stats now = pool.stats();
    return now.completed == 5 && now.in_flight == 0;
  }));
  EXPECT_EQ(log.run_order(), (std::vector<int>{0, 1, 3, 4}));
  EXPECT_EQ(log.max_active.load(), 1);
  EXPECT_FALSE(j2.started.load());
  s = pool.stats();
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.waiting, 0u);
}

// oneTBB gives the only worker of a one-thread arena index 1, not 0: its jobs are counted and
// timed all the same.
TEST(CpuPool, AOneWorkerPoolCountsItsJobs) {
  ferry::cpu_pool pool(1);
  std::atomic<int> ran{0};
  for (int i = 0; i < 3; ++i) {
    asio::post(pool.get_executor(), [&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
  }
  ASSERT_TRUE(wait_until([&] { return pool.stats().completed == 3; }));
  EXPECT_EQ(ran.load(), 3);
  EXPECT_EQ(pool.stats().run_time.count, 3u);
}

TEST(CpuPool, AdmissionBoundHoldsUnderConcurrentSubmitters) {
  constexpr int per_thread = 64;
  job_log log;
  std::vector<std::unique_ptr<counting_job>> jobs;
  for (int i = 0; i < 2 * per_thread; ++i) jobs.push_back(std::make_unique<counting_job>(log, i));
  {
    ferry::cpu_pool pool(4, /*max_in_flight=*/2);
    std::thread other([&] {
      for (int i = per_thread; i < 2 * per_thread; ++i) {
        pool_access::submit_bounded(pool, jobs[i].get());
      }
    });
    for (int i = 0; i < per_thread; ++i) pool_access::submit_bounded(pool, jobs[i].get());
    other.join();
    // `completed` counts a job before it hands back its admission slot: wait for both.
    ASSERT_TRUE(wait_until([&] {
      const ferry::cpu_pool_stats now = pool.stats();
      return now.completed == 2 * per_thread && now.in_flight == 0;
    }));
    const ferry::cpu_pool_stats s = pool.stats();
    EXPECT_EQ(s.submitted, static_cast<std::uint64_t>(2 * per_thread));
    EXPECT_EQ(s.in_flight, 0u);
    EXPECT_EQ(s.waiting, 0u);
  }
  EXPECT_EQ(log.finished.load(), 2 * per_thread);
  EXPECT_LE(log.max_active.load(), 2);
  EXPECT_GE(log.max_active.load(), 1);
}

// Plain `submit` is not subject to the admission bound: it runs while the only slot is taken.
TEST(CpuPool, SubmitIgnoresTheAdmissionBound) {
  gate held;
  job_log log;
  counting_job bounded(log, 0, &held);
  counting_job unbounded(log, 1);
  ferry::cpu_pool pool(2, /*max_in_flight=*/1);
  pool_access::submit_bounded(pool, &bounded);
  ASSERT_TRUE(wait_until([&] { return bounded.started.load(); }));
  pool_access::submit(pool, &unbounded);
  const bool ran_while_slot_taken = wait_until([&] { return log.finished.load() == 1; });
  held.open();
  EXPECT_TRUE(ran_while_slot_taken);
  ASSERT_TRUE(wait_until([&] { return log.finished.load() == 2; }));
  EXPECT_EQ(log.run_order(), (std::vector<int>{0, 1}));
}

TEST(CpuPool, WithdrawOnAnUnboundedPoolReturnsFalseAndTheJobRuns) {
  job_log log;
  counting_job j(log, 0);
  ferry::cpu_pool pool(1);
  pool_access::submit_bounded(pool, &j);
  EXPECT_FALSE(pool_access::withdraw(pool, &j));
  ASSERT_TRUE(wait_until([&] { return log.finished.load() == 1; }));
  EXPECT_TRUE(j.started.load());
}

// --- destruction ----------------------------------------------------------------------------

TEST(CpuPool, DestructorWaitsForEverySubmittedJob) {
  std::atomic<int> ran{0};
  {
    ferry::cpu_pool pool(2);
    for (int i = 0; i < 100; ++i) {
      asio::post(pool.get_executor(), [&ran] {
        std::this_thread::sleep_for(1ms);
        ran.fetch_add(1, std::memory_order_relaxed);
      });
    }
  }
  EXPECT_EQ(ran.load(), 100);
}

// A job that submits the next one keeps the destructor waiting for the whole chain.
TEST(CpuPool, DestructorWaitsForJobsSubmittedByJobs) {
  struct chain {
    ferry::cpu_pool* pool;
    std::atomic<int>* ran;
    int remaining;
    void operator()() const {
      std::this_thread::sleep_for(1ms);
      ran->fetch_add(1, std::memory_order_relaxed);
      if (remaining > 1) asio::post(pool->get_executor(), chain{pool, ran, remaining - 1});
    }
  };
  std::atomic<int> ran{0};
  {
    ferry::cpu_pool pool(1);
    asio::post(pool.get_executor(), chain{&pool, &ran, 10});
  }
  EXPECT_EQ(ran.load(), 10);
}

// --- stats ----------------------------------------------------------------------------------

TEST(CpuPool, StatsCountSubmittedAndCompletedJobs) {
  ferry::cpu_pool pool(2);
  const ferry::cpu_pool_stats empty = pool.stats();
  EXPECT_EQ(empty.threads, 2u);
  EXPECT_EQ(empty.submitted, 0u);
  EXPECT_EQ(empty.completed, 0u);
  EXPECT_EQ(empty.in_flight, 0u);
  EXPECT_EQ(empty.waiting, 0u);

  constexpr int n = 50;
  std::atomic<int> ran{0};
  for (int i = 0; i < n; ++i) {
    asio::post(pool.get_executor(), [&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
  }
  // `completed` is counted just after a job returns: wait for the pool to be quiescent.
  ASSERT_TRUE(wait_until([&] {
    const ferry::cpu_pool_stats now = pool.stats();
    return now.completed == n && now.in_flight == 0;
  }));
  const ferry::cpu_pool_stats s = pool.stats();
  EXPECT_EQ(ran.load(), n);
  EXPECT_EQ(s.submitted, static_cast<std::uint64_t>(n));
  EXPECT_EQ(s.completed, static_cast<std::uint64_t>(n));
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.waiting, 0u);
}

}  // namespace

#if defined(__linux__)
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

// Workers run at a lower priority than the thread that made the pool (never a higher one).
TEST(CpuPool, WorkersRunAtTheRequestedLowerPriority) {
  errno = 0;
  const int base = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)));
  ASSERT_EQ(errno, 0);
  ferry::cpu_pool pool(2, 0, ferry::cpu_pool::default_spin, 5);
  std::promise<int> seen;
  boost::asio::post(pool.get_executor(), [&seen] {
    seen.set_value(::getpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid))));
  });
  EXPECT_GE(seen.get_future().get(), std::min(19, base + 5));
}

TEST(CpuPool, NiceOutOfRangeThrowsInvalidArgument) {
  EXPECT_THROW(ferry::cpu_pool(1, 0, ferry::cpu_pool::default_spin, -1), std::invalid_argument);
  EXPECT_THROW(ferry::cpu_pool(1, 0, ferry::cpu_pool::default_spin, 20), std::invalid_argument);
}
#endif
