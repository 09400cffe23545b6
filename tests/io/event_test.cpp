// tests/io/event_test.cpp — ferry::event (io/event.hpp).
#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <ferry/io/event.hpp>
#include <ferry/io/sleep.hpp>
#include <thread>
#include <vector>

#include "ferry_test.hpp"

using namespace asio::experimental::awaitable_operators;

using ferry::test::is_operation_aborted;

TEST(Event, StartsClearedAndSetClearToggleTheFlag) {
  ferry::event ev;
  EXPECT_FALSE(ev.is_set());
  ev.set();
  EXPECT_TRUE(ev.is_set());
  ev.set();  // idempotent
  EXPECT_TRUE(ev.is_set());
  ev.clear();
  EXPECT_FALSE(ev.is_set());
}

TEST(Event, WaitOnASetEventReturnsWithoutSuspending) {
  asio::io_context io;
  ferry::event ev;
  ev.set();
  bool other_ran = false;
  bool checked = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    asio::post(io, [&] { other_ran = true; });
    co_await ev.wait();  // a suspension would let the posted handler run first
    EXPECT_FALSE(other_ran);
    checked = true;
  });
  io.run();
  EXPECT_TRUE(checked);
}

TEST(Event, WaitSuspendsUntilSet) {
  asio::io_context io;
  ferry::event ev;
  bool woke = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    co_await ev.wait();
    woke = true;
  });
  io.poll();
  EXPECT_FALSE(woke);
  EXPECT_EQ(ev.waiting(), 1u);
  ev.set();
  io.run();
  EXPECT_TRUE(woke);
  EXPECT_EQ(ev.waiting(), 0u);
}

TEST(Event, SetWakesEveryWaiterInFifoOrder) {
  asio::io_context io;
  ferry::event ev;
  std::vector<int> order;
  std::vector<ferry::test::spawned> coros;
  for (int i = 0; i < 5; ++i) {
    coros.push_back(ferry::test::spawn_checked(io, [&, i]() -> ferry::task<void> {
      co_await ev.wait();
      order.push_back(i);
    }));
  }
  io.poll();
  EXPECT_EQ(ev.waiting(), 5u);
  ev.set();
  io.run();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(Event, ClearRightAfterSetDoesNotTakeTheWakeUpBack) {
  asio::io_context io;
  ferry::event ev;
  int woke = 0;
  for (int i = 0; i < 3; ++i) {
    ev.async_wait(asio::bind_executor(io, [&](std::exception_ptr e) { woke += e ? 0 : 1; }));
  }
  ev.set();
  ev.clear();
  io.run();
  EXPECT_EQ(woke, 3);
  EXPECT_FALSE(ev.is_set());
}

TEST(Event, WaitAfterClearWaitsForTheNextSet) {
  asio::io_context io;
  ferry::event ev;
  ev.set();
  ev.clear();
  int woke = 0;
  ev.async_wait(asio::bind_executor(io, [&](std::exception_ptr e) { woke += e ? 0 : 1; }));
  io.poll();
  EXPECT_EQ(woke, 0);
  EXPECT_EQ(ev.waiting(), 1u);
  ev.set();
  io.run();
  EXPECT_EQ(woke, 1);
}

TEST(Event, AsyncWaitOnASetEventCompletesByPost) {
  asio::io_context io;
  ferry::event ev;
  ev.set();
  bool done = false;
  ev.async_wait(asio::bind_executor(io, [&](std::exception_ptr e) { done = !e; }));
  EXPECT_FALSE(done);  // never inline
  io.run();
  EXPECT_TRUE(done);
}

TEST(Event, CancelledWaiterIsRemovedAndTheOthersStillWake) {
  asio::io_context io;
  ferry::event ev;
  asio::cancellation_signal signal;
  std::exception_ptr cancelled_error;
  int woke = 0;
  ev.async_wait(asio::bind_executor(io, [&](std::exception_ptr e) { woke += e ? 0 : 1; }));
  ev.async_wait(asio::bind_cancellation_slot(
      signal.slot(), asio::bind_executor(io, [&](std::exception_ptr e) { cancelled_error = e; })));
  ev.async_wait(asio::bind_executor(io, [&](std::exception_ptr e) { woke += e ? 0 : 1; }));
  EXPECT_EQ(ev.waiting(), 3u);
  signal.emit(asio::cancellation_type::partial);
  EXPECT_EQ(ev.waiting(), 2u);
  io.poll();
  EXPECT_TRUE(is_operation_aborted(cancelled_error));
  EXPECT_EQ(woke, 0);
  ev.set();
  io.run();
  EXPECT_EQ(woke, 2);
}

TEST(Event, CancellationAfterSetIsIgnored) {
  asio::io_context io;
  ferry::event ev;
  asio::cancellation_signal signal;
  std::exception_ptr error;
  int calls = 0;
  ev.async_wait(asio::bind_cancellation_slot(signal.slot(),
                                             asio::bind_executor(io, [&](std::exception_ptr e) {
                                               ++calls;
                                               error = e;
                                             })));
  ev.set();
  signal.emit(asio::cancellation_type::terminal);
  io.run();
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(error);
}

TEST(Event, ComposesWithAwaitableOperators) {
  asio::io_context io;
  ferry::event ev;
  std::size_t index = 99;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto r = co_await (ev.wait() || ferry::sleep(5ms));
    index = r.index();
  });
  io.run();
  EXPECT_EQ(index, 1u);
  EXPECT_EQ(ev.waiting(), 0u);
}

TEST(Event, CancelledCoroutineWaitThrowsOperationAborted) {
  asio::io_context io;
  ferry::event ev;
  asio::cancellation_signal signal;
  std::exception_ptr error;
  asio::co_spawn(
      io,
      [&]() -> ferry::task<void> { co_await ev.wait(); },
      asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) { error = e; }));
  io.poll();
  ASSERT_EQ(ev.waiting(), 1u);
  signal.emit(asio::cancellation_type::terminal);
  io.run();
  EXPECT_TRUE(is_operation_aborted(error));
  EXPECT_EQ(ev.waiting(), 0u);
}

TEST(Event, SetFromAnotherThreadWakesWaitersOnTheirExecutors) {
  asio::io_context a;
  asio::io_context b;
  ferry::event ev;
  std::thread::id a_thread;
  std::thread::id b_thread;
  std::thread::id resumed_a;
  std::thread::id resumed_b;
  auto spawn = [&](asio::io_context& io, std::thread::id& resumed) {
    return ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
      co_await ev.wait();
      resumed = std::this_thread::get_id();
    });
  };
  auto coro_a = spawn(a, resumed_a);
  auto coro_b = spawn(b, resumed_b);
  std::thread ta([&] {
    a_thread = std::this_thread::get_id();
    a.run();
  });
  std::thread tb([&] {
    b_thread = std::this_thread::get_id();
    b.run();
  });
  ev.set();
  ta.join();
  tb.join();
  EXPECT_EQ(resumed_a, a_thread);
  EXPECT_EQ(resumed_b, b_thread);
}

TEST(Event, DestructionFailsRemainingWaiters) {
  asio::io_context io;
  std::exception_ptr error;
  {
    ferry::event ev;
    ev.async_wait(asio::bind_executor(io, [&](std::exception_ptr e) { error = e; }));
  }
  io.run();
  EXPECT_TRUE(is_operation_aborted(error));
}
