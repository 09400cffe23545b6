// tests/io/semaphore_test.cpp — ferry::semaphore (io/semaphore.hpp).
#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <ferry/io/semaphore.hpp>
#include <ferry/io/sleep.hpp>
#include <stdexcept>
#include <vector>

#include "ferry_test.hpp"

using namespace asio::experimental::awaitable_operators;

using ferry::test::is_operation_aborted;

TEST(Semaphore, AcquireAndReleaseThroughTheGuard) {
  asio::io_context io;
  ferry::semaphore sem(2);
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    {
      auto a = co_await sem.acquire();
      auto b = co_await sem.acquire();
      EXPECT_EQ(sem.available(), 0u);
      EXPECT_FALSE(sem.try_acquire());
    }
    EXPECT_EQ(sem.available(), 2u);
  });
  io.run();
  EXPECT_EQ(sem.available(), 2u);
}

TEST(Semaphore, GuardReleasesWhenAnExceptionUnwinds) {
  asio::io_context io;
  ferry::semaphore sem(1);
  bool caught = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    try {
      auto permit = co_await sem.acquire();
      throw std::runtime_error("inside");
    } catch (const std::runtime_error&) {
      caught = true;
    }
  });
  io.run();
  EXPECT_TRUE(caught);
  EXPECT_EQ(sem.available(), 1u);
}

TEST(Semaphore, WaitersAreServedInFifoOrder) {
  asio::io_context io;
  ferry::semaphore sem(0);
  std::vector<int> order;
  std::vector<ferry::test::spawned> coros;
  for (int i = 0; i < 5; ++i) {
    coros.push_back(ferry::test::spawn_checked(io, [&, i]() -> ferry::task<void> {
      auto permit = co_await sem.acquire();
      order.push_back(i);
    }));
  }
  io.poll();  // all five now wait, in spawn order
  EXPECT_EQ(sem.waiting(), 5u);
  sem.release(5);
  io.run();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(sem.available(), 5u);
}

TEST(Semaphore, TryAcquireDoesNotOvertakeAWaiter) {
  asio::io_context io;
  ferry::semaphore sem(0);
  bool got = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto permit = co_await sem.acquire();
    got = true;
    permit.detach();  // keep it
  });
  io.poll();
  sem.release();
  EXPECT_FALSE(sem.try_acquire());  // the permit went to the waiter
  io.run();
  EXPECT_TRUE(got);
}

TEST(Semaphore, CancelledWaiterConsumesNoPermitAndTheNextOneGetsIt) {
  asio::io_context io;
  ferry::semaphore sem(0);
  ferry::test::cancellable_completion first;
  bool second_got = false;
  sem.async_acquire(first.handler(io));
  sem.async_acquire(asio::bind_executor(io, [&](std::exception_ptr e) { second_got = !e; }));
  EXPECT_EQ(sem.waiting(), 2u);
  first.cancel();
  EXPECT_EQ(sem.waiting(), 1u);
  sem.release();
  io.run();
  EXPECT_TRUE(is_operation_aborted(first.error));
  EXPECT_TRUE(second_got);
  EXPECT_EQ(sem.available(), 0u);  // the one permit is held by the second waiter
}

TEST(Semaphore, CancellationAfterTheGrantIsIgnored) {
  asio::io_context io;
  ferry::semaphore sem(0);
  asio::cancellation_signal signal;
  std::exception_ptr error;
  int calls = 0;
  sem.async_acquire(asio::bind_cancellation_slot(signal.slot(),
                                                 asio::bind_executor(io, [&](std::exception_ptr e) {
                                                   ++calls;
                                                   error = e;
                                                 })));
  sem.release();                                   // granted: the completion is posted
  signal.emit(asio::cancellation_type::terminal);  // too late: ignored
  io.run();
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(error);
  EXPECT_EQ(sem.available(), 0u);
}

TEST(Semaphore, ComposesWithAwaitableOperators) {
  asio::io_context io;
  ferry::semaphore sem(0);
  std::size_t index = 99;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto r = co_await (sem.acquire() || ferry::sleep(5ms));
    index = r.index();
  });
  io.run();
  EXPECT_EQ(index, 1u);
  EXPECT_EQ(sem.waiting(), 0u);
  EXPECT_EQ(sem.available(), 0u);
}

TEST(Semaphore, DestructionFailsRemainingWaiters) {
  asio::io_context io;
  std::exception_ptr error;
  {
    ferry::semaphore sem(0);
    sem.async_acquire(asio::bind_executor(io, [&](std::exception_ptr e) { error = e; }));
  }
  io.run();
  EXPECT_TRUE(is_operation_aborted(error));
}
