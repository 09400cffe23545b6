// tests/core/admission_control_test.cpp — the adaptive admission limit, driven by measurements
// and times the test chooses (no clock, no threads but one stress case).
#include "ferry/core/detail/admission_control.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include "ferry/core/admission.hpp"
#include "ferry/core/cpu_pool.hpp"

namespace {

using ferry::detail::admission_control;

constexpr std::int64_t ms = 1'000'000;

admission_control::config settings(std::size_t min_limit = 4,
                                   std::size_t max_limit = 100,
                                   std::size_t initial = 8) {
  admission_control::config c;
  c.target_ns = 5 * ms;
  c.interval_ns = 100 * ms;
  c.min_limit = min_limit;
  c.max_limit = max_limit;
  c.initial_limit = initial;
  return c;
}

// One interval: jobs that waited `waits` (ns) start during it, with or without the limit
// reached; then a report past its end (a loop lag of 0, which measures nothing) adjusts.
// Returns the limit after that.
struct driver {
  admission_control& control;
  std::int64_t now = 0;

  std::size_t interval(std::vector<std::int64_t> waits, bool full) {
    for (std::int64_t w : waits) {
      now += 1 * ms;
      control.on_start(w, now);
    }
    if (full) control.on_full();
    now += 100 * ms;
    control.on_loop_lag(0, now);  // past the end: adjusts, and opens the next interval
    return control.limit();
  }
};

TEST(AdmissionControl, StartsAtTheInitialLimitWithinItsBounds) {
  EXPECT_EQ(admission_control(settings(4, 100, 8)).limit(), 8u);
  EXPECT_EQ(admission_control(settings(4, 100, 1)).limit(), 4u);      // raised to the floor
  EXPECT_EQ(admission_control(settings(4, 100, 500)).limit(), 100u);  // cut to the ceiling
}

TEST(AdmissionControl, NothingChangesBeforeTheIntervalEnds) {
  admission_control c(settings());
  for (int i = 1; i < 100; ++i) EXPECT_FALSE(c.on_start(50 * ms, i * ms));  // far over target
  c.on_full();
  EXPECT_EQ(c.limit(), 8u);
  EXPECT_EQ(c.queue_delay_ns(), 0);
}

TEST(AdmissionControl, AStandingQueueAboveTheTargetCutsATenthAtLeastOne) {
  admission_control c(settings(4, 1000, 100));
  driver d{c};
  // The smallest wait of the interval is what counts: 6 ms > 5 ms even with 40 ms beside it.
  EXPECT_EQ(d.interval({40 * ms, 6 * ms, 9 * ms}, true), 90u);
  EXPECT_EQ(c.queue_delay_ns(), 6 * ms);
  EXPECT_EQ(d.interval({6 * ms}, false), 81u);
  // Small limits still move by one.
  admission_control small(settings(4, 100, 8));
  driver e{small};
  EXPECT_EQ(e.interval({7 * ms}, true), 7u);
}

TEST(AdmissionControl, NeverCutsBelowTheFloor) {
  admission_control c(settings(4, 100, 6));
  driver d{c};
  for (int i = 0; i < 10; ++i) d.interval({100 * ms}, true);
  EXPECT_EQ(c.limit(), 4u);
}

TEST(AdmissionControl, OneShortWaitMeansNoStandingQueue) {
  admission_control c(settings(4, 100, 50));
  driver d{c};
  // A burst made some jobs wait long, one did not: no cut (CoDel's minimum).
  EXPECT_EQ(d.interval({30 * ms, 1 * ms, 30 * ms}, false), 50u);
}

TEST(AdmissionControl, GrowsOnlyWhileTheLimitIsReached) {
  admission_control c(settings(4, 1000, 80));
  driver d{c};
  EXPECT_EQ(d.interval({0, 0}, false), 80u);   // idle room: the limit is not what holds work back
  EXPECT_EQ(d.interval({0, 0}, true), 90u);    // well under target, limit reached: an eighth
  EXPECT_EQ(d.interval({4 * ms}, true), 91u);  // under target but near it: one
  EXPECT_EQ(d.interval({5 * ms}, true), 92u);  // at the target: still one
}

TEST(AdmissionControl, NeverGrowsAboveTheCeiling) {
  admission_control c(settings(4, 10, 9));
  driver d{c};
  for (int i = 0; i < 5; ++i) d.interval({0}, true);
  EXPECT_EQ(c.limit(), 10u);
}

TEST(AdmissionControl, AnIntervalWithoutAStartChangesNothing) {
  admission_control c(settings(4, 100, 8));
  c.on_full();
  // No job started in the interval, though the limit was reached: nothing says the queue is
  // short, so no raise; and a start after the end counts in the next interval.
  EXPECT_FALSE(c.on_start(0, 100 * ms));
  EXPECT_EQ(c.limit(), 8u);
  EXPECT_EQ(c.queue_delay_ns(), 0);
}

TEST(AdmissionControl, TheLoopsLagAboveTheTargetCutsToo) {
  admission_control c(settings(4, 100, 20));
  driver d{c};
  c.on_loop_lag(12 * ms, 10 * ms);
  EXPECT_EQ(d.interval({0}, true), 18u);  // the pool's queue is short, the loop is late
  EXPECT_EQ(c.queue_delay_ns(), 12 * ms);
  // A lag under the target does not stop growth.
  c.on_loop_lag(1 * ms, d.now + 1 * ms);
  EXPECT_EQ(d.interval({0}, true), 20u);
}

TEST(AdmissionControl, RaisingReportsItSoWaitersAreAdmitted) {
  admission_control c(settings(4, 100, 8));
  c.on_start(0, 1 * ms);
  c.on_full();
  EXPECT_TRUE(c.on_start(50 * ms, 200 * ms));  // adjusts on the interval before it: 8 -> 9
  EXPECT_EQ(c.limit(), 9u);
  c.on_start(50 * ms, 210 * ms);
  EXPECT_FALSE(c.on_start(50 * ms, 400 * ms));  // a cut is not a raise
  EXPECT_EQ(c.limit(), 8u);
}

// Starts reported from several threads at once: the limit stays within its bounds and the
// measurements are not lost wholesale (each interval adjusts once).
TEST(AdmissionControl, ConcurrentReportsKeepTheLimitInBounds) {
  admission_control c(settings(4, 64, 8));
  std::atomic<std::int64_t> clock{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&c, &clock, t] {
      for (int i = 0; i < 20'000; ++i) {
        const std::int64_t now = clock.fetch_add(ms / 10) + ms / 10;
        c.on_start((i + t) % 3 == 0 ? 0 : 20 * ms, now);
        if (i % 7 == 0) c.on_full();
        const std::size_t l = c.limit();
        ASSERT_GE(l, 4u);
        ASSERT_LE(l, 64u);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_GT(c.queue_delay_ns(), -1);
}

// The pool's side: the policy is checked with a message, resolved, and its limit reported.
TEST(AdmissionPolicy, ThePoolChecksAndResolvesIt) {
  EXPECT_THROW(ferry::cpu_pool(2, ferry::admission_policy::fixed(0)), std::invalid_argument);
  EXPECT_THROW(ferry::cpu_pool(2, ferry::admission_policy::adaptive(std::chrono::nanoseconds(0))),
               std::invalid_argument);
  ferry::admission_policy slow = ferry::admission_policy::adaptive();
  slow.interval = std::chrono::microseconds(10);
  EXPECT_THROW(ferry::cpu_pool(2, slow), std::invalid_argument);

  ferry::cpu_pool adaptive(2, ferry::admission_policy::adaptive());
  EXPECT_EQ(adaptive.max_in_flight(), 4u);      // two per worker to start with
  EXPECT_EQ(adaptive.admission().limit, 512u);  // the ceiling: 256 per worker
  EXPECT_EQ(adaptive.stats().max_in_flight, 4u);
  ferry::cpu_pool fixed(2, ferry::admission_policy::fixed(3));
  EXPECT_EQ(fixed.max_in_flight(), 3u);
  ferry::cpu_pool none(2, ferry::admission_policy::unbounded());
  EXPECT_EQ(none.max_in_flight(), 0u);
  ferry::cpu_pool legacy(2, /*max_in_flight=*/5);
  EXPECT_EQ(legacy.admission().kind, ferry::admission_policy::mode::fixed);
}

}  // namespace
