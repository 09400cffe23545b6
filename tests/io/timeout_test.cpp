// tests/io/timeout_test.cpp — ferry::timeout and ferry::timeout_error (io/timeout.hpp).
//
// The deadlines here are short real durations, but no test depends on how long anything takes:
// an operation that must time out waits for an hour, one that must not has no deadline to speak
// of, and the assertions are about outcomes and order, never about elapsed time.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <chrono>
#include <ferry/ferry.hpp>
#include <ferry/io/outcome.hpp>
#include <ferry/io/semaphore.hpp>
#include <ferry/io/sleep.hpp>
#include <ferry/io/timeout.hpp>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>

#include "ferry_test.hpp"

namespace {

using namespace ferry::test;

// Ignores every cancellation for the rest of its life.
ferry::task<void> shield() {
  co_await asio::this_coro::reset_cancellation_state(
      [](asio::cancellation_type_t) { return asio::cancellation_type::none; });
}

}  // namespace

TEST(Timeout, ReturnsTheInnerValueBeforeTheDeadline) {
  asio::io_context io;
  auto r = run(io, ferry::timeout(1h, value_soon(4)));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r.value(), 4);
}

TEST(Timeout, RethrowsTheInnerExceptionBeforeTheDeadline) {
  asio::io_context io;
  auto failing = []() -> ferry::task<int> {
    co_await ferry::sleep(0ms);
    throw std::invalid_argument("inner");
  };
  auto r = run(io, ferry::timeout(1h, failing()));
  ASSERT_FALSE(r.has_value());
  EXPECT_THROW(r.value(), std::invalid_argument);
  EXPECT_EQ(message_of(r.error()), "inner");
}

TEST(Timeout, ThrowsTimeoutErrorOnlyAfterTheInnerOperationHasFinished) {
  asio::io_context io;
  probe p;
  bool finished_at_throw = false;
  std::chrono::nanoseconds reported{0};
  std::string what;
  auto r = run(io, [&]() -> ferry::task<void> {
    try {
      co_await ferry::timeout(5ms, wait_forever<int>(p));
    } catch (const ferry::timeout_error& e) {
      finished_at_throw = p.finished;
      reported = e.duration();
      what = e.what();
      throw;
    }
  }());
  ASSERT_FALSE(r.has_value());
  EXPECT_THROW(r.value(), ferry::timeout_error);
  EXPECT_TRUE(finished_at_throw);
  EXPECT_TRUE(p.aborted);
  EXPECT_EQ(reported, 5ms);
  EXPECT_EQ(what, "ferry::timeout: the operation did not finish within 5ms");
}

TEST(Timeout, TimeoutErrorIsARuntimeErrorNotASystemError) {
  ferry::timeout_error e(1500us);
  const std::runtime_error& base = e;
  EXPECT_STREQ(base.what(), "ferry::timeout: the operation did not finish within 1500us");
  EXPECT_EQ(dynamic_cast<const boost::system::system_error*>(&base), nullptr);
  EXPECT_STREQ(ferry::timeout_error(2s).what(),
               "ferry::timeout: the operation did not finish within 2s");
}

TEST(Timeout, WaitsForAnInnerOperationThatTakesTimeToStop) {
  asio::io_context io;
  bool cleanup_done = false;
  bool cleanup_done_when_timeout_threw = false;
  auto slow_stopper = [&]() -> ferry::task<void> {
    if (co_await stop_slowly(cleanup_done)) {
      throw boost::system::system_error(asio::error::operation_aborted);
    }
  };
  auto r = run(io, [&]() -> ferry::task<void> {
    try {
      co_await ferry::timeout(1ms, slow_stopper());
    } catch (const ferry::timeout_error&) {
      cleanup_done_when_timeout_threw = cleanup_done;
      throw;
    }
  }());
  EXPECT_THROW(r.value(), ferry::timeout_error);
  EXPECT_TRUE(cleanup_done_when_timeout_threw);
}

TEST(Timeout, AValueReturnedAfterTheDeadlineIsKept) {
  // The inner operation swallows the cancellation and finishes with a value: the value wins,
  // as with asyncio.timeout (no TimeoutError unless the cancellation surfaced).
  asio::io_context io;
  bool deadline_passed = false;
  auto stubborn = [&]() -> ferry::task<int> {
    co_await shield();
    const auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < 5ms) co_await ferry::sleep(1ms);
    deadline_passed = true;
    co_return 42;
  };
  auto r = run(io, ferry::timeout(1ms, stubborn()));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r.value(), 42);
  EXPECT_TRUE(deadline_passed);
}

TEST(Timeout, AnotherExceptionAfterTheDeadlineIsRethrownAsIs) {
  asio::io_context io;
  auto failing_cleanup = []() -> ferry::task<int> {
    try {
      co_await ferry::sleep(1h);
    } catch (const boost::system::system_error&) {
      throw std::runtime_error("cleanup failed");
    }
    co_return 0;
  };
  auto r = run(io, ferry::timeout(1ms, failing_cleanup()));
  ASSERT_FALSE(r.has_value());
  EXPECT_THROW(r.value(), std::runtime_error);
  EXPECT_EQ(message_of(r.error()), "cleanup failed");
}

TEST(Timeout, CancellingTheAwaiterGivesOperationAbortedNotTimeoutError) {
  asio::io_context io;
  asio::cancellation_signal signal;
  probe p;
  std::exception_ptr error;
  bool completed = false;
  asio::co_spawn(io,
                 ferry::timeout(1h, wait_forever<int>(p)),
                 asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e, int) {
                   error = e;
                   completed = true;
                 }));
  io.poll();
  ASSERT_TRUE(p.started);
  signal.emit(asio::cancellation_type::terminal);
  io.run();
  EXPECT_TRUE(completed);
  EXPECT_TRUE(is_operation_aborted(error));
  EXPECT_TRUE(p.finished && p.aborted);
}

TEST(Timeout, ZeroAndNegativeDurationsStillStartTheInnerOperationThenTimeOut) {
  asio::io_context io;
  probe p, q;
  auto r0 = run(io, ferry::timeout(0ms, wait_forever<int>(p)));
  EXPECT_THROW(r0.value(), ferry::timeout_error);
  EXPECT_TRUE(p.started && p.finished && p.aborted);
  auto r1 = run(io, ferry::timeout(-5s, wait_forever<int>(q)));
  EXPECT_THROW(r1.value(), ferry::timeout_error);
  EXPECT_TRUE(q.started && q.finished && q.aborted);
  auto r2 = run(io, ferry::timeout(0ms, []() -> ferry::task<int> { co_return 3; }()));
  EXPECT_EQ(r2.value(), 3);  // finished without suspending: its outcome stands
}

// CPython's test_timeouts: test_timeout_zero_sleep_zero. The deadline has passed when the inner
// sleep(0) is due too; the inner operation is cancelled before its own timer can complete it.
TEST(Timeout, ZeroTimeoutCancelsASleepZeroEveryTime) {
  for (int i = 0; i < 50; ++i) {
    asio::io_context io;
    bool reached_the_sleep = false;
    bool slept = false;
    auto inner = [&]() -> ferry::task<void> {
      reached_the_sleep = true;
      co_await ferry::sleep(0ms);
      slept = true;
    };
    auto r = run(io, ferry::timeout(0ms, inner()));
    EXPECT_THROW(r.value(), ferry::timeout_error) << "attempt " << i;
    EXPECT_TRUE(reached_the_sleep);
    EXPECT_FALSE(slept);
  }
}

// CPython's test_timeouts: test_timeout_in_the_past_sleep_zero (a deadline 11 s in the past).
TEST(Timeout, DeadlineInThePastCancelsASleepZeroEveryTime) {
  for (int i = 0; i < 50; ++i) {
    asio::io_context io;
    bool slept = false;
    auto inner = [&]() -> ferry::task<void> {
      co_await ferry::sleep(0ms);
      slept = true;
    };
    auto r = run(io, ferry::timeout(-11s, inner()));
    try {
      r.value();
      ADD_FAILURE() << "no timeout at attempt " << i;
    } catch (const ferry::timeout_error& e) {
      EXPECT_EQ(e.duration(), -11s);
    }
    EXPECT_FALSE(slept);
  }
}

// The same with the caller on a strand (the inner task then runs on the caller's strand) and with
// other sleep(0) timers due in the same pass of the loop.
TEST(Timeout, ZeroTimeoutCancelsASleepZeroOnAStrandBesideOtherDueTimers) {
  for (int i = 0; i < 50; ++i) {
    asio::io_context io;
    auto strand = asio::make_strand(io);
    int neighbours_done = 0;
    bool timed_out = false;
    bool finished = false;
    std::vector<ferry::test::spawned> coros;
    for (int n = 0; n < 3; ++n) {
      coros.push_back(ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
        co_await ferry::sleep(0ms);
        ++neighbours_done;
      }));
    }
    auto coro = ferry::test::spawn_checked(strand, [&]() -> ferry::task<void> {
      try {
        co_await ferry::timeout(0ms, ferry::sleep(0ms));
      } catch (const ferry::timeout_error&) {
        timed_out = true;
      }
      finished = true;
    });
    io.run();
    EXPECT_TRUE(finished);
    EXPECT_TRUE(timed_out) << "attempt " << i;
    EXPECT_EQ(neighbours_done, 3);
  }
}

TEST(Timeout, HugeDurationsDoNotOverflow) {
  asio::io_context io;
  auto r0 = run(io, ferry::timeout(std::chrono::hours::max(), value_soon(1)));
  EXPECT_EQ(r0.value(), 1);
  auto r1 = run(io, ferry::timeout(std::chrono::duration<double>(1e300), value_soon(2)));
  EXPECT_EQ(r1.value(), 2);
  auto r2 = run(io, ferry::timeout(std::chrono::nanoseconds::max(), value_soon(3)));
  EXPECT_EQ(r2.value(), 3);
}

TEST(Timeout, VoidInnerOperations) {
  asio::io_context io;
  auto ok = run(io, ferry::timeout(1h, ferry::sleep(0ms)));
  EXPECT_TRUE(ok.has_value());
  auto late = run(io, ferry::timeout(1ms, ferry::sleep(1h)));
  EXPECT_THROW(late.value(), ferry::timeout_error);
}

TEST(Timeout, AWaiterRemovedByTheDeadlineConsumesNoPermit) {
  asio::io_context io;
  ferry::semaphore sem(0);
  auto r = run(io, [&]() -> ferry::task<void> { co_await ferry::timeout(1ms, sem.acquire()); }());
  EXPECT_THROW(r.value(), ferry::timeout_error);
  EXPECT_EQ(sem.waiting(), 0u);
  sem.release();
  EXPECT_EQ(sem.available(), 1u);
}

TEST(Timeout, APermitGrantedAsTheDeadlineFiresIsDeliveredNotLost) {
  // The permit is granted, then the deadline passes before the loop runs again: whichever the
  // loop sees first, the grant stands and timeout returns the permit instead of dropping it.
  // The scenario needs the waiter queued before its deadline passes; a loaded machine can take
  // longer than a short deadline to get there, so each attempt doubles the deadline until one
  // does (the loop is stepped one handler at a time and stops as soon as the waiter is queued).
  for (auto deadline = 2ms;; deadline *= 2) {
    ASSERT_LE(deadline, 8s) << "the acquisition was never queued before its deadline";
    asio::io_context io;
    ferry::semaphore sem(0);
    std::optional<ferry::semaphore::guard> permit;
    std::exception_ptr error;
    bool finished = false;
    auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
      try {
        permit.emplace(co_await ferry::timeout(deadline, sem.acquire()));
      } catch (...) {
        error = std::current_exception();
      }
      finished = true;
    });
    while (sem.waiting() == 0 && !finished && io.poll_one() > 0) {
    }
    if (sem.waiting() == 0) {  // the deadline came first: try again with a longer one
      io.run();
      ASSERT_TRUE(finished);
      continue;
    }
    sem.release();
    std::this_thread::sleep_for(deadline + 1ms);  // the deadline is now due
    io.run();
    ASSERT_TRUE(finished);
    EXPECT_FALSE(error);
    ASSERT_TRUE(permit);
    EXPECT_TRUE(permit->owns_permit());
    EXPECT_EQ(sem.available(), 0u);
    permit.reset();
    EXPECT_EQ(sem.available(), 1u);
    return;
  }
}

TEST(Timeout, NestedTimeoutsReportTheOneThatExpired) {
  asio::io_context io;
  probe p, q;
  auto inner_first = run(io, [&]() -> ferry::task<void> {
    co_await ferry::timeout(1h, ferry::timeout(1ms, wait_forever<int>(p)));
  }());
  try {
    inner_first.value();
    ADD_FAILURE() << "no timeout";
  } catch (const ferry::timeout_error& e) {
    EXPECT_EQ(e.duration(), 1ms);
  }
  auto outer_first = run(io, [&]() -> ferry::task<void> {
    co_await ferry::timeout(2ms, ferry::timeout(1h, wait_forever<int>(q)));
  }());
  try {
    outer_first.value();
    ADD_FAILURE() << "no timeout";
  } catch (const ferry::timeout_error& e) {
    // The inner timeout saw a cancellation that was not its deadline: operation_aborted, which
    // the outer timeout, whose deadline caused it, turns into its own timeout_error.
    EXPECT_EQ(e.duration(), 2ms);
  }
  EXPECT_TRUE(p.finished && q.finished);
}

TEST(Timeout, TheInnerRunsOnTheCallersStrandAndTheCallerResumesThere) {
  asio::io_context io;
  auto strand = asio::make_strand(io);
  bool inner_on_strand = false;
  bool resumed_on_strand = false;
  auto inner = [&]() -> ferry::task<int> {
    co_await ferry::sleep(0ms);
    inner_on_strand = strand.running_in_this_thread();
    co_return 1;
  };
  auto coro = ferry::test::spawn_checked(strand, [&]() -> ferry::task<void> {
    co_await ferry::timeout(1h, inner());
    resumed_on_strand = strand.running_in_this_thread();
  });
  io.run();
  EXPECT_TRUE(inner_on_strand);
  EXPECT_TRUE(resumed_on_strand);
}

// Whether an offloaded function starts before the deadline depends on the machine, so the two
// tests below check both outcomes by the contract — cancelled before it started: f never ran;
// after: f was asked to stop and the timeout waited for it — and retry until they have seen the
// case they are about (f started, then was stopped).

FERRY_CO_TEST(Timeout, StopsAnOffloadThroughItsStopToken) {
  bool seen_stop = false;
  for (int attempt = 0; attempt < 100 && !seen_stop; ++attempt) {
    std::atomic<bool> started{false};
    std::atomic<bool> returned{false};
    auto search = [&](std::stop_token st) -> int {
      started = true;
      while (!st.stop_requested()) std::this_thread::sleep_for(100us);
      returned = true;
      throw boost::system::system_error(asio::error::operation_aborted);  // "I was stopped"
    };
    bool timed_out = false;
    try {
      co_await ferry::timeout(10ms, ferry::offload(search));
    } catch (const ferry::timeout_error&) {
      timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    EXPECT_EQ(started.load(), returned.load());  // if f ran, it had returned before the throw
    seen_stop = returned.load();
  }
  EXPECT_TRUE(seen_stop);
}

FERRY_CO_TEST(Timeout, AnOffloadThatReturnsAfterTheStopKeepsItsValue) {
  bool seen_value = false;
  for (int attempt = 0; attempt < 100 && !seen_value; ++attempt) {
    std::atomic<bool> started{false};
    auto partial = [&started](std::stop_token st) {
      started = true;
      int steps = 0;
      while (!st.stop_requested()) {
        std::this_thread::sleep_for(100us);
        ++steps;
      }
      return steps >= 0 ? 7 : 0;  // a (partial) result, not an exception
    };
    try {
      int v = co_await ferry::timeout(2ms, ferry::offload(partial));
      EXPECT_TRUE(started.load());
      EXPECT_EQ(v, 7);
      seen_value = true;
    } catch (const ferry::timeout_error&) {
      EXPECT_FALSE(started.load());  // cancelled before it started: f never ran
    }
  }
  EXPECT_TRUE(seen_value);
}
