// tests/io/mutex_test.cpp — ferry::mutex (io/mutex.hpp).
#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <ferry/io/event.hpp>
#include <ferry/io/mutex.hpp>
#include <ferry/io/sleep.hpp>
#include <stdexcept>
#include <thread>
#include <vector>

#include "ferry_test.hpp"

using namespace asio::experimental::awaitable_operators;

using ferry::test::is_operation_aborted;

TEST(Mutex, LockAndUnlockThroughTheGuard) {
  asio::io_context io;
  ferry::mutex m;
  bool ran = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    {
      auto lock = co_await m.lock();
      EXPECT_TRUE(lock.owns_lock());
      EXPECT_EQ(lock.mutex(), &m);
      EXPECT_TRUE(m.locked());
      EXPECT_FALSE(m.try_lock());
      ran = true;
    }
    EXPECT_FALSE(m.locked());
  });
  io.run();
  EXPECT_TRUE(ran);
  EXPECT_FALSE(m.locked());
}

TEST(Mutex, TryLockAndUnlock) {
  ferry::mutex m;
  EXPECT_TRUE(m.try_lock());
  EXPECT_TRUE(m.locked());
  EXPECT_FALSE(m.try_lock());
  m.unlock();
  EXPECT_FALSE(m.locked());
  EXPECT_TRUE(m.try_lock());
  ferry::mutex::guard adopted(m, std::adopt_lock);
  EXPECT_TRUE(adopted.owns_lock());
  adopted.unlock();
  EXPECT_FALSE(adopted.owns_lock());
  EXPECT_FALSE(m.locked());
}

TEST(Mutex, UnlockOfAnUnlockedMutexThrowsLogicError) {
  ferry::mutex m;
  EXPECT_THROW(m.unlock(), std::logic_error);
}

TEST(Mutex, GuardUnlocksWhenAnExceptionUnwinds) {
  asio::io_context io;
  ferry::mutex m;
  bool caught = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    try {
      auto lock = co_await m.lock();
      throw std::runtime_error("inside");
    } catch (const std::runtime_error&) {
      caught = true;
      EXPECT_FALSE(m.locked());
    }
  });
  io.run();
  EXPECT_TRUE(caught);
  EXPECT_FALSE(m.locked());
}

TEST(Mutex, GuardMovesUnlocksEarlyAndDetaches) {
  ferry::mutex a;
  ferry::mutex b;
  ASSERT_TRUE(a.try_lock());
  ASSERT_TRUE(b.try_lock());
  ferry::mutex::guard ga(a, std::adopt_lock);
  ferry::mutex::guard gb(b, std::adopt_lock);
  ferry::mutex::guard moved(std::move(ga));
  EXPECT_FALSE(ga.owns_lock());
  EXPECT_EQ(moved.mutex(), &a);
  EXPECT_TRUE(a.locked());
  moved = std::move(gb);  // unlocks a, takes b
  EXPECT_FALSE(a.locked());
  EXPECT_TRUE(b.locked());
  EXPECT_EQ(moved.mutex(), &b);
  ferry::mutex* detached = moved.detach();
  EXPECT_EQ(detached, &b);
  EXPECT_FALSE(moved.owns_lock());
  moved.unlock();  // empty: no-op
  EXPECT_TRUE(b.locked());
  b.unlock();
  EXPECT_FALSE(b.locked());
}

TEST(Mutex, UncontendedLockDoesNotSuspend) {
  asio::io_context io;
  ferry::mutex m;
  bool other_ran = false;
  bool checked = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    asio::post(io, [&] { other_ran = true; });
    auto lock = co_await m.lock();  // a suspension would let the posted handler run first
    EXPECT_FALSE(other_ran);
    checked = true;
  });
  io.run();
  EXPECT_TRUE(checked);
  EXPECT_TRUE(other_ran);
}

TEST(Mutex, UnlockHandsOwnershipToWaitersInFifoOrder) {
  asio::io_context io;
  ferry::mutex m;
  ASSERT_TRUE(m.try_lock());
  std::vector<int> order;
  std::vector<ferry::test::spawned> coros;
  for (int i = 0; i < 5; ++i) {
    coros.push_back(ferry::test::spawn_checked(io, [&, i]() -> ferry::task<void> {
      auto lock = co_await m.lock();
      order.push_back(i);
      co_await asio::post(io, asio::use_awaitable);  // hold the lock across a suspension
    }));
  }
  io.poll();
  EXPECT_EQ(m.waiting(), 5u);
  m.unlock();
  io.run();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_FALSE(m.locked());
}

TEST(Mutex, UnlockNeverLetsANewcomerBargeIn) {
  asio::io_context io;
  ferry::mutex m;
  ASSERT_TRUE(m.try_lock());
  bool waiter_got = false;
  m.async_lock(asio::bind_executor(io, [&](std::exception_ptr e) {
    waiter_got = !e;
    m.unlock();
  }));
  m.unlock();                  // handed to the waiter, not freed
  EXPECT_TRUE(m.locked());     // the waiter owns it before it even runs
  EXPECT_FALSE(m.try_lock());  // so a newcomer cannot take it
  EXPECT_EQ(m.waiting(), 0u);
  io.run();
  EXPECT_TRUE(waiter_got);
  EXPECT_FALSE(m.locked());
}

TEST(Mutex, CancelledWaiterIsRemovedAndTheNextOneGetsTheLock) {
  asio::io_context io;
  ferry::mutex m;
  ASSERT_TRUE(m.try_lock());
  ferry::test::cancellable_completion first;
  bool second_got = false;
  m.async_lock(first.handler(io));
  m.async_lock(asio::bind_executor(io, [&](std::exception_ptr e) { second_got = !e; }));
  EXPECT_EQ(m.waiting(), 2u);
  first.cancel();
  EXPECT_EQ(m.waiting(), 1u);
  m.unlock();
  io.run();
  EXPECT_TRUE(is_operation_aborted(first.error));
  EXPECT_TRUE(second_got);
  EXPECT_TRUE(m.locked());  // owned by the second waiter, which did not unlock
  m.unlock();
  EXPECT_FALSE(m.locked());
}

TEST(Mutex, CancellingTheOnlyWaiterLeavesNoOwnerlessLock) {
  asio::io_context io;
  ferry::mutex m;
  ASSERT_TRUE(m.try_lock());
  asio::cancellation_signal signal;
  std::exception_ptr error;
  m.async_lock(asio::bind_cancellation_slot(
      signal.slot(), asio::bind_executor(io, [&](std::exception_ptr e) { error = e; })));
  signal.emit(asio::cancellation_type::terminal);
  m.unlock();
  io.run();
  EXPECT_TRUE(is_operation_aborted(error));
  EXPECT_FALSE(m.locked());
  EXPECT_TRUE(m.try_lock());
  m.unlock();
}

TEST(Mutex, PartialAndTotalCancellationAreHonoured) {
  for (auto type : {asio::cancellation_type::partial, asio::cancellation_type::total}) {
    asio::io_context io;
    ferry::mutex m;
    ASSERT_TRUE(m.try_lock());
    asio::cancellation_signal signal;
    std::exception_ptr error;
    m.async_lock(asio::bind_cancellation_slot(
        signal.slot(), asio::bind_executor(io, [&](std::exception_ptr e) { error = e; })));
    signal.emit(type);
    io.run();
    EXPECT_TRUE(is_operation_aborted(error));
    EXPECT_EQ(m.waiting(), 0u);
    m.unlock();
    EXPECT_FALSE(m.locked());
  }
}

TEST(Mutex, CancellationAfterTheHandOffIsIgnoredAndTheLockIsDelivered) {
  asio::io_context io;
  ferry::mutex m;
  ASSERT_TRUE(m.try_lock());
  asio::cancellation_signal signal;
  std::exception_ptr error;
  int calls = 0;
  m.async_lock(asio::bind_cancellation_slot(signal.slot(),
                                            asio::bind_executor(io, [&](std::exception_ptr e) {
                                              ++calls;
                                              error = e;
                                            })));
  m.unlock();                                      // handed over: the completion is posted
  signal.emit(asio::cancellation_type::terminal);  // too late: ignored
  io.run();
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(error);
  EXPECT_TRUE(m.locked());  // the waiter owns it
  m.unlock();
}

TEST(Mutex, HandOffToTheLosingBranchOfOrIsUnlockedByItsGuard) {
  // `m.lock() || ev.wait()`: both wait; the event's completion is posted first, then the lock
  // is handed to the lock() branch. The event wins and cancels the lock() branch too late: it
  // owns the lock, and the guard it returns is dropped by the race, which unlocks the mutex.
  asio::io_context io;
  ferry::mutex m;
  ferry::event ev;
  ASSERT_TRUE(m.try_lock());
  std::size_t index = 99;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto r = co_await (m.lock() || ev.wait());
    index = r.index();
  });
  io.poll();
  ASSERT_EQ(m.waiting(), 1u);
  ASSERT_EQ(ev.waiting(), 1u);
  ev.set();
  m.unlock();
  EXPECT_TRUE(m.locked());  // handed to the lock() branch
  io.run();
  EXPECT_EQ(index, 1u);
  EXPECT_FALSE(m.locked());
  EXPECT_EQ(m.waiting(), 0u);
}

TEST(Mutex, ComposesWithAwaitableOperators) {
  asio::io_context io;
  ferry::mutex m;
  ASSERT_TRUE(m.try_lock());
  std::size_t index = 99;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto r = co_await (m.lock() || ferry::sleep(5ms));
    index = r.index();
  });
  io.run();
  EXPECT_EQ(index, 1u);  // the mutex was never unlocked: the sleep won
  EXPECT_EQ(m.waiting(), 0u);
  EXPECT_TRUE(m.locked());
  m.unlock();
  EXPECT_FALSE(m.locked());
}

TEST(Mutex, AsyncLockWorksWithAsTupleAndDeferred) {
  asio::io_context io;
  ferry::mutex m;
  bool got = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto [e] = co_await m.async_lock(asio::as_tuple(asio::use_awaitable));
    EXPECT_FALSE(e);
    ferry::mutex::guard lock(m, std::adopt_lock);
    auto op = m.async_lock(asio::deferred);  // not started yet
    lock.unlock();
    co_await std::move(op)(asio::use_awaitable);
    got = m.locked();
    m.unlock();
  });
  io.run();
  EXPECT_TRUE(got);
  EXPECT_FALSE(m.locked());
}

TEST(Mutex, WaitersOnOtherThreadsResumeOnTheirOwnExecutors) {
  asio::io_context a;
  asio::io_context b;
  ferry::mutex m;
  ASSERT_TRUE(m.try_lock());
  std::thread::id a_thread;
  std::thread::id b_thread;
  std::thread::id resumed_a;
  std::thread::id resumed_b;
  auto coro = ferry::test::spawn_checked(a, [&]() -> ferry::task<void> {
    auto lock = co_await m.lock();
    resumed_a = std::this_thread::get_id();
  });
  auto coro2 = ferry::test::spawn_checked(b, [&]() -> ferry::task<void> {
    auto lock = co_await m.lock();
    resumed_b = std::this_thread::get_id();
  });
  std::thread ta([&] {
    a_thread = std::this_thread::get_id();
    a.run();
  });
  std::thread tb([&] {
    b_thread = std::this_thread::get_id();
    b.run();
  });
  m.unlock();  // the first waiter to have queued gets it, then hands it to the other
  ta.join();
  tb.join();
  EXPECT_EQ(resumed_a, a_thread);
  EXPECT_EQ(resumed_b, b_thread);
  EXPECT_FALSE(m.locked());
}

TEST(Mutex, DestructionFailsRemainingWaiters) {
  asio::io_context io;
  std::exception_ptr error;
  {
    ferry::mutex m;
    ASSERT_TRUE(m.try_lock());
    m.async_lock(asio::bind_executor(io, [&](std::exception_ptr e) { error = e; }));
  }
  io.run();
  EXPECT_TRUE(is_operation_aborted(error));
}
