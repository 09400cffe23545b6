// tests/bridge/admission_test.cpp — a runtime's admission policy: adaptive by default, what
// happens at the limit (offload waits, try_offload and reject_when_full refuse), what a deadline
// does to work that waits, and the adaptive limit moving on the pool's and the loop's delays.
//
// Every wait is for a state (a worker held, a limit reached), bounded by the hang guard.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <chrono>
#include <exception>
#include <ferry/ferry.hpp>

#include "ferry/core/detail/pool_access.hpp"
#include "ferry_test.hpp"

namespace {

using ferry::test::gate;

// Offloads that take admission slots of the runtime's pool and wait for `open` to run out.
// Outlives them: the test owns it.
struct holders {
  gate open;
  std::atomic<std::size_t> running{0};
  std::atomic<int> left{0};
  ferry::event all_running;  // set from the pool thread (event: any thread)
  ferry::event done;         // set on the loop once every holder completed

  // Starts `n` holders; returns once `runs` of them (those the workers can take) run.
  ferry::task<void> start(std::size_t n, std::size_t runs) {
    const auto ex = co_await asio::this_coro::executor;
    left = static_cast<int>(n);
    for (std::size_t i = 0; i < n; ++i) {
      auto held = [this, runs] {
        if (running.fetch_add(1) + 1 == runs) all_running.set();
        open.wait();
      };
      auto on_done = [this](std::exception_ptr) {
        if (--left == 0) done.set();
      };
      asio::co_spawn(ex, ferry::offload(held), on_done);
    }
    co_await all_running.wait();
  }
};

TEST(Admission, ARuntimeIsAdaptiveByDefaultStartingAtTwoPerWorker) {
  // No lag probe and no offload: nothing the limit could move on.
  ferry::runtime rt({.cpu_threads = 2, .lag_probe_interval = 0ms});
  EXPECT_EQ(rt.cpu().admission().kind, ferry::admission_policy::mode::adaptive);
  EXPECT_EQ(rt.cpu().max_in_flight(), 4u);
  EXPECT_EQ(rt.stats().cpu.max_in_flight, 4u);
  ferry::runtime fixed({.cpu_threads = 2, .max_offloads_in_flight = 3});
  EXPECT_EQ(fixed.cpu().admission().kind, ferry::admission_policy::mode::fixed);
  EXPECT_EQ(fixed.cpu().max_in_flight(), 3u);
  ferry::runtime none({.cpu_threads = 2, .admission = ferry::admission_policy::unbounded()});
  EXPECT_EQ(none.cpu().max_in_flight(), 0u);
}

// At the adaptive limit (2 with one worker, to start with): try_offload is refused, offload
// waits and runs. A 10 s interval keeps the limit where it starts for the test's length.
TEST(Admission, AtTheAdaptiveLimitTryOffloadIsRefusedAndOffloadWaits) {
  ferry::admission_policy still = ferry::admission_policy::adaptive();
  still.interval = 10s;
  ferry::runtime rt({.cpu_threads = 1, .admission = still});
  ASSERT_EQ(rt.cpu().max_in_flight(), 2u);
  holders h;
  bool finished = false;
  rt.run([&]() -> ferry::task<void> {
    co_await h.start(2, 1);  // one running, one queued behind it: both slots taken
    EXPECT_TRUE(ferry::test::wait_until([&] { return rt.stats().cpu.in_flight == 2; }));

    auto one = [] { return 1; };
    bool refused = false;
    try {
      co_await ferry::try_offload(one);
    } catch (const ferry::offload_rejected&) {
      refused = true;
    }
    EXPECT_TRUE(refused);

    // offload waits for a slot: it is counted waiting, then runs once the holders finish.
    const auto ex = co_await asio::this_coro::executor;
    ferry::event waited_done;
    int waited = 0;
    auto on_waited = [&](std::exception_ptr e, int v) {
      EXPECT_FALSE(e);
      waited = v;
      waited_done.set();
    };
    asio::co_spawn(ex, ferry::offload(one), on_waited);
    EXPECT_TRUE(ferry::test::wait_until([&] { return rt.stats().cpu.waiting == 1; }));
    h.open.open();
    co_await h.done.wait();
    co_await waited_done.wait();
    EXPECT_EQ(waited, 1);
    finished = true;
  }());
  EXPECT_TRUE(finished);
  const ferry::cpu_pool_stats s = rt.stats().cpu;
  EXPECT_EQ(s.rejected, 1u);
  EXPECT_EQ(s.admitted, 3u);
}

TEST(Admission, RejectWhenFullMakesOffloadRefuseToo) {
  ferry::admission_policy policy = ferry::admission_policy::fixed(1);
  policy.reject_when_full = true;
  ferry::runtime rt({.cpu_threads = 1, .admission = policy});
  holders h;
  bool finished = false;
  rt.run([&]() -> ferry::task<void> {
    co_await h.start(1, 1);
    std::atomic<bool> ran{false};
    auto work = [&ran] { ran = true; };
    bool refused = false;
    try {
      co_await ferry::offload(work);
    } catch (const ferry::offload_rejected&) {
      refused = true;
    }
    EXPECT_TRUE(refused);
    h.open.open();
    co_await h.done.wait();
    EXPECT_FALSE(ran.load());
    co_await ferry::offload(work);  // a free slot: admitted
    EXPECT_TRUE(ran.load());
    finished = true;
  }());
  EXPECT_TRUE(finished);
}

// Work that waits at its deadline — for an admission slot, or admitted and queued behind a busy
// worker — never runs and completes with the timeout at once, while the worker is still busy.
TEST(Admission, WorkStillWaitingAtItsDeadlineNeverRunsAndTimesOutAtOnce) {
  for (const std::size_t bound : {std::size_t{1}, std::size_t{2}}) {
    SCOPED_TRACE(bound == 1 ? "waiting for a slot" : "admitted, queued behind the worker");
    ferry::runtime rt({.cpu_threads = 1, .max_offloads_in_flight = bound});
    holders h;
    bool finished = false;
    rt.run([&]() -> ferry::task<void> {
      co_await h.start(1, 1);  // the only worker is busy until h.open opens
      std::atomic<bool> ran{false};
      auto work = [&ran] { ran = true; };
      bool timed_out = false;
      try {
        co_await ferry::timeout(1ms, ferry::offload(work));
      } catch (const ferry::timeout_error&) {
        timed_out = true;
      }
      EXPECT_TRUE(timed_out);
      EXPECT_EQ(h.left.load(), 1);  // the worker is still held: the timeout did not wait for it
      h.open.open();
      co_await h.done.wait();
      EXPECT_FALSE(ran.load());
      finished = true;
    }());
    EXPECT_TRUE(finished);
    // The worker meets the cancelled job after the holder's completion reached the loop.
    EXPECT_TRUE(ferry::test::wait_until([&] { return rt.stats().cpu.completed == 2; }));
    EXPECT_EQ(rt.stats().cpu.skipped, 1u);
  }
}

// Work running at its deadline gets its stop token: Timeout.StopsAnOffloadThroughItsStopToken
// (tests/io/timeout_test.cpp).

// The adaptive limit, on a real pool: a queue wait above the target cuts it to the workers; a
// short one while submissions find it full raises it. Waits for the limit (a state); the
// 1 ms interval only makes that state come soon.
TEST(Admission, TheAdaptiveLimitFollowsTheQueueWait) {
  ferry::admission_policy cut = ferry::admission_policy::adaptive(1ns);  // every wait is too long
  cut.interval = 1ms;
  ferry::runtime rt({.cpu_threads = 1, .admission = cut});
  EXPECT_EQ(rt.cpu().max_in_flight(), 2u);
  bool finished = false;
  rt.run([&]() -> ferry::task<void> {
    auto nothing = [] {};
    while (rt.cpu().max_in_flight() != 1) co_await ferry::offload(nothing);
    finished = true;
  }());
  EXPECT_TRUE(finished);
  EXPECT_GT(rt.stats().cpu.queue_delay.count(), 0);

  ferry::admission_policy grow = ferry::admission_policy::adaptive(10s);  // never too long
  grow.interval = 1ms;
  ferry::runtime rt2({.cpu_threads = 1, .admission = grow});
  finished = false;
  rt2.run([&]() -> ferry::task<void> {
    const auto ex = co_await asio::this_coro::executor;
    auto nothing = [] {};
    while (rt2.cpu().max_in_flight() <= 2) {
      // More at once than the limit: some wait, so the limit was reached.
      ferry::task_group tg(ex);
      for (int i = 0; i < 8; ++i) tg.spawn(ferry::offload(nothing));
      co_await tg.join();
    }
    finished = true;
  }());
  EXPECT_TRUE(finished);
  EXPECT_GT(rt2.cpu().max_in_flight(), 2u);
}

// The loop's lag is the second signal: a lag above the target cuts the limit on its own.
TEST(Admission, ALateLoopCutsTheAdaptiveLimit) {
  ferry::admission_policy policy = ferry::admission_policy::adaptive(5ms);
  policy.interval = 1ms;
  ferry::cpu_pool pool(2, policy);
  ASSERT_EQ(pool.max_in_flight(), 4u);
  EXPECT_TRUE(ferry::test::wait_until([&] {
    ferry::detail::pool_access::note_loop_lag(pool, std::chrono::nanoseconds(50ms));
    return pool.max_in_flight() == 3;
  }));
  EXPECT_EQ(pool.stats().queue_delay, std::chrono::nanoseconds(50ms));
}

}  // namespace
