// tests/io/barrier_test.cpp — ferry::barrier (io/barrier.hpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <ferry/io/barrier.hpp>
#include <ferry/io/sleep.hpp>
#include <stdexcept>
#include <thread>
#include <vector>

#include "ferry_test.hpp"

using namespace asio::experimental::awaitable_operators;

namespace {

using ferry::test::is_operation_aborted;

constexpr std::size_t none = static_cast<std::size_t>(-1);

}  // namespace

TEST(Barrier, ZeroPartiesIsInvalid) {
  EXPECT_THROW(ferry::barrier(0), std::invalid_argument);
  EXPECT_EQ(ferry::barrier(3).parties(), 3u);
}

TEST(Barrier, SinglePartyReturnsAtOnceWithoutSuspending) {
  asio::io_context io;
  ferry::barrier b(1);
  bool other_ran = false;
  std::vector<std::size_t> indices;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    asio::post(io, [&] { other_ran = true; });
    indices.push_back(co_await b.arrive_and_wait());
    indices.push_back(co_await b.arrive_and_wait());
    EXPECT_FALSE(other_ran);
  });
  io.run();
  EXPECT_EQ(indices, (std::vector<std::size_t>{0, 0}));
  EXPECT_EQ(b.phase(), 2u);
}

TEST(Barrier, TheLastArrivalReleasesAllWithDistinctIndicesInArrivalOrder) {
  asio::io_context io;
  ferry::barrier b(4);
  std::vector<std::size_t> index(4, none);
  std::vector<int> resumed;
  std::vector<ferry::test::spawned> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.push_back(ferry::test::spawn_checked(io, [&, i]() -> ferry::task<void> {
      index[i] = co_await b.arrive_and_wait();
      resumed.push_back(i);
    }));
  }
  io.poll();
  EXPECT_EQ(b.waiting(), 3u);
  EXPECT_TRUE(resumed.empty());  // nobody passes before the 4th arrival
  bool other_ran = false;
  auto tripper = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    asio::post(io, [&] { other_ran = true; });
    index[3] = co_await b.arrive_and_wait();  // trips: no suspension
    EXPECT_FALSE(other_ran);
    resumed.push_back(3);
  });
  io.run();
  EXPECT_EQ(index, (std::vector<std::size_t>{0, 1, 2, 3}));
  EXPECT_EQ(resumed, (std::vector<int>{3, 0, 1, 2}));  // the tripper first, then FIFO
  EXPECT_EQ(b.waiting(), 0u);
  EXPECT_EQ(b.phase(), 1u);
}

TEST(Barrier, IsReusableAcrossPhases) {
  asio::io_context io;
  ferry::barrier b(3);
  constexpr int rounds = 5;
  std::vector<int> round_of(3, 0);
  int leaders = 0;
  bool in_step = true;
  std::vector<ferry::test::spawned> coros;
  for (int i = 0; i < 3; ++i) {
    coros.push_back(ferry::test::spawn_checked(io, [&, i]() -> ferry::task<void> {
      for (int r = 0; r < rounds; ++r) {
        round_of[i] = r;
        std::size_t index = co_await b.arrive_and_wait();
        // after the barrier, every party has reached round r
        for (int other : round_of) in_step = in_step && other >= r;
        if (index == b.parties() - 1) ++leaders;
      }
    }));
  }
  io.run();
  EXPECT_TRUE(in_step);
  EXPECT_EQ(leaders, rounds);
  EXPECT_EQ(b.phase(), static_cast<std::uint64_t>(rounds));
}

TEST(Barrier, CancelledWaiterNoLongerCounts) {
  asio::io_context io;
  ferry::barrier b(2);
  asio::cancellation_signal signal;
  std::exception_ptr cancelled_error;
  b.async_arrive_and_wait(asio::bind_cancellation_slot(
      signal.slot(),
      asio::bind_executor(io, [&](std::exception_ptr e, std::size_t) { cancelled_error = e; })));
  EXPECT_EQ(b.waiting(), 1u);
  signal.emit(asio::cancellation_type::terminal);
  EXPECT_EQ(b.waiting(), 0u);
  std::vector<std::size_t> got;
  auto arrive = [&] {
    b.async_arrive_and_wait(asio::bind_executor(io, [&](std::exception_ptr e, std::size_t i) {
      EXPECT_FALSE(e);
      got.push_back(i);
    }));
  };
  arrive();  // would have tripped the barrier had the cancelled arrival still counted
  io.poll();
  EXPECT_TRUE(is_operation_aborted(cancelled_error));
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(b.waiting(), 1u);
  EXPECT_EQ(b.phase(), 0u);
  arrive();
  io.run();
  EXPECT_EQ(got, (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(b.phase(), 1u);
}

TEST(Barrier, CancellingAMiddleWaiterLeavesNoGapInIndices) {
  asio::io_context io;
  ferry::barrier b(3);
  asio::cancellation_signal signal;
  std::vector<std::pair<char, std::size_t>> got;
  auto arrive = [&](char name) {
    b.async_arrive_and_wait(asio::bind_executor(io, [&, name](std::exception_ptr e, std::size_t i) {
      if (!e) got.emplace_back(name, i);
    }));
  };
  arrive('a');
  b.async_arrive_and_wait(asio::bind_cancellation_slot(
      signal.slot(), asio::bind_executor(io, [&](std::exception_ptr e, std::size_t i) {
        if (!e) got.emplace_back('x', i);
      })));
  signal.emit(asio::cancellation_type::total);
  arrive('b');
  arrive('c');
  io.run();
  EXPECT_EQ(got, (std::vector<std::pair<char, std::size_t>>{{'a', 0}, {'b', 1}, {'c', 2}}));
}

TEST(Barrier, CancellationAfterTheTripIsIgnored) {
  asio::io_context io;
  ferry::barrier b(2);
  asio::cancellation_signal signal;
  std::exception_ptr error;
  std::size_t index = none;
  int calls = 0;
  b.async_arrive_and_wait(asio::bind_cancellation_slot(
      signal.slot(), asio::bind_executor(io, [&](std::exception_ptr e, std::size_t i) {
        ++calls;
        error = e;
        index = i;
      })));
  std::size_t other = none;
  b.async_arrive_and_wait(
      asio::bind_executor(io, [&](std::exception_ptr, std::size_t i) { other = i; }));
  signal.emit(asio::cancellation_type::terminal);  // the barrier already tripped
  io.run();
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(error);
  EXPECT_EQ(index, 0u);
  EXPECT_EQ(other, 1u);
  EXPECT_EQ(b.waiting(), 0u);
}

TEST(Barrier, ComposesWithAwaitableOperators) {
  asio::io_context io;
  ferry::barrier b(2);
  std::size_t index = 99;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto r = co_await (b.arrive_and_wait() || ferry::sleep(5ms));
    index = r.index();
  });
  io.run();
  EXPECT_EQ(index, 1u);
  EXPECT_EQ(b.waiting(), 0u);  // the timed-out arrival was withdrawn
  EXPECT_EQ(b.phase(), 0u);
}

TEST(Barrier, PartiesOnSeveralThreadsMeetEveryPhase) {
  // 4 parties on strands of a 3-thread io_context, 200 phases: each phase every party records
  // its arrival before the barrier; after it, all 4 arrivals of the phase must be visible.
  asio::io_context io;
  constexpr std::size_t parties = 4;
  constexpr int rounds = 200;
  ferry::barrier b(parties);
  std::vector<std::atomic<int>> arrivals(rounds);
  std::atomic<int> violations{0};
  std::atomic<int> leaders{0};
  std::atomic<int> finished{0};
  std::vector<ferry::test::spawned> coros;
  for (std::size_t p = 0; p < parties; ++p) {
    coros.push_back(ferry::test::spawn_checked(asio::make_strand(io), [&]() -> ferry::task<void> {
      for (int r = 0; r < rounds; ++r) {
        arrivals[r].fetch_add(1);
        const std::size_t index = co_await b.arrive_and_wait();
        if (index == parties - 1) leaders.fetch_add(1);
        if (arrivals[r].load() != static_cast<int>(parties)) violations.fetch_add(1);
      }
      finished.fetch_add(1);
    }));
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) threads.emplace_back([&] { io.run(); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(finished.load(), static_cast<int>(parties));
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(leaders.load(), rounds);
  EXPECT_EQ(b.phase(), static_cast<std::uint64_t>(rounds));
}

TEST(Barrier, DestructionFailsRemainingWaiters) {
  asio::io_context io;
  std::exception_ptr error;
  {
    ferry::barrier b(2);
    b.async_arrive_and_wait(
        asio::bind_executor(io, [&](std::exception_ptr e, std::size_t) { error = e; }));
  }
  io.run();
  EXPECT_TRUE(is_operation_aborted(error));
}
