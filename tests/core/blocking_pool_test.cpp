// tests/core/blocking_pool_test.cpp — black-box tests of ferry::blocking_pool.
//
// Deterministic: jobs are held until the test releases them, and every wait is bounded by a
// generous hang guard (ferry::test::hang_guard) that only turns a bug into a failure instead of a
// hang.
#include "ferry/core/blocking_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <future>
#include <latch>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "ferry_test.hpp"

namespace {

using ferry::test::hang_guard;

// A countdown that can be waited on with a bound, so that a failing test fails instead of hanging
// (std::latch has no timed wait).
class timed_latch {
 public:
  explicit timed_latch(std::ptrdiff_t count) : count_(count) {}

  void count_down() {
    std::lock_guard lock(mutex_);
    if (--count_ <= 0) cv_.notify_all();
  }

  // True if the count reached zero within `timeout`.
  bool wait_for(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [this] { return count_ <= 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::ptrdiff_t count_;
};

// A gate that jobs wait on until the test opens it (bounded by the hang guard).
using ferry::test::gate;

// Polls `pred` until it holds or the hang guard expires; returns the last value of `pred`.
using ferry::test::wait_until;

TEST(BlockingPool, ZeroMaxThreadsThrowsInvalidArgument) {
  EXPECT_THROW(ferry::blocking_pool(0), std::invalid_argument);
}

TEST(BlockingPool, ReportsMaxThreadsAndStartsWithNoThread) {
  ferry::blocking_pool pool(5);
  EXPECT_EQ(pool.max_threads(), 5u);
  const ferry::blocking_pool_stats s = pool.stats();
  EXPECT_EQ(s.threads, 0u);
  EXPECT_EQ(s.idle_threads, 0u);
  EXPECT_EQ(s.queued, 0u);
  EXPECT_EQ(s.peak_threads, 0u);
  EXPECT_EQ(s.completed, 0u);
}

TEST(BlockingPool, ExecutorIsAnAsioExecutorOfThisPool) {
  ferry::blocking_pool pool;
  ferry::test::expect_asio_executor_of(pool);
}

TEST(BlockingPool, PostRunsOnAPoolThread) {
  ferry::blocking_pool pool;
  std::promise<std::pair<std::thread::id, bool>> where;
  asio::post(pool.get_executor(), [&] {
    where.set_value({std::this_thread::get_id(), pool.running_in_this_thread()});
  });
  auto f = where.get_future();
  ASSERT_EQ(f.wait_for(hang_guard), std::future_status::ready);
  const auto [id, in_pool] = f.get();
  EXPECT_NE(id, std::this_thread::get_id());
  EXPECT_TRUE(in_pool);
  EXPECT_FALSE(pool.running_in_this_thread());
}

TEST(BlockingPool, RunningInThisThreadIsFalseOnAnotherPoolsThread) {
  ferry::blocking_pool a;
  ferry::blocking_pool b;
  std::promise<std::pair<bool, bool>> seen;
  asio::post(b.get_executor(), [&] {
    seen.set_value({a.running_in_this_thread(), b.running_in_this_thread()});
  });
  auto f = seen.get_future();
  ASSERT_EQ(f.wait_for(hang_guard), std::future_status::ready);
  const auto [in_a, in_b] = f.get();
  EXPECT_FALSE(in_a);
  EXPECT_TRUE(in_b);
}

// Eight jobs that each block until all eight have started: only a pool that grows to eight
// threads completes them (a fixed pool of two would deadlock; here it would fail after the guard).
TEST(BlockingPool, BlockingJobsRunConcurrentlyUpToMaxThreads) {
  constexpr int kJobs = 8;
  ferry::blocking_pool pool(16);
  timed_latch all_started(kJobs);
  std::latch all_done(kJobs);
  std::atomic<int> saw_all_started{0};
  for (int i = 0; i < kJobs; ++i) {
    asio::post(pool.get_executor(), [&] {
      all_started.count_down();
      if (all_started.wait_for(hang_guard)) saw_all_started.fetch_add(1);
      all_done.count_down();
    });
  }
  all_done.wait();  // bounded: each job waits at most hang_guard
  EXPECT_EQ(saw_all_started.load(), kJobs);
  // Every submit happened while all existing threads held an unfinished job: one thread each.
  EXPECT_EQ(pool.stats().peak_threads, static_cast<std::size_t>(kJobs));
  EXPECT_TRUE(wait_until([&] { return pool.stats().completed == kJobs; }));
}

TEST(BlockingPool, MaxThreadsBoundIsRespectedAndExtraJobsQueue) {
  constexpr std::size_t kMax = 2;
  constexpr int kJobs = 20;
  ferry::blocking_pool pool(kMax);
  gate release;
  timed_latch first_two_started(kMax);
  std::latch all_done(kJobs);
  std::atomic<int> in_flight{0};
  std::atomic<int> max_in_flight{0};
  std::atomic<int> ran{0};
  for (int i = 0; i < kJobs; ++i) {
    asio::post(pool.get_executor(), [&] {
      const int now = in_flight.fetch_add(1) + 1;
      int seen = max_in_flight.load();
      while (now > seen && !max_in_flight.compare_exchange_weak(seen, now)) {
      }
      first_two_started.count_down();
      release.wait();
      ran.fetch_add(1);
      in_flight.fetch_sub(1);
      all_done.count_down();
    });
  }
  ASSERT_TRUE(first_two_started.wait_for(hang_guard));
  const ferry::blocking_pool_stats held = pool.stats();
  EXPECT_EQ(held.threads, kMax);
  EXPECT_EQ(held.idle_threads, 0u);
  EXPECT_EQ(held.queued, kJobs - kMax);
  EXPECT_EQ(held.peak_threads, kMax);

  release.open();
  all_done.wait();
  EXPECT_EQ(ran.load(), kJobs);
  EXPECT_LE(max_in_flight.load(), static_cast<int>(kMax));
  EXPECT_TRUE(wait_until([&] { return pool.stats().completed == kJobs; }));
  const ferry::blocking_pool_stats after = pool.stats();
  EXPECT_EQ(after.peak_threads, kMax);
  EXPECT_EQ(after.queued, 0u);
}

TEST(BlockingPool, IdleThreadIsReusedInsteadOfStartingANewOne) {
  ferry::blocking_pool pool(8, std::chrono::hours(1));
  std::promise<std::thread::id> first;
  asio::post(pool.get_executor(), [&] { first.set_value(std::this_thread::get_id()); });
  auto f1 = first.get_future();
  ASSERT_EQ(f1.wait_for(hang_guard), std::future_status::ready);
  ASSERT_TRUE(wait_until([&] { return pool.stats().idle_threads == 1; }));

  std::promise<std::thread::id> second;
  asio::post(pool.get_executor(), [&] { second.set_value(std::this_thread::get_id()); });
  auto f2 = second.get_future();
  ASSERT_EQ(f2.wait_for(hang_guard), std::future_status::ready);
  EXPECT_EQ(f2.get(), f1.get());
  EXPECT_EQ(pool.stats().peak_threads, 1u);
  EXPECT_EQ(pool.stats().threads, 1u);
}

TEST(BlockingPool, IdleThreadsExitAfterIdleTimeoutAndThePoolGrowsAgain) {
  constexpr int kJobs = 4;
  ferry::blocking_pool pool(8, 50ms);
  timed_latch all_started(kJobs);
  std::latch all_done(kJobs);
  for (int i = 0; i < kJobs; ++i) {
    asio::post(pool.get_executor(), [&] {
      all_started.count_down();
      all_started.wait_for(hang_guard);
      all_done.count_down();
    });
  }
  all_done.wait();
  EXPECT_EQ(pool.stats().peak_threads, static_cast<std::size_t>(kJobs));
  EXPECT_TRUE(wait_until([&] { return pool.stats().threads == 0; }));
  EXPECT_EQ(pool.stats().idle_threads, 0u);

  // After every thread exited (and is joined by the next submit), work still runs.
  std::promise<bool> again;
  asio::post(pool.get_executor(), [&] { again.set_value(pool.running_in_this_thread()); });
  auto f = again.get_future();
  ASSERT_EQ(f.wait_for(hang_guard), std::future_status::ready);
  EXPECT_TRUE(f.get());
  EXPECT_TRUE(wait_until([&] { return pool.stats().threads == 0; }));
}

TEST(BlockingPool, DestructorRunsEveryQueuedJobIncludingJobsSubmittedWhileDraining) {
  constexpr int kQueued = 100;
  constexpr int kChain = 10;
  std::atomic<int> ran{0};
  std::atomic<int> chained{0};
  gate release;
  timed_latch blocker_started(1);
  // Declared before the pool: jobs still use it while the pool's destructor drains.
  std::function<void(int)> link;
  {
    ferry::blocking_pool pool(1);
    const auto ex = pool.get_executor();
    asio::post(ex, [&] {
      blocker_started.count_down();
      release.wait();
    });
    ASSERT_TRUE(blocker_started.wait_for(hang_guard));
    for (int i = 0; i < kQueued; ++i) {
      asio::post(ex, [&] { ran.fetch_add(1); });
    }
    // The last queued job starts a chain: each link submits the next one from a pool thread.
    link = [&chained, &link, ex](int depth) {
      chained.fetch_add(1);
      if (depth + 1 < kChain) asio::post(ex, [&link, depth] { link(depth + 1); });
    };
    asio::post(ex, [&link] { link(0); });
    EXPECT_EQ(pool.stats().queued, static_cast<std::size_t>(kQueued + 1));
    release.open();
    // ~blocking_pool: drains the queue and the chain, then joins the thread.
  }
  EXPECT_EQ(ran.load(), kQueued);
  EXPECT_EQ(chained.load(), kChain);
}

TEST(BlockingPool, ConcurrentSubmittersAllJobsRun) {
  constexpr int kSubmitters = 4;
  constexpr int kPerSubmitter = 500;
  std::atomic<int> ran{0};
  {
    ferry::blocking_pool pool(3, 1ms);  // tiny timeout: threads come and go while submitting
    std::vector<std::thread> submitters;
    for (int t = 0; t < kSubmitters; ++t) {
      submitters.emplace_back([&] {
        for (int i = 0; i < kPerSubmitter; ++i) asio::post(pool.get_executor(), [&] { ++ran; });
      });
    }
    for (auto& t : submitters) t.join();
    const auto s = pool.stats();
    EXPECT_LE(s.peak_threads, 3u);
  }
  EXPECT_EQ(ran.load(), kSubmitters * kPerSubmitter);
}

TEST(BlockingPool, CoSpawnWithUseFutureRunsOnAPoolThread) {
  ferry::blocking_pool pool;
  auto body = [&pool]() -> asio::awaitable<std::pair<std::thread::id, bool>> {
    // Hop through the pool once more to exercise co_await on this executor.
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    co_return std::pair{std::this_thread::get_id(), pool.running_in_this_thread()};
  };
  auto f = asio::co_spawn(pool.get_executor(), body(), asio::use_future);
  ASSERT_EQ(f.wait_for(hang_guard), std::future_status::ready);
  const auto [id, in_pool] = f.get();
  EXPECT_NE(id, std::this_thread::get_id());
  EXPECT_TRUE(in_pool);
}

TEST(BlockingPool, CoSpawnWithUseFutureDeliversTheException) {
  ferry::blocking_pool pool;
  auto body = []() -> asio::awaitable<int> {
    throw std::runtime_error("boom");
    co_return 0;
  };
  auto f = asio::co_spawn(pool.get_executor(), body(), asio::use_future);
  ASSERT_EQ(f.wait_for(hang_guard), std::future_status::ready);
  EXPECT_THROW(f.get(), std::runtime_error);
}

TEST(BlockingPool, DispatchFromAPoolThreadRunsInlineAndPostDoesNot) {
  ferry::blocking_pool pool(1);  // one thread: a posted function cannot run until we return
  auto ex = pool.get_executor();
  struct result {
    bool dispatched_inline = false;
    bool dispatched_same_thread = false;
    bool posted_ran_before_return = true;
  };
  std::promise<result> outcome;
  std::promise<void> posted_ran;
  asio::post(ex, [&] {
    result r;
    const auto me = std::this_thread::get_id();
    bool dispatched = false;
    asio::dispatch(ex, [&] {
      dispatched = true;
      r.dispatched_same_thread = std::this_thread::get_id() == me;
    });
    r.dispatched_inline = dispatched;
    asio::post(ex, [&posted_ran] { posted_ran.set_value(); });
    r.posted_ran_before_return = posted_ran.get_future().wait_for(0s) == std::future_status::ready;
    outcome.set_value(r);
  });
  auto f = outcome.get_future();
  ASSERT_EQ(f.wait_for(hang_guard), std::future_status::ready);
  const result r = f.get();
  EXPECT_TRUE(r.dispatched_inline);
  EXPECT_TRUE(r.dispatched_same_thread);
  EXPECT_FALSE(r.posted_ran_before_return);
  EXPECT_TRUE(wait_until([&] { return pool.stats().completed == 2; }));  // outer + posted
}

TEST(BlockingPool, DispatchFromOutsideThePoolDoesNotRunInline) {
  ferry::blocking_pool pool;
  std::promise<std::thread::id> where;
  asio::dispatch(pool.get_executor(), [&] { where.set_value(std::this_thread::get_id()); });
  auto f = where.get_future();
  ASSERT_EQ(f.wait_for(hang_guard), std::future_status::ready);
  EXPECT_NE(f.get(), std::this_thread::get_id());
}

}  // namespace
