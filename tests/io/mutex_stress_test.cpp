// tests/io/mutex_stress_test.cpp — mutual exclusion and no lost hand-off under random
// cancellation, with holders on io threads and on the cpu_pool at once.
//
// Coroutines on strands of a 3-thread io_context, on strands of the cpu_pool and directly on the
// cpu_pool's executor take one ferry::mutex in a loop, in random ways: try_lock, lock(), lock()
// raced against a short timer (`||`: the timer cancels the lock at a random moment), and
// async_lock cancelled through a cancellation_signal after a random number of hops (random
// cancellation type). Every holder checks and sets a plain `inside` flag and increments a plain
// counter, sometimes while suspended inside the critical section, sometimes leaving it by an
// exception. Invariants: no holder ever finds `inside` set; the counter equals the number of
// successful acquisitions; every coroutine finishes (no lost hand-off, no ownerless lock); the
// mutex ends unlocked with no waiter. (Plain coroutines on the pool's executor do not use `||`
// or signals: Asio emits cancellation in the waiter's execution context, which only a strand
// makes single-threaded.)
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
#include <ferry/io/mutex.hpp>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>

#include "ferry_test.hpp"
#include "stress.hpp"
#include "stress_counts.hpp"

using namespace asio::experimental::awaitable_operators;

namespace {

struct shared_state : ferry::test::stress_counts {
  ferry::mutex m;
  long counter = 0;     // guarded by m (deliberately not atomic)
  bool inside = false;  // guarded by m
  std::atomic<long> thrown{0};
  std::atomic<int> violations{0};
};

// g++ 12 at -O1 inlines Asio's coroutine frame allocation (aligned_alloc) into this coroutine
// and then cannot match it with the frame's sized operator delete (which frees it correctly).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

// `cancellable`: the coroutine runs on a strand, so cancellation may be emitted to it.
ferry::task<void> worker(shared_state& s, unsigned seed, int iterations, bool cancellable) {
  std::mt19937 rng(seed);
  auto ex = co_await asio::this_coro::executor;
  for (int i = 0; i < iterations; ++i) {
    ferry::mutex::guard lock;
    switch (rng() % (cancellable ? 4 : 2)) {
      case 0:
        if (s.m.try_lock()) lock = ferry::mutex::guard(s.m, std::adopt_lock);
        break;
      case 1:
        lock = co_await s.m.lock();
        break;
      case 2: {
        auto got = co_await ferry::test::before_a_short_sleep(s.m.lock(), rng);
        if (got) {
          lock = std::move(*got);
        } else {
          ++s.cancelled;
        }
        break;
      }
      default: {
        const std::exception_ptr e = co_await ferry::test::cancelled_at_random(
            ex, rng, [&](auto token) { return s.m.async_lock(std::move(token)); });
        if (!e) {
          lock = ferry::mutex::guard(s.m, std::adopt_lock);
        } else {
          ++s.cancelled;
        }
        break;
      }
    }
    if (!lock) continue;
    ++s.acquired;
    try {
      if (s.inside) ++s.violations;
      s.inside = true;
      const long before = s.counter;
      const unsigned action = rng() % 8;
      if (action == 0) co_await asio::post(ex, asio::use_awaitable);  // suspended while holding
      s.counter = before + 1;
      s.inside = false;
      if (action == 1) throw std::runtime_error("leave the critical section by an exception");
    } catch (const std::runtime_error&) {
      ++s.thrown;  // `lock` still holds the mutex here; the guard releases it below
    }
  }
}

#pragma GCC diagnostic pop

struct config {
  std::size_t io_threads;
  int io_strands;
  int cpu_strands;
  int cpu_plain;
  int iterations;
};

}  // namespace

TEST(MutexStress, MutualExclusionAndNoLostHandOffUnderRandomCancellation) {
  constexpr int rounds = ferry::test::counts::mutex_rounds;
  const config configs[] = {{3, 6, 3, 3, rounds}, {1, 4, 2, 2, rounds}};
  for (const auto& cfg : configs) {
    SCOPED_TRACE("io_threads=" + std::to_string(cfg.io_threads));
    shared_state s;
    const int total = cfg.io_strands + cfg.cpu_strands + cfg.cpu_plain;
    {
      ferry::runtime rt({.io_threads = cfg.io_threads, .cpu_threads = 2});
      auto done = s.on_finished();
      unsigned seed = 1;
      for (int i = 0; i < cfg.io_strands; ++i) {
        asio::co_spawn(
            asio::make_strand(rt.io_context()), worker(s, seed++, cfg.iterations, true), done);
      }
      for (int i = 0; i < cfg.cpu_strands; ++i) {
        asio::co_spawn(asio::make_strand(rt.cpu().get_executor()),
                       worker(s, seed++, cfg.iterations, true),
                       done);
      }
      for (int i = 0; i < cfg.cpu_plain; ++i) {
        asio::co_spawn(rt.cpu().get_executor(), worker(s, seed++, cfg.iterations, false), done);
      }
      ASSERT_TRUE(ferry::test::wait_until([&] { return s.finished.load() == total; }))
          << "a coroutine never finished: lost hand-off or ownerless lock";
    }
    EXPECT_EQ(s.unexpected.load(), 0);
    EXPECT_EQ(s.violations.load(), 0) << "two holders inside the critical section";
    EXPECT_EQ(s.counter, s.acquired.load());
    EXPECT_GT(s.acquired.load(), 0);
    EXPECT_FALSE(s.m.locked());
    EXPECT_EQ(s.m.waiting(), 0u);
    const std::string suffix = "_io" + std::to_string(cfg.io_threads);
    RecordProperty("acquired" + suffix, std::to_string(s.acquired.load()));
    RecordProperty("cancelled" + suffix, std::to_string(s.cancelled.load()));
    RecordProperty("thrown" + suffix, std::to_string(s.thrown.load()));
  }
}
