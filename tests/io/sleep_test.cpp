// tests/io/sleep_test.cpp — ferry::sleep (io/sleep.hpp).
#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <exception>
#include <ferry/io/sleep.hpp>
#include <string>
#include <vector>

#include "ferry_test.hpp"

TEST(Sleep, ShorterSleepFinishesFirst) {
  asio::io_context io;
  std::vector<std::string> order;
  auto sleeper = [&](std::chrono::milliseconds d, std::string name) -> ferry::task<void> {
    co_await ferry::sleep(d);
    order.push_back(std::move(name));
  };
  auto long_sleeper = ferry::test::spawn_checked(io, sleeper(200ms, "long"));
  auto short_sleeper = ferry::test::spawn_checked(io, sleeper(1ms, "short"));
  io.run();
  EXPECT_EQ(order, (std::vector<std::string>{"short", "long"}));
}

TEST(Sleep, ZeroYieldsToTheLoop) {
  asio::io_context io;
  bool other_ran = false;
  bool seen_after_sleep = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    asio::post(io, [&] { other_ran = true; });
    co_await ferry::sleep(0ms);
    seen_after_sleep = other_ran;
  });
  io.run();
  EXPECT_TRUE(seen_after_sleep);
}

TEST(Sleep, CancellationThrowsOperationAborted) {
  asio::io_context io;
  asio::cancellation_signal signal;
  std::exception_ptr error;
  asio::co_spawn(
      io, ferry::sleep(1h), asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) {
        error = e;
      }));
  io.poll();  // start the coroutine: it now waits on its timer
  signal.emit(asio::cancellation_type::terminal);
  io.run();
  ASSERT_TRUE(error);
  try {
    std::rethrow_exception(error);
  } catch (const boost::system::system_error& e) {
    EXPECT_EQ(e.code(), asio::error::operation_aborted);
  }
}

// A sleep of any length, however it is spelled, is saturated to the steady clock's maximum (as
// `timeout` does), never overflowed into the past: a 1 ms sleep started beside it finishes
// first, and the long one then ends only by cancellation.
template <class Rep, class Period>
void expect_saturated_sleep(std::chrono::duration<Rep, Period> huge) {
  asio::io_context io;
  asio::cancellation_signal signal;
  std::vector<std::string> order;
  std::exception_ptr error;
  auto sleeper = [&order](auto d, std::string name) -> ferry::task<void> {
    co_await ferry::sleep(d);
    order.push_back(std::move(name));
  };
  asio::co_spawn(
      io,
      sleeper(huge, "huge"),
      asio::bind_cancellation_slot(signal.slot(), [&error](std::exception_ptr e) { error = e; }));
  auto short_sleeper = ferry::test::spawn_checked(io, sleeper(1ms, "short"));
  while (order.empty() && io.run_one() != 0) {
  }
  EXPECT_EQ(order, (std::vector<std::string>{"short"}));
  signal.emit(asio::cancellation_type::terminal);
  io.run();
  EXPECT_EQ(order, (std::vector<std::string>{"short"}));  // cancelled, not woken
  ASSERT_TRUE(error);
  try {
    std::rethrow_exception(error);
  } catch (const boost::system::system_error& e) {
    EXPECT_EQ(e.code(), asio::error::operation_aborted);
  }
}

TEST(Sleep, HugeDurationsSaturateInsteadOfOverflowing) {
  expect_saturated_sleep(std::chrono::hours::max());
  expect_saturated_sleep(std::chrono::duration<double>(1e300));
  expect_saturated_sleep(std::chrono::nanoseconds::max());
  expect_saturated_sleep(std::chrono::seconds::max());
}

TEST(Sleep, HugeDurationsExpireAtTheClocksMaximum) {
  using clock = std::chrono::steady_clock;
  const auto expiry = [](auto d) {
    return ferry::detail::deadline_after(ferry::detail::saturating_nanoseconds(d));
  };
  EXPECT_EQ(expiry(std::chrono::hours::max()), clock::time_point::max());
  EXPECT_EQ(expiry(std::chrono::duration<double>(1e300)), clock::time_point::max());
  EXPECT_EQ(expiry(std::chrono::nanoseconds::max()), clock::time_point::max());
  const clock::time_point before = clock::now();
  const clock::time_point past = expiry(std::chrono::hours::min());  // due at once: now
  EXPECT_GE(past, before);
  EXPECT_LE(past, clock::now());
}
