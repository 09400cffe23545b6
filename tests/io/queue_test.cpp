// tests/io/queue_test.cpp — ferry::queue (io/queue.hpp).
#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <ferry/ferry.hpp>
#include <ferry/io/queue.hpp>
#include <ferry/io/sleep.hpp>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ferry_test.hpp"

using namespace asio::experimental::awaitable_operators;

namespace {

using ferry::test::is_operation_aborted;

bool is_queue_closed(const std::exception_ptr& e) {
  try {
    if (e) std::rethrow_exception(e);
  } catch (const ferry::queue_closed&) {
    return true;
  } catch (...) {
  }
  return false;
}

// Move-only and without a default constructor: what the queue must cope with.
class token {
 public:
  explicit token(int v) : value_(std::make_unique<int>(v)) {}
  int value() const { return *value_; }

 private:
  std::unique_ptr<int> value_;
};

}  // namespace

TEST(Queue, ZeroCapacityIsRejected) {
  EXPECT_THROW(ferry::queue<int>(0), std::invalid_argument);
  ferry::queue<int> q(ferry::queue<int>::unbounded);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(q.try_put(i));
  EXPECT_FALSE(q.full());
  EXPECT_EQ(q.size(), 1000u);
}

TEST(Queue, ItemsComeOutInFifoOrder) {
  asio::io_context io;
  ferry::queue<int> q(3);
  std::vector<int> got;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    co_await q.put(1);
    co_await q.put(2);
    EXPECT_TRUE(q.try_put(3));
    EXPECT_TRUE(q.full());
    EXPECT_FALSE(q.try_put(4));
    for (int i = 0; i < 3; ++i) got.push_back(co_await q.get());
    EXPECT_TRUE(q.empty());
    EXPECT_FALSE(q.try_get().has_value());
  });
  io.run();
  EXPECT_EQ(got, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(q.capacity(), 3u);
}

TEST(Queue, MoveOnlyItemsWithoutDefaultConstructor) {
  asio::io_context io;
  ferry::queue<token> q(1);
  std::vector<int> got;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    for (int i = 0; i < 3; ++i) got.push_back((co_await q.get()).value());
  });
  auto coro2 = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    for (int i = 0; i < 3; ++i) co_await q.put(token(i));
  });
  io.run();
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2}));
}

TEST(Queue, TryPutLeavesTheValueIntactWhenFull) {
  ferry::queue<std::unique_ptr<int>> q(1);
  auto first = std::make_unique<int>(1);
  auto second = std::make_unique<int>(2);
  EXPECT_TRUE(q.try_put(std::move(first)));
  EXPECT_EQ(first, nullptr);  // accepted: moved from
  EXPECT_FALSE(q.try_put(std::move(second)));
  ASSERT_NE(second, nullptr);  // refused: untouched
  EXPECT_EQ(*second, 2);
  auto item = q.try_get();
  ASSERT_TRUE(item.has_value());
  EXPECT_EQ(**item, 1);
}

TEST(Queue, PutWaitsWhileFullAndEntersWhenAGetFreesASlot) {
  asio::io_context io;
  ferry::queue<int> q(1);
  bool put_done = false;
  EXPECT_TRUE(q.try_put(1));
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    co_await q.put(2);
    put_done = true;
  });
  io.poll();
  EXPECT_FALSE(put_done);
  EXPECT_EQ(q.putters_waiting(), 1u);
  auto first = q.try_get();  // frees the slot: the blocked item moves in at once
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, 1);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.putters_waiting(), 0u);
  io.run();
  EXPECT_TRUE(put_done);
  EXPECT_EQ(q.try_get(), std::optional<int>(2));
}

TEST(Queue, GetWaitsWhileEmptyAndReceivesTheItemDirectly) {
  asio::io_context io;
  ferry::queue<std::string> q(1);
  std::string got;
  auto coro =
      ferry::test::spawn_checked(io, [&]() -> ferry::task<void> { got = co_await q.get(); });
  io.poll();
  EXPECT_EQ(q.getters_waiting(), 1u);
  EXPECT_TRUE(q.try_put("hello"));
  EXPECT_EQ(q.size(), 0u);  // handed to the getter, not queued
  io.run();
  EXPECT_EQ(got, "hello");
}

TEST(Queue, WaitingGettersAreServedInFifoOrder) {
  asio::io_context io;
  ferry::queue<int> q(10);
  std::vector<std::pair<int, int>> got;  // (getter, item)
  std::vector<ferry::test::spawned> coros;
  for (int i = 0; i < 5; ++i) {
    coros.push_back(ferry::test::spawn_checked(
        io, [&, i]() -> ferry::task<void> { got.emplace_back(i, co_await q.get()); }));
  }
  io.poll();
  EXPECT_EQ(q.getters_waiting(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(q.try_put(100 + i));
  io.run();
  ASSERT_EQ(got.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(got[i], std::make_pair(i, 100 + i));
}

TEST(Queue, BlockedPuttersEnterInFifoOrder) {
  asio::io_context io;
  ferry::queue<int> q(1);
  EXPECT_TRUE(q.try_put(0));
  std::vector<ferry::test::spawned> coros;
  for (int i = 1; i <= 4; ++i) {
    coros.push_back(
        ferry::test::spawn_checked(io, [&, i]() -> ferry::task<void> { co_await q.put(i); }));
  }
  io.poll();
  EXPECT_EQ(q.putters_waiting(), 4u);
  std::vector<int> got;
  while (auto item = q.try_get()) got.push_back(*item);
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4}));
  io.run();
}

TEST(Queue, FastPathsDoNotOvertakeWaiters) {
  ferry::queue<int> q(1);
  asio::io_context io;
  // A waiting getter: the queue is empty, try_get finds nothing, a put goes to the getter.
  std::optional<int> getter_got;
  q.async_get(asio::bind_executor(
      io, [&](std::exception_ptr, std::optional<int> item) { getter_got = std::move(item); }));
  EXPECT_FALSE(q.try_get().has_value());
  EXPECT_TRUE(q.try_put(7));
  EXPECT_FALSE(q.try_get().has_value());  // 7 belongs to the getter
  io.run();
  EXPECT_EQ(getter_got, std::optional<int>(7));
  io.restart();
  // A blocked putter: try_put must not slip in before it when a slot frees.
  EXPECT_TRUE(q.try_put(1));
  bool putter_done = false;
  q.async_put(2, asio::bind_executor(io, [&](std::exception_ptr e) { putter_done = !e; }));
  EXPECT_EQ(q.try_get(), std::optional<int>(1));
  EXPECT_FALSE(q.try_put(3));  // the slot went to the blocked putter's item
  EXPECT_EQ(q.try_get(), std::optional<int>(2));
  io.run();
  EXPECT_TRUE(putter_done);
}

TEST(Queue, CancelledGetterTakesNoItemAndTheNextGetterGetsIt) {
  asio::io_context io;
  ferry::queue<int> q(4);
  asio::cancellation_signal signal;
  std::exception_ptr first_error;
  std::optional<int> first_item, second_item;
  q.async_get(asio::bind_cancellation_slot(
      signal.slot(), asio::bind_executor(io, [&](std::exception_ptr e, std::optional<int> item) {
        first_error = e;
        first_item = std::move(item);
      })));
  q.async_get(asio::bind_executor(
      io, [&](std::exception_ptr, std::optional<int> item) { second_item = std::move(item); }));
  EXPECT_EQ(q.getters_waiting(), 2u);
  signal.emit(asio::cancellation_type::terminal);
  EXPECT_EQ(q.getters_waiting(), 1u);
  EXPECT_TRUE(q.try_put(42));
  io.run();
  EXPECT_TRUE(is_operation_aborted(first_error));
  EXPECT_FALSE(first_item.has_value());
  EXPECT_EQ(second_item, std::optional<int>(42));
  EXPECT_EQ(q.size(), 0u);
}

TEST(Queue, CancelledLastGetterLeavesTheItemQueued) {
  asio::io_context io;
  ferry::queue<int> q(4);
  asio::cancellation_signal signal;
  std::exception_ptr error;
  q.async_get(asio::bind_cancellation_slot(
      signal.slot(),
      asio::bind_executor(io, [&](std::exception_ptr e, std::optional<int>) { error = e; })));
  signal.emit(asio::cancellation_type::partial);
  EXPECT_TRUE(q.try_put(5));
  io.run();
  EXPECT_TRUE(is_operation_aborted(error));
  EXPECT_EQ(q.try_get(), std::optional<int>(5));
}

TEST(Queue, CancellationAfterTheHandOverIsIgnored) {
  asio::io_context io;
  ferry::queue<int> q(1);
  asio::cancellation_signal signal;
  int calls = 0;
  std::exception_ptr error;
  std::optional<int> item;
  q.async_get(asio::bind_cancellation_slot(
      signal.slot(), asio::bind_executor(io, [&](std::exception_ptr e, std::optional<int> v) {
        ++calls;
        error = e;
        item = std::move(v);
      })));
  EXPECT_TRUE(q.try_put(9));                       // handed over: the completion is posted
  signal.emit(asio::cancellation_type::terminal);  // too late: ignored
  io.run();
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(error);
  EXPECT_EQ(item, std::optional<int>(9));
}

TEST(Queue, CancelledPutterIsNotEnqueuedAndTheNextPutterEnters) {
  asio::io_context io;
  ferry::queue<int> q(1);
  EXPECT_TRUE(q.try_put(1));
  asio::cancellation_signal signal;
  std::exception_ptr first_error;
  bool second_done = false;
  q.async_put(
      2,
      asio::bind_cancellation_slot(
          signal.slot(), asio::bind_executor(io, [&](std::exception_ptr e) { first_error = e; })));
  q.async_put(3, asio::bind_executor(io, [&](std::exception_ptr e) { second_done = !e; }));
  signal.emit(asio::cancellation_type::total);
  EXPECT_EQ(q.putters_waiting(), 1u);
  EXPECT_EQ(q.try_get(), std::optional<int>(1));
  EXPECT_EQ(q.try_get(), std::optional<int>(3));
  EXPECT_FALSE(q.try_get().has_value());
  io.run();
  EXPECT_TRUE(is_operation_aborted(first_error));
  EXPECT_TRUE(second_done);
  EXPECT_EQ(q.unfinished(), 2u);  // 1 and 3 were accepted, 2 was not
}

TEST(Queue, ComposesWithAwaitableOperators) {
  asio::io_context io;
  ferry::queue<int> q(1);
  std::size_t index = 99;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto r = co_await (q.get() || ferry::sleep(5ms));
    index = r.index();
    co_await q.put(1);
    auto r2 = co_await (q.put(2) || ferry::sleep(5ms));  // full: the put loses
    EXPECT_EQ(r2.index(), 1u);
  });
  io.run();
  EXPECT_EQ(index, 1u);
  EXPECT_EQ(q.getters_waiting(), 0u);
  EXPECT_EQ(q.putters_waiting(), 0u);
  EXPECT_EQ(q.try_get(), std::optional<int>(1));
  EXPECT_FALSE(q.try_get().has_value());  // 2 was never enqueued
}

TEST(Queue, CloseWakesWaitingGettersWithQueueClosed) {
  asio::io_context io;
  ferry::queue<int> q(2);
  int closed_seen = 0;
  std::vector<ferry::test::spawned> coros;
  for (int i = 0; i < 3; ++i) {
    coros.push_back(ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
      try {
        co_await q.get();
      } catch (const ferry::queue_closed&) {
        ++closed_seen;
      }
    }));
  }
  io.poll();
  EXPECT_EQ(q.getters_waiting(), 3u);
  q.close();
  q.close();  // idempotent
  io.run();
  EXPECT_EQ(closed_seen, 3);
  EXPECT_TRUE(q.closed());
}

TEST(Queue, CloseDeliversRemainingItemsThenThrows) {
  asio::io_context io;
  ferry::queue<int> q(3);
  EXPECT_TRUE(q.try_put(1));
  EXPECT_TRUE(q.try_put(2));
  q.close();
  std::vector<int> got;
  bool closed_seen = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    try {
      for (;;) got.push_back(co_await q.get());
    } catch (const ferry::queue_closed& e) {
      closed_seen = std::string(e.what()).find("closed") != std::string::npos;
    }
  });
  io.run();
  EXPECT_EQ(got, (std::vector<int>{1, 2}));
  EXPECT_TRUE(closed_seen);
  EXPECT_FALSE(q.try_get().has_value());  // try_get never throws
}

TEST(Queue, PutAfterCloseThrowsAndLeavesTheValue) {
  asio::io_context io;
  ferry::queue<std::unique_ptr<int>> q(3);
  q.close();
  auto value = std::make_unique<int>(1);
  EXPECT_THROW(q.try_put(std::move(value)), ferry::queue_closed);
  EXPECT_NE(value, nullptr);
  std::exception_ptr error;
  asio::co_spawn(
      io,
      [&]() -> ferry::task<void> { co_await q.put(std::make_unique<int>(2)); },
      [&](std::exception_ptr e) { error = e; });
  io.run();
  EXPECT_TRUE(is_queue_closed(error));
  EXPECT_EQ(q.size(), 0u);
}

TEST(Queue, CloseFailsBlockedPuttersWithoutEnqueuingTheirItems) {
  asio::io_context io;
  ferry::queue<int> q(1);
  EXPECT_TRUE(q.try_put(1));
  std::exception_ptr error;
  q.async_put(2, asio::bind_executor(io, [&](std::exception_ptr e) { error = e; }));
  EXPECT_EQ(q.putters_waiting(), 1u);
  q.close();
  io.run();
  EXPECT_TRUE(is_queue_closed(error));
  EXPECT_EQ(q.try_get(), std::optional<int>(1));
  EXPECT_FALSE(q.try_get().has_value());
  EXPECT_EQ(q.unfinished(), 1u);
}

TEST(Queue, JoinWaitsUntilEveryItemIsDone) {
  asio::io_context io;
  ferry::queue<int> q(4);
  bool joined = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    co_await q.join();  // nothing unfinished: completes at once
    co_await q.put(1);
    co_await q.put(2);
    co_await q.join();
    joined = true;
  });
  io.poll();
  EXPECT_FALSE(joined);
  EXPECT_EQ(q.unfinished(), 2u);
  (void)q.try_get();
  (void)q.try_get();
  q.task_done();
  io.poll();
  EXPECT_FALSE(joined);  // one item still unfinished
  q.task_done();
  io.run();
  EXPECT_TRUE(joined);
}

TEST(Queue, TaskDoneTooManyTimesThrows) {
  ferry::queue<int> q(2);
  EXPECT_TRUE(q.try_put(1));
  q.task_done();
  try {
    q.task_done();
    ADD_FAILURE() << "no exception";
  } catch (const std::logic_error& e) {
    EXPECT_STREQ(e.what(), "task_done() called too many times");
  }
}

TEST(Queue, CancelledJoinIsRemoved) {
  asio::io_context io;
  ferry::queue<int> q(2);
  EXPECT_TRUE(q.try_put(1));
  asio::cancellation_signal signal;
  std::exception_ptr error;
  q.async_join(asio::bind_cancellation_slot(
      signal.slot(), asio::bind_executor(io, [&](std::exception_ptr e) { error = e; })));
  signal.emit(asio::cancellation_type::terminal);
  io.run();
  EXPECT_TRUE(is_operation_aborted(error));
  q.task_done();  // no joiner left to wake; nothing breaks
}

TEST(Queue, DestructionFailsRemainingWaiters) {
  asio::io_context io;
  std::exception_ptr get_error, put_error, join_error;
  {
    ferry::queue<int> empty(1);
    empty.async_get(
        asio::bind_executor(io, [&](std::exception_ptr e, std::optional<int>) { get_error = e; }));
    ferry::queue<std::string> full(1);
    EXPECT_TRUE(full.try_put("a"));
    full.async_put(std::string(100, 'b'),
                   asio::bind_executor(io, [&](std::exception_ptr e) { put_error = e; }));
    full.async_join(asio::bind_executor(io, [&](std::exception_ptr e) { join_error = e; }));
  }
  io.run();
  EXPECT_TRUE(is_operation_aborted(get_error));
  EXPECT_TRUE(is_operation_aborted(put_error));
  EXPECT_TRUE(is_operation_aborted(join_error));
}

TEST(Queue, ProducerOnThePoolConsumerOnTheLoop) {
  ferry::runtime rt({.io_threads = 1, .cpu_threads = 2});
  ferry::queue<int> q(2);
  const int n = 200;
  auto coro = ferry::test::spawn_checked(rt.cpu().get_executor(), [&]() -> ferry::task<void> {
    for (int i = 0; i < n; ++i) co_await q.put(i);
    q.close();
  });
  std::vector<int> got = rt.run([&]() -> ferry::task<std::vector<int>> {
    std::vector<int> items;
    try {
      for (;;) items.push_back(co_await q.get());
    } catch (const ferry::queue_closed&) {
    }
    co_return items;
  }());
  // The consumer may see the close before the producer's end has been reported.
  ASSERT_TRUE(ferry::test::wait_until([&] { return coro.ended(); }));
  ASSERT_EQ(got.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) EXPECT_EQ(got[i], i);
}
