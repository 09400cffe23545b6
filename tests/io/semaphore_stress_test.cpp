// tests/io/semaphore_stress_test.cpp — the permit count holds and no permit is lost under random
// cancellation, with holders on io threads and on the cpu_pool at once.
//
// Coroutines on strands of the io_context and directly on the cpu_pool's executor take permits
// of one ferry::semaphore{3} in random ways: try_acquire, acquire(), acquire() raced against a
// short timer (`||`), and async_acquire cancelled through a cancellation_signal after a random
// number of hops (random cancellation type). Every holder counts itself in and out, sometimes
// suspended while it holds the permit. Invariants: never more than 3 holders at once; every
// coroutine finishes (no lost grant); at the end all 3 permits are back and nobody waits.
// (Coroutines directly on the pool's executor use no `||` and no signals: Asio emits
// cancellation in the waiter's execution context, which only a strand makes single-threaded.)
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <ferry/ferry.hpp>
#include <memory>
#include <random>
#include <string>

#include "ferry_test.hpp"
#include "stress.hpp"
#include "stress_counts.hpp"

using namespace asio::experimental::awaitable_operators;

namespace {

constexpr int kPermits = 3;

struct shared_state : ferry::test::stress_counts {
  ferry::semaphore sem{kPermits};
  std::atomic<int> holders{0};
  std::atomic<int> peak{0};
};

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

ferry::task<void> worker(shared_state& s, unsigned seed, int iterations, bool cancellable) {
  std::mt19937 rng(seed);
  auto ex = co_await asio::this_coro::executor;
  for (int i = 0; i < iterations; ++i) {
    ferry::semaphore::guard permit;
    switch (rng() % (cancellable ? 4 : 2)) {
      case 0:
        if (s.sem.try_acquire()) permit = ferry::semaphore::guard(s.sem);
        break;
      case 1:
        permit = co_await s.sem.acquire();
        break;
      case 2: {
        auto got = co_await ferry::test::before_a_short_sleep(s.sem.acquire(), rng);
        if (got) {
          permit = std::move(*got);
        } else {
          ++s.cancelled;
        }
        break;
      }
      default: {
        const std::exception_ptr e = co_await ferry::test::cancelled_at_random(
            ex, rng, [&](auto token) { return s.sem.async_acquire(std::move(token)); });
        if (!e) {
          permit = ferry::semaphore::guard(s.sem);
        } else if (ferry::test::is_operation_aborted(e)) {
          ++s.cancelled;
        } else {
          ++s.unexpected;
        }
        break;
      }
    }
    if (!permit) continue;
    ++s.acquired;
    const int now = ++s.holders;
    int peak = s.peak.load();
    while (now > peak && !s.peak.compare_exchange_weak(peak, now)) {
    }
    if (rng() % 4 == 0) co_await asio::post(ex, asio::use_awaitable);  // hold across a suspension
    --s.holders;
  }
}

#pragma GCC diagnostic pop

}  // namespace

TEST(SemaphoreStress, PermitCountHoldsAndNoPermitIsLostUnderRandomCancellation) {
  const std::size_t io_thread_counts[] = {3, 1};
  for (const std::size_t io_threads : io_thread_counts) {
    SCOPED_TRACE("io_threads=" + std::to_string(io_threads));
    shared_state s;
    constexpr int kIoStrands = 6;
    constexpr int kCpuPlain = 4;
    constexpr int kIterations = ferry::test::counts::semaphore_rounds;
    {
      ferry::runtime rt({.io_threads = io_threads, .cpu_threads = 2});
      auto done = s.on_finished();
      unsigned seed = 11;
      for (int i = 0; i < kIoStrands; ++i) {
        asio::co_spawn(
            asio::make_strand(rt.io_context()), worker(s, seed++, kIterations, true), done);
      }
      for (int i = 0; i < kCpuPlain; ++i) {
        asio::co_spawn(rt.cpu().get_executor(), worker(s, seed++, kIterations, false), done);
      }
      ASSERT_TRUE(ferry::test::wait_until([&] {
        return s.finished.load() == kIoStrands + kCpuPlain;
      })) << "a coroutine never finished: a grant was lost";
    }
    EXPECT_EQ(s.unexpected.load(), 0);
    EXPECT_LE(s.peak.load(), kPermits);
    EXPECT_GT(s.acquired.load(), 0);
    EXPECT_GT(s.cancelled.load(), 0);
    EXPECT_EQ(s.holders.load(), 0);
    EXPECT_EQ(s.sem.available(), static_cast<std::size_t>(kPermits));
    EXPECT_EQ(s.sem.waiting(), 0u);
  }
}
