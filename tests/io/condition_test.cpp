// tests/io/condition_test.cpp — ferry::condition (io/condition.hpp).
#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <ferry/io/condition.hpp>
#include <ferry/io/mutex.hpp>
#include <ferry/io/sleep.hpp>
#include <optional>
#include <stdexcept>
#include <vector>

#include "ferry_test.hpp"

using namespace asio::experimental::awaitable_operators;

namespace {

using ferry::test::is_operation_aborted;

// A waiter driven by callbacks: holds the condition's mutex, then waits on `cv`.
struct callback_waiter {
  ferry::mutex::guard guard;
  asio::cancellation_signal signal;
  int completions = 0;
  std::exception_ptr error;
  bool owned_on_completion = false;

  void start(asio::io_context& io, ferry::condition& cv) {
    ASSERT_TRUE(cv.mutex().try_lock());
    guard = ferry::mutex::guard(cv.mutex(), std::adopt_lock);
    cv.async_wait(guard,
                  asio::bind_cancellation_slot(
                      signal.slot(), asio::bind_executor(io, [this](std::exception_ptr e) {
                        ++completions;
                        error = e;
                        owned_on_completion = guard.owns_lock();
                        guard.unlock();
                      })));
  }
  bool proceeded() const { return completions == 1 && !error; }
  // Completed once, with operation_aborted, holding the mutex again.
  void expect_cancelled() const {
    EXPECT_EQ(completions, 1);
    EXPECT_TRUE(is_operation_aborted(error));
    EXPECT_TRUE(owned_on_completion);
  }
};

}  // namespace

namespace {

// Starts `n` coroutines that wait on `cv`, each under its lock, and append their index to `order`
// once woken; runs `io` until all of them wait. The test keeps the handles.
std::vector<ferry::test::spawned> start_waiters(asio::io_context& io,
                                                ferry::condition& cv,
                                                int n,
                                                std::vector<int>& order) {
  std::vector<ferry::test::spawned> waiters;
  for (int i = 0; i < n; ++i) {
    waiters.push_back(ferry::test::spawn_checked(io, [&cv, &order, i]() -> ferry::task<void> {
      auto lock = co_await cv.lock();
      co_await cv.wait(lock);
      order.push_back(i);
    }));
  }
  io.poll();
  return waiters;
}

}  // namespace

TEST(Condition, WaitReleasesTheMutexAndReacquiresItBeforeReturning) {
  asio::io_context io;
  ferry::condition cv;
  bool ready = false;
  bool notifier_done = false;
  bool checked = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto lock = co_await cv.lock();
    co_await cv.wait(lock);
    EXPECT_TRUE(lock.owns_lock());
    EXPECT_TRUE(cv.mutex().locked());
    EXPECT_TRUE(ready);
    EXPECT_TRUE(notifier_done);  // could not resume while the notifier held the mutex
    checked = true;
  });
  io.poll();
  EXPECT_EQ(cv.waiting(), 1u);
  EXPECT_FALSE(cv.mutex().locked());  // released by the wait
  auto coro2 = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto lock = co_await cv.lock();
    ready = true;
    cv.notify_one();
    co_await asio::post(io, asio::use_awaitable);  // keep the mutex across a suspension
    notifier_done = true;
  });
  io.run();
  EXPECT_TRUE(checked);
  EXPECT_FALSE(cv.mutex().locked());
}

TEST(Condition, NotifyOneWakesTheOldestWaiter) {
  asio::io_context io;
  ferry::condition cv;
  std::vector<int> order;
  auto waiters = start_waiters(io, cv, 3, order);
  ASSERT_EQ(cv.waiting(), 3u);
  for (int n = 1; n <= 3; ++n) {
    cv.notify_one();
    io.poll();
    EXPECT_EQ(order.size(), static_cast<std::size_t>(n));
    EXPECT_EQ(cv.waiting(), static_cast<std::size_t>(3 - n));
  }
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
}

TEST(Condition, NotifyAllAndNotifyNWakeWaitersInFifoOrder) {
  asio::io_context io;
  ferry::condition cv;
  std::vector<int> order;
  auto waiters = start_waiters(io, cv, 5, order);
  cv.notify(2);
  io.poll();
  EXPECT_EQ(order, (std::vector<int>{0, 1}));
  EXPECT_EQ(cv.waiting(), 3u);
  cv.notify_all();
  io.run();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(cv.waiting(), 0u);
}

TEST(Condition, NotifyWithNoWaiterIsNotRemembered) {
  asio::io_context io;
  ferry::condition cv;
  cv.notify_one();
  cv.notify_all();
  bool woke = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto lock = co_await cv.lock();
    co_await cv.wait(lock);
    woke = true;
  });
  io.poll();
  EXPECT_FALSE(woke);
  EXPECT_EQ(cv.waiting(), 1u);
  cv.notify_one();
  io.run();
  EXPECT_TRUE(woke);
}

TEST(Condition, NotifiedWaiterQueuesForTheMutexBehindEarlierLockers) {
  asio::io_context io;
  ferry::condition cv;
  std::vector<char> order;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto lock = co_await cv.lock();
    co_await cv.wait(lock);
    order.push_back('w');
  });
  io.poll();
  ASSERT_TRUE(cv.mutex().try_lock());  // the test holds the mutex
  auto coro2 = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto lock = co_await cv.lock();
    order.push_back('l');
  });
  io.poll();
  cv.notify_one();
  io.poll();  // the notified waiter now waits for the mutex, behind the locker
  EXPECT_TRUE(order.empty());
  EXPECT_EQ(cv.mutex().waiting(), 2u);
  cv.mutex().unlock();
  io.run();
  EXPECT_EQ(order, (std::vector<char>{'l', 'w'}));
  EXPECT_FALSE(cv.mutex().locked());
}

TEST(Condition, WaitWithPredicateLoopsUntilItHolds) {
  asio::io_context io;
  ferry::condition cv;
  int value = 0;
  int evaluations = 0;
  bool done = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto lock = co_await cv.lock();
    co_await cv.wait(lock, [&] {
      ++evaluations;
      return value >= 3;
    });
    EXPECT_TRUE(lock.owns_lock());
    EXPECT_EQ(value, 3);
    done = true;
  });
  io.poll();
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(done);
    ++value;
    cv.notify_all();
    io.poll();
  }
  EXPECT_TRUE(done);
  EXPECT_EQ(evaluations, 4);  // once before waiting, once per notification
}

TEST(Condition, WaitWithATruePredicateDoesNotWait) {
  asio::io_context io;
  ferry::condition cv;
  bool done = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto lock = co_await cv.lock();
    co_await cv.wait(lock, [] { return true; });
    done = lock.owns_lock();
  });
  io.run();
  EXPECT_TRUE(done);
  EXPECT_EQ(cv.waiting(), 0u);
}

TEST(Condition, PredicateExceptionPropagatesAndTheGuardUnlocks) {
  asio::io_context io;
  ferry::condition cv;
  bool caught = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    try {
      auto lock = co_await cv.lock();
      co_await cv.wait(lock, []() -> bool { throw std::runtime_error("pred"); });
    } catch (const std::runtime_error&) {
      caught = true;
    }
  });
  io.run();
  EXPECT_TRUE(caught);
  EXPECT_FALSE(cv.mutex().locked());
}

TEST(Condition, WaitRequiresAGuardOfTheConditionsMutex) {
  asio::io_context io;
  ferry::condition cv;
  ferry::mutex other;
  int invalid = 0;
  bool other_still_owned = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    ferry::mutex::guard empty;
    try {
      co_await cv.wait(empty);
    } catch (const std::invalid_argument&) {
      ++invalid;
    }
    auto lock = co_await other.lock();
    try {
      co_await cv.wait(lock, [] { return false; });
    } catch (const std::invalid_argument&) {
      ++invalid;
    }
    other_still_owned = lock.owns_lock() && other.locked();
  });
  io.run();
  EXPECT_EQ(invalid, 2);
  EXPECT_TRUE(other_still_owned);
  EXPECT_EQ(cv.waiting(), 0u);
  EXPECT_FALSE(other.locked());
}

TEST(Condition, CancelledWaitReacquiresTheMutexBeforeThrowing) {
  asio::io_context io;
  ferry::condition cv;
  asio::cancellation_signal signal;
  bool aborted = false;
  bool owned_when_thrown = false;
  bool finished = false;
  auto coro = ferry::test::spawn_checked(
      io,
      [&]() -> ferry::task<void> {
        auto lock = co_await cv.lock();
        try {
          co_await cv.wait(lock);
        } catch (const boost::system::system_error& e) {
          aborted = e.code() == asio::error::operation_aborted;
          owned_when_thrown = lock.owns_lock() && cv.mutex().locked();
        }
        finished = true;
      },
      signal.slot());
  io.poll();
  ASSERT_EQ(cv.waiting(), 1u);
  ASSERT_TRUE(cv.mutex().try_lock());  // somebody else holds the mutex
  signal.emit(asio::cancellation_type::terminal);
  io.poll();
  EXPECT_EQ(cv.waiting(), 0u);          // left the condition's queue
  EXPECT_EQ(cv.mutex().waiting(), 1u);  // and waits for the mutex
  EXPECT_FALSE(finished);               // not before it owns the mutex again
  cv.mutex().unlock();
  io.run();
  EXPECT_TRUE(finished);
  EXPECT_TRUE(aborted);
  EXPECT_TRUE(owned_when_thrown);
  EXPECT_FALSE(cv.mutex().locked());
}

TEST(Condition, PartialAndTotalCancellationAreHonoured) {
  for (auto type : {asio::cancellation_type::partial, asio::cancellation_type::total}) {
    asio::io_context io;
    ferry::condition cv;
    callback_waiter w;
    w.start(io, cv);
    w.signal.emit(type);
    io.run();
    w.expect_cancelled();
    EXPECT_EQ(cv.waiting(), 0u);
    EXPECT_FALSE(cv.mutex().locked());
  }
}

TEST(Condition, NotifyOneAfterACancellationGoesToTheNextWaiter) {
  asio::io_context io;
  ferry::condition cv;
  callback_waiter first;
  callback_waiter second;
  first.start(io, cv);
  second.start(io, cv);
  ASSERT_EQ(cv.waiting(), 2u);
  first.signal.emit(asio::cancellation_type::terminal);
  cv.notify_one();
  io.run();
  first.expect_cancelled();
  EXPECT_TRUE(second.proceeded());
  EXPECT_TRUE(second.owned_on_completion);
  EXPECT_EQ(first.proceeded() + second.proceeded(), 1);
  EXPECT_EQ(cv.waiting(), 0u);
  EXPECT_FALSE(cv.mutex().locked());
}

TEST(Condition, NotifyOneBeforeACancellationIsKeptByTheNotifiedWaiter) {
  asio::io_context io;
  ferry::condition cv;
  callback_waiter first;
  callback_waiter second;
  first.start(io, cv);
  second.start(io, cv);
  cv.notify_one();
  first.signal.emit(asio::cancellation_type::terminal);  // too late: the notification stands
  io.poll();
  EXPECT_TRUE(first.proceeded());
  EXPECT_TRUE(first.owned_on_completion);
  EXPECT_EQ(second.completions, 0);  // still waiting: exactly one proceeded
  EXPECT_EQ(cv.waiting(), 1u);
  cv.notify_one();
  io.run();
  EXPECT_TRUE(second.proceeded());
  EXPECT_FALSE(cv.mutex().locked());
}

TEST(Condition, ComposesWithAwaitableOperators) {
  asio::io_context io;
  ferry::condition cv;
  std::size_t index = 99;
  bool owned_after = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto lock = co_await cv.lock();
    auto r = co_await (cv.wait(lock) || ferry::sleep(5ms));
    index = r.index();
    owned_after = lock.owns_lock() && cv.mutex().locked();
  });
  io.run();
  EXPECT_EQ(index, 1u);
  EXPECT_TRUE(owned_after);
  EXPECT_EQ(cv.waiting(), 0u);
  EXPECT_FALSE(cv.mutex().locked());
}

TEST(Condition, SharesABorrowedMutexWithOtherConditions) {
  asio::io_context io;
  ferry::mutex m;
  ferry::condition not_empty(m);
  ferry::condition not_full(m);
  EXPECT_EQ(&not_empty.mutex(), &m);
  EXPECT_EQ(&not_full.mutex(), &m);
  std::vector<int> items;
  std::vector<int> taken;
  constexpr std::size_t capacity = 2;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    for (int i = 0; i < 10; ++i) {
      auto lock = co_await m.lock();
      co_await not_full.wait(lock, [&] { return items.size() < capacity; });
      items.push_back(i);
      not_empty.notify_one();
    }
  });
  auto coro2 = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    while (taken.size() < 10) {
      auto lock = co_await m.lock();
      co_await not_empty.wait(lock, [&] { return !items.empty(); });
      EXPECT_LE(items.size(), capacity);
      taken.push_back(items.front());
      items.erase(items.begin());
      not_full.notify_one();
    }
  });
  io.run();
  EXPECT_EQ(taken, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_FALSE(m.locked());
}

TEST(Condition, DestructionWithABorrowedMutexFailsWaitersWhichReacquireIt) {
  asio::io_context io;
  ferry::mutex m;
  ferry::mutex::guard guard;
  std::exception_ptr error;
  bool owned = false;
  {
    ferry::condition cv(m);
    ASSERT_TRUE(m.try_lock());
    guard = ferry::mutex::guard(m, std::adopt_lock);
    cv.async_wait(guard, asio::bind_executor(io, [&](std::exception_ptr e) {
                    error = e;
                    owned = guard.owns_lock();
                  }));
  }
  io.run();
  EXPECT_TRUE(is_operation_aborted(error));
  EXPECT_TRUE(owned);
  EXPECT_TRUE(m.locked());
  guard.unlock();
  EXPECT_FALSE(m.locked());
}

TEST(Condition, DestructionWithAnOwnedMutexFailsWaitersAndLeavesTheirGuardsEmpty) {
  asio::io_context io;
  ferry::mutex::guard guard;
  std::exception_ptr error;
  bool owned = true;
  {
    ferry::condition cv;
    ASSERT_TRUE(cv.mutex().try_lock());
    guard = ferry::mutex::guard(cv.mutex(), std::adopt_lock);
    cv.async_wait(guard, asio::bind_executor(io, [&](std::exception_ptr e) {
                    error = e;
                    owned = guard.owns_lock();
                  }));
  }
  io.run();
  EXPECT_TRUE(is_operation_aborted(error));
  EXPECT_FALSE(owned);
  EXPECT_FALSE(guard.owns_lock());
}
