// tests/core/cpu_pool_batch_test.cpp — cpu_pool's batch queue: jobs submitted while the workers
// are busy wait in a bounded lock-free queue served by at most one oneTBB task per worker; a
// full queue falls back to one oneTBB task per job. Every job must run exactly once, in every
// mix of the two paths, and the destructor must not return while a queue task can still touch
// the pool.
#include <gtest/gtest.h>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_reduce.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "ferry/core/cpu_pool.hpp"
#include "ferry_test.hpp"

namespace {

namespace asio = boost::asio;
using ferry::test::gate;
using ferry::test::wait_until;

// More jobs than the queue holds (4,096), from several threads at once, while the workers are
// held: the queue fills, the rest take the one-task-per-job path; all run once.
TEST(CpuPoolBatch, OverflowingTheQueueFromManyThreadsRunsEveryJobOnce) {
  constexpr int submitters = 4;
  constexpr int per_submitter = 3'000;
  std::vector<std::atomic<int>> runs(submitters * per_submitter);
  std::atomic<int> ran{0};
  gate hold;
  {
    ferry::cpu_pool pool(2);
    std::atomic<int> held{0};
    for (int i = 0; i < 2; ++i) {
      asio::post(pool.get_executor(), [&] {
        held.fetch_add(1);
        hold.wait();
      });
    }
    ASSERT_TRUE(wait_until([&] { return held.load() == 2; }));
    std::vector<std::thread> threads;
    for (int t = 0; t < submitters; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < per_submitter; ++i) {
          const int id = t * per_submitter + i;
          asio::post(pool.get_executor(), [&, id] {
            runs[static_cast<std::size_t>(id)].fetch_add(1, std::memory_order_relaxed);
            ran.fetch_add(1, std::memory_order_relaxed);
          });
        }
      });
    }
    for (auto& t : threads) t.join();
    hold.open();
  }  // the destructor waits for every job
  EXPECT_EQ(ran.load(), submitters * per_submitter);
  for (auto& r : runs) ASSERT_EQ(r.load(), 1);
}

// Jobs that submit the next job of their chain (the queue is served while it is being filled
// from the pool's own threads), destroyed at once after the last one: over and over, so that a
// queue task still running after the destructor returned would be caught (ASan, TSan).
TEST(CpuPoolBatch, ChainsSubmittedFromThePoolFinishBeforeTheDestructorReturns) {
  for (int round = 0; round < 50; ++round) {
    std::atomic<int> ran{0};
    {
      auto pool = std::make_unique<ferry::cpu_pool>(2);
      struct chain {
        ferry::cpu_pool* pool;
        std::atomic<int>* ran;
        int left;
        void operator()() const {
          ran->fetch_add(1, std::memory_order_relaxed);
          if (left > 0) asio::post(pool->get_executor(), chain{pool, ran, left - 1});
        }
      };
      for (int c = 0; c < 64; ++c) {
        asio::post(pool->get_executor(), chain{pool.get(), &ran, 20});
      }
      pool.reset();
    }
    ASSERT_EQ(ran.load(), 64 * 21) << "round " << round;
  }
}

// A job that waits on a nested parallel_reduce while the queue is full of other jobs finishes
// (its subtasks are its own: isolation), and the queued jobs all run.
TEST(CpuPoolBatch, NestedParallelWorkFinishesWhileTheQueueIsBusy) {
  std::atomic<int> ran{0};
  std::atomic<std::int64_t> sum{0};
  {
    ferry::cpu_pool pool(2);
    for (int i = 0; i < 1'000; ++i) {
      asio::post(pool.get_executor(), [&] { ran.fetch_add(1, std::memory_order_relaxed); });
      if (i % 100 == 0) {
        asio::post(pool.get_executor(), [&] {
          const std::int64_t s = tbb::parallel_reduce(
              tbb::blocked_range<std::int64_t>(0, 10'000),
              std::int64_t{0},
              [](const tbb::blocked_range<std::int64_t>& r, std::int64_t acc) {
                for (std::int64_t k = r.begin(); k != r.end(); ++k) acc += k;
                return acc;
              },
              [](std::int64_t a, std::int64_t b) { return a + b; });
          sum.fetch_add(s, std::memory_order_relaxed);
        });
      }
    }
  }
  EXPECT_EQ(ran.load(), 1'000);
  EXPECT_EQ(sum.load(), 10 * (10'000LL * 9'999 / 2));
}

}  // namespace
