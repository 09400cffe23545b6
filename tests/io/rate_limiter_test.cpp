// tests/io/rate_limiter_test.cpp — ferry::rate_limiter (io/rate_limiter.hpp).
//
// Token accounting is tested on a manual clock: time moves only when a test advances it, so a
// grant happens exactly when the bucket holds the tokens, whatever the machine's speed. The
// timers use wait traits that make the reactor re-read the manual clock every millisecond of real
// time; real time never decides an outcome.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <ferry/ferry.hpp>
#include <ferry/io/rate_limiter.hpp>
#include <ferry/io/sleep.hpp>
#include <functional>
#include <limits>
#include <memory>
#include <stdexcept>
#include <vector>

#include "ferry_test.hpp"

using namespace asio::experimental::awaitable_operators;

namespace {

using ferry::test::is_operation_aborted;

// A clock that moves only when told to.
struct manual_clock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<manual_clock>;
  [[maybe_unused]] static constexpr bool is_steady = true;

  static time_point now() noexcept { return time_point(duration(ticks.load())); }
  static void advance(duration d) { ticks += d.count(); }

  static inline std::atomic<rep> ticks{1'000'000'000};
};

// Makes the reactor re-read manual_clock::now() at least every millisecond of real time.
struct manual_wait_traits {
  static manual_clock::duration to_wait_duration(const manual_clock::duration& d) {
    return std::clamp<manual_clock::duration>(d, 0ns, 1ms);
  }
  static manual_clock::duration to_wait_duration(const manual_clock::time_point& t) {
    return to_wait_duration(t - manual_clock::now());
  }
};

using test_limiter = ferry::basic_rate_limiter<manual_clock, manual_wait_traits>;

// Runs `io` until `pred` holds (60 s hang guard, never a timing assertion).
bool run_until(asio::io_context& io, const std::function<bool()>& pred) {
  const auto guard = std::chrono::steady_clock::now() + ferry::test::hang_guard;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > guard) return false;
    io.run_one_for(10ms);
  }
  return true;
}

// The outcome of one async_acquire with a callback.
struct result {
  bool done = false;
  std::exception_ptr error;
  auto handler(asio::io_context& io) {
    return asio::bind_executor(io, [this](std::exception_ptr e) {
      EXPECT_FALSE(done) << "completed twice";
      done = true;
      error = e;
    });
  }
  bool ok() const { return done && !error; }
  bool aborted() const { return done && is_operation_aborted(error); }
};

// A limiter whose bucket starts empty: every token it grants is one the clock refilled.
struct empty_limiter : test_limiter {
  empty_limiter(double rate_per_second, std::size_t burst) : test_limiter(rate_per_second, burst) {
    while (try_acquire()) {
    }
  }
};

}  // namespace

TEST(RateLimiter, RejectsBadArguments) {
  EXPECT_THROW(ferry::rate_limiter(0.0, 1), std::invalid_argument);
  EXPECT_THROW(ferry::rate_limiter(-5.0, 1), std::invalid_argument);
  EXPECT_THROW(ferry::rate_limiter(std::numeric_limits<double>::quiet_NaN(), 1),
               std::invalid_argument);
  EXPECT_THROW(ferry::rate_limiter(std::numeric_limits<double>::infinity(), 1),
               std::invalid_argument);
  EXPECT_THROW(ferry::rate_limiter(10.0, 0), std::invalid_argument);
  ferry::rate_limiter limiter(10.0, 3);
  EXPECT_THROW(limiter.try_acquire(0), std::invalid_argument);
  EXPECT_THROW(limiter.try_acquire(4), std::invalid_argument);
  asio::io_context io;
  EXPECT_THROW(limiter.async_acquire(4, asio::bind_executor(io, [](std::exception_ptr) {})),
               std::invalid_argument);
  bool caught = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    try {
      co_await limiter.acquire(0);
    } catch (const std::invalid_argument&) {
      caught = true;
    }
  });
  io.run();
  EXPECT_TRUE(caught);
  EXPECT_EQ(limiter.burst(), 3u);
  EXPECT_EQ(limiter.rate(), 10.0);
}

TEST(RateLimiter, BucketStartsFullAndAllowsABurst) {
  test_limiter limiter(10.0, 3);
  EXPECT_DOUBLE_EQ(limiter.available(), 3.0);
  EXPECT_TRUE(limiter.try_acquire());
  EXPECT_TRUE(limiter.try_acquire(2));
  EXPECT_FALSE(limiter.try_acquire());
  EXPECT_DOUBLE_EQ(limiter.available(), 0.0);
}

TEST(RateLimiter, RefillsAtTheRateUpToTheBurst) {
  empty_limiter limiter(10.0, 5);  // one token per 100 ms
  manual_clock::advance(99ms);
  EXPECT_FALSE(limiter.try_acquire());
  manual_clock::advance(1ms);
  EXPECT_TRUE(limiter.try_acquire());
  EXPECT_FALSE(limiter.try_acquire());
  manual_clock::advance(250ms);
  EXPECT_NEAR(limiter.available(), 2.5, 1e-9);
  EXPECT_TRUE(limiter.try_acquire(2));
  EXPECT_FALSE(limiter.try_acquire());
  manual_clock::advance(10s);
  EXPECT_DOUBLE_EQ(limiter.available(), 5.0);  // capped at the burst
  EXPECT_TRUE(limiter.try_acquire(5));
  EXPECT_FALSE(limiter.try_acquire());
}

TEST(RateLimiter, AcquireWaitsUntilTheTokensAreThere) {
  asio::io_context io;
  empty_limiter limiter(10.0, 1);
  bool done = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    co_await limiter.acquire();
    done = true;
  });
  io.poll();
  EXPECT_EQ(limiter.waiting(), 1u);
  manual_clock::advance(99ms);
  io.run_for(20ms);  // the head's timer polls the clock: still 1 ms short
  EXPECT_FALSE(done);
  manual_clock::advance(1ms);
  ASSERT_TRUE(run_until(io, [&] { return done; }));
  EXPECT_EQ(limiter.waiting(), 0u);
  EXPECT_NEAR(limiter.available(), 0.0, 1e-9);
}

TEST(RateLimiter, AcquireOfSeveralTokensWaitsForAllOfThem) {
  asio::io_context io;
  empty_limiter limiter(10.0, 5);
  result r;
  limiter.async_acquire(3, r.handler(io));
  manual_clock::advance(200ms);
  io.run_for(20ms);
  EXPECT_FALSE(r.done);
  manual_clock::advance(100ms);
  ASSERT_TRUE(run_until(io, [&] { return r.done; }));
  EXPECT_TRUE(r.ok());
  EXPECT_NEAR(limiter.available(), 0.0, 1e-9);
}

TEST(RateLimiter, WaitersAreServedInFifoOrder) {
  asio::io_context io;
  empty_limiter limiter(10.0, 1);
  std::vector<int> order;
  std::vector<ferry::test::spawned> coros;
  for (int i = 0; i < 4; ++i) {
    coros.push_back(ferry::test::spawn_checked(io, [&, i]() -> ferry::task<void> {
      co_await limiter.acquire();
      order.push_back(i);
    }));
  }
  io.poll();
  EXPECT_EQ(limiter.waiting(), 4u);
  for (std::size_t k = 1; k <= 4; ++k) {
    manual_clock::advance(100ms);  // exactly one token each time
    ASSERT_TRUE(run_until(io, [&] { return order.size() == k; }));
    io.run_for(5ms);
    EXPECT_EQ(order.size(), k);  // and never a second grant from the same token
  }
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
}

TEST(RateLimiter, SmallRequestDoesNotOvertakeALargeOne) {
  asio::io_context io;
  empty_limiter limiter(10.0, 5);
  result large, small;
  limiter.async_acquire(5, large.handler(io));
  limiter.async_acquire(1, small.handler(io));
  manual_clock::advance(100ms);  // one token: enough for `small`, but `large` is first
  io.run_for(20ms);
  EXPECT_FALSE(large.done);
  EXPECT_FALSE(small.done);
  manual_clock::advance(400ms);
  ASSERT_TRUE(run_until(io, [&] { return large.done; }));
  EXPECT_TRUE(large.ok());
  EXPECT_FALSE(small.done);
  manual_clock::advance(100ms);
  ASSERT_TRUE(run_until(io, [&] { return small.done; }));
  EXPECT_TRUE(small.ok());
}

TEST(RateLimiter, TryAcquireDoesNotOvertakeAWaiter) {
  asio::io_context io;
  empty_limiter limiter(10.0, 2);
  result head;
  limiter.async_acquire(1, head.handler(io));
  manual_clock::advance(1s);            // the bucket is full again...
  EXPECT_FALSE(limiter.try_acquire());  // ...but a waiter comes first
  ASSERT_TRUE(run_until(io, [&] { return head.done; }));
  EXPECT_TRUE(head.ok());
  EXPECT_TRUE(limiter.try_acquire());
  EXPECT_FALSE(limiter.try_acquire());
}

TEST(RateLimiter, CancelledQueuedWaiterConsumesNoTokens) {
  asio::io_context io;
  empty_limiter limiter(10.0, 1);
  result head, queued, last;
  asio::cancellation_signal signal;
  limiter.async_acquire(1, head.handler(io));
  limiter.async_acquire(1, asio::bind_cancellation_slot(signal.slot(), queued.handler(io)));
  limiter.async_acquire(1, last.handler(io));
  EXPECT_EQ(limiter.waiting(), 3u);
  signal.emit(asio::cancellation_type::partial);
  ASSERT_TRUE(run_until(io, [&] { return queued.done; }));
  EXPECT_TRUE(queued.aborted());
  EXPECT_EQ(limiter.waiting(), 2u);
  manual_clock::advance(100ms);
  ASSERT_TRUE(run_until(io, [&] { return head.done; }));
  manual_clock::advance(100ms);
  ASSERT_TRUE(run_until(io, [&] { return last.done; }));
  EXPECT_TRUE(head.ok());
  EXPECT_TRUE(last.ok());
  manual_clock::advance(100ms);
  EXPECT_NEAR(limiter.available(), 1.0, 1e-9);  // the cancelled waiter took nothing
}

TEST(RateLimiter, CancellingTheSleepingHeadHandsTheDutyOn) {
  asio::io_context io;
  empty_limiter limiter(10.0, 1);
  result head, next;
  asio::cancellation_signal signal;
  limiter.async_acquire(1, asio::bind_cancellation_slot(signal.slot(), head.handler(io)));
  limiter.async_acquire(1, next.handler(io));
  io.poll();  // the head arms its timer
  signal.emit(asio::cancellation_type::terminal);
  ASSERT_TRUE(run_until(io, [&] { return head.done; }));  // the clock has not moved
  EXPECT_TRUE(head.aborted());
  EXPECT_FALSE(next.done);
  EXPECT_EQ(limiter.waiting(), 1u);
  manual_clock::advance(100ms);
  ASSERT_TRUE(run_until(io, [&] { return next.done; }));
  EXPECT_TRUE(next.ok());
  EXPECT_NEAR(limiter.available(), 0.0, 1e-9);
  manual_clock::advance(100ms);
  EXPECT_NEAR(limiter.available(), 1.0, 1e-9);
}

TEST(RateLimiter, WaiterCancelledJustAfterBecomingHeadTakesNothing) {
  asio::io_context io;
  empty_limiter limiter(10.0, 1);
  result first, second;
  asio::cancellation_signal signal;
  limiter.async_acquire(1, first.handler(io));
  limiter.async_acquire(1, asio::bind_cancellation_slot(signal.slot(), second.handler(io)));
  io.poll();
  manual_clock::advance(100ms);
  // `first` takes its token and grants `second` the duty (posted, not run yet).
  ASSERT_TRUE(run_until(io, [&] { return first.done; }));
  EXPECT_FALSE(second.done);
  signal.emit(asio::cancellation_type::total);
  ASSERT_TRUE(run_until(io, [&] { return second.done; }));
  EXPECT_TRUE(second.aborted());
  EXPECT_EQ(limiter.waiting(), 0u);
  manual_clock::advance(100ms);
  EXPECT_TRUE(limiter.try_acquire());  // the token `second` did not take
}

TEST(RateLimiter, CancellationAfterTheTokensAreTakenIsIgnored) {
  asio::io_context io;
  test_limiter limiter(10.0, 1);
  result r;
  asio::cancellation_signal signal;
  limiter.async_acquire(1, asio::bind_cancellation_slot(signal.slot(), r.handler(io)));
  signal.emit(asio::cancellation_type::terminal);  // tokens already taken: ignored
  io.run();
  EXPECT_TRUE(r.ok());
  EXPECT_FALSE(limiter.try_acquire());
}

TEST(RateLimiter, ComposesWithAwaitableOperators) {
  asio::io_context io;
  ferry::rate_limiter limiter(0.001, 1);  // one token per 1000 s
  EXPECT_TRUE(limiter.try_acquire());
  std::size_t index = 99;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto r = co_await (limiter.acquire() || ferry::sleep(5ms));
    index = r.index();
  });
  io.run();
  EXPECT_EQ(index, 1u);
  EXPECT_EQ(limiter.waiting(), 0u);
  EXPECT_LT(limiter.available(), 1.0);
}

TEST(RateLimiter, RealClockGrantsEveryAcquire) {
  asio::io_context io;
  ferry::rate_limiter limiter(2000.0, 1);
  int granted = 0;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    for (int i = 0; i < 10; ++i) {
      co_await limiter.acquire();
      ++granted;
    }
  });
  io.run();
  EXPECT_EQ(granted, 10);
}

TEST(RateLimiter, DestroyingTheLimiterFailsQueuedWaitersAndWakesTheHead) {
  asio::io_context io;
  auto limiter = std::make_unique<empty_limiter>(10.0, 1);
  result head, queued;
  limiter->async_acquire(1, head.handler(io));
  limiter->async_acquire(1, queued.handler(io));
  io.poll();  // the head sleeps
  limiter.reset();
  ASSERT_TRUE(run_until(io, [&] { return head.done && queued.done; }));  // clock frozen
  EXPECT_TRUE(head.aborted());
  EXPECT_TRUE(queued.aborted());
}

TEST(RateLimiter, HeadWhoseLoopIsDestroyedHandsTheDutyOn) {
  empty_limiter limiter(10.0, 1);
  asio::io_context other;
  result next;
  bool head_resumed = false;
  {
    asio::io_context doomed;
    auto coro = ferry::test::spawn_checked(doomed, [&]() -> ferry::task<void> {
      auto payload = std::make_unique<int>(1);  // freed with the frame (checked by ASan)
      co_await limiter.acquire();
      head_resumed = true;
    });
    coro.may_not_finish();  // destroyed with `doomed`, suspended in acquire
    doomed.poll();          // the coroutine is the head, sleeping on a timer of `doomed`
    limiter.async_acquire(1, next.handler(other));
    EXPECT_EQ(limiter.waiting(), 2u);
  }  // `doomed` destroys the head's timer handler: the head resigns
  EXPECT_FALSE(head_resumed);
  EXPECT_EQ(limiter.waiting(), 1u);
  manual_clock::advance(100ms);
  ASSERT_TRUE(run_until(other, [&] { return next.done; }));
  EXPECT_TRUE(next.ok());
}

TEST(RateLimiter, SharedByCoroutinesOnIoThreadsAndThePool) {
  ferry::runtime rt({.io_threads = 3, .cpu_threads = 2});
  test_limiter limiter(1000.0, 4);  // one token per manual millisecond
  const auto start = manual_clock::now();
  constexpr int per_worker = 30;
  constexpr int workers = 6;
  std::atomic<int> granted{0}, aborted{0}, finished{0}, failures{0};
  for (int w = 0; w < workers; ++w) {
    asio::any_io_executor ex;
    if (w < 3) {
      ex = asio::make_strand(rt.io_context());
    } else if (w < 5) {
      ex = asio::make_strand(rt.cpu().get_executor());
    } else {
      ex = rt.cpu().get_executor();
    }
    const bool cancel_some = w < 5;  // cancellation needs a serialised executor
    asio::co_spawn(
        ex,
        [&, cancel_some]() -> ferry::task<void> {
          for (int i = 0; i < per_worker; ++i) {
            if (cancel_some && i % 4 == 3) {
              auto r = co_await (limiter.acquire() || ferry::sleep(0ms));
              ++(r.index() == 0 ? granted : aborted);
            } else {
              co_await limiter.acquire();
              ++granted;
            }
          }
          ++finished;
        },
        [&](std::exception_ptr e) {
          if (e) ++failures;
        });
  }
  // Time advances 1 manual ms per real 200 us until everyone is done.
  ASSERT_TRUE(ferry::test::wait_until([&] {
    manual_clock::advance(1ms);
    return finished.load() == workers;
  }));
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(granted.load() + aborted.load(), workers * per_worker);
  // Token accounting: never more grants than the burst plus what the elapsed time refilled.
  const double elapsed = std::chrono::duration<double>(manual_clock::now() - start).count();
  EXPECT_LE(granted.load(), 4 + elapsed * 1000.0 + 1e-6);
  EXPECT_EQ(limiter.waiting(), 0u);
}
