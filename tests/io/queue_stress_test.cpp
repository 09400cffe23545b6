// tests/io/queue_stress_test.cpp — ferry::queue under contention: exactly-once delivery.
//
// Producers and consumers run at once on strands of a 3-thread io_context, on strands of the
// cpu_pool and directly on the cpu_pool executor. Each put and get is, at random, a plain
// `put`/`get`, a `try_put`/`try_get` (falling back to waiting), or an `async_put`/`async_get`
// cancelled after a random number of hops through its strand with a random cancellation type
// (so the cancellation lands before, during and after the hand-over). Coroutines directly on the
// pool executor are never cancelled: Asio requires cancellation to be emitted in the waiter's
// execution context, which a multi-threaded executor does not serialise.
//
// Invariants checked at the end: every item whose put succeeded was received exactly once; an
// item whose put failed (cancelled or closed) was never received; nothing is left in the queue;
// task_done/join balance; close() wakes every producer and consumer still waiting.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdint>
#include <ferry/ferry.hpp>
#include <ferry/io/queue.hpp>
#include <memory>
#include <random>
#include <vector>

#include "ferry_test.hpp"
#include "stress_counts.hpp"

namespace {

// Move-only, so that a double move or a lost item shows up (a null id is a defect).
struct item {
  std::unique_ptr<std::uint64_t> id;
};

enum put_outcome : int { put_pending = 0, put_ok = 1, put_aborted = 2, put_closed = 3 };

struct ledger {
  explicit ledger(std::size_t items) : put_state(items), received(items) {}
  std::vector<std::atomic<int>> put_state;
  std::vector<std::atomic<int>> received;
  std::atomic<int> bad{0};  // null ids, unexpected errors
  std::atomic<std::size_t> received_total{0};
  std::atomic<std::size_t> gets_aborted{0};
  std::atomic<int> producers_done{0};
  std::atomic<int> consumers_done{0};
};

// g++ 12 at -O1 inlines Asio's coroutine frame allocation (aligned_alloc) into these coroutines
// and then cannot match it with the frame's sized operator delete (which frees it correctly).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

ferry::task<void> producer(ferry::queue<item>& q,
                           ledger& book,
                           std::size_t first,
                           std::size_t count,
                           bool cancellable,
                           std::uint32_t seed) {
  std::mt19937 rng(seed);
  auto ex = co_await asio::this_coro::executor;
  for (std::size_t id = first; id < first + count; ++id) {
    const unsigned mode = rng() % 6;
    try {
      if (mode == 0) {
        item it{std::make_unique<std::uint64_t>(id)};
        if (!q.try_put(std::move(it))) {
          co_await q.put(std::move(it));  // refused: `it` is intact
        }
        book.put_state[id] = put_ok;
      } else if (cancellable && mode <= 2) {
        auto signal = std::make_shared<asio::cancellation_signal>();
        ferry::test::emit_after(ex, signal, rng() % 4, ferry::test::random_cancellation_type(rng));
        item it{std::make_unique<std::uint64_t>(id)};
        auto [error] = co_await q.async_put(
            std::move(it),
            asio::bind_cancellation_slot(signal->slot(), asio::as_tuple(asio::use_awaitable)));
        if (!error) {
          book.put_state[id] = put_ok;
        } else {
          try {
            std::rethrow_exception(error);
          } catch (const ferry::queue_closed&) {
            book.put_state[id] = put_closed;
            break;
          } catch (const boost::system::system_error& e) {
            if (e.code() != asio::error::operation_aborted) ++book.bad;
            book.put_state[id] = put_aborted;
          }
        }
      } else {
        item it{std::make_unique<std::uint64_t>(id)};
        co_await q.put(std::move(it));
        book.put_state[id] = put_ok;
      }
    } catch (const ferry::queue_closed&) {
      book.put_state[id] = put_closed;
      break;
    }
  }
  ++book.producers_done;
}

void record(ferry::queue<item>& q, ledger& book, const item& it) {
  if (!it.id) {
    ++book.bad;
  } else {
    ++book.received[*it.id];
    ++book.received_total;
  }
  q.task_done();
}

ferry::task<void> consumer(ferry::queue<item>& q,
                           ledger& book,
                           bool cancellable,
                           std::uint32_t seed) {
  std::mt19937 rng(seed);
  auto ex = co_await asio::this_coro::executor;
  for (;;) {
    const unsigned mode = rng() % 6;
    try {
      if (mode == 0) {
        std::optional<item> it = q.try_get();
        if (!it) it.emplace(co_await q.get());
        record(q, book, *it);
      } else if (cancellable && mode <= 2) {
        auto signal = std::make_shared<asio::cancellation_signal>();
        ferry::test::emit_after(ex, signal, rng() % 4, ferry::test::random_cancellation_type(rng));
        auto [error, it] = co_await q.async_get(
            asio::bind_cancellation_slot(signal->slot(), asio::as_tuple(asio::use_awaitable)));
        if (!error) {
          if (it) {
            record(q, book, *it);
          } else {
            ++book.bad;
          }
        } else {
          if (it) ++book.bad;  // a failed get carries no item
          try {
            std::rethrow_exception(error);
          } catch (const ferry::queue_closed&) {
            break;
          } catch (const boost::system::system_error& e) {
            if (e.code() != asio::error::operation_aborted) ++book.bad;
            ++book.gets_aborted;
          }
        }
      } else {
        item it = co_await q.get();
        record(q, book, it);
      }
    } catch (const ferry::queue_closed&) {
      break;
    }
  }
  ++book.consumers_done;
}

#pragma GCC diagnostic pop

struct scenario {
  std::size_t capacity;
  bool close_under_load;  // close while producers still put (instead of after a join)
};

void run_scenario(const scenario& s) {
  constexpr int io_producers = 3, cpu_strand_producers = 2, cpu_producers = 1;
  constexpr int io_consumers = 3, cpu_strand_consumers = 2, cpu_consumers = 1;
  constexpr int producers = io_producers + cpu_strand_producers + cpu_producers;
  constexpr int consumers = io_consumers + cpu_strand_consumers + cpu_consumers;
  constexpr std::size_t per_producer = ferry::test::counts::queue_items;
  const std::size_t total = producers * per_producer;

  ferry::runtime rt({.io_threads = 3, .cpu_threads = 2});
  ferry::queue<item> q(s.capacity);
  ledger book(total);
  std::atomic<int> failures{0};
  auto on_exit = [&](std::exception_ptr e) {
    if (e) ++failures;
  };

  std::uint32_t seed = 12345 + static_cast<std::uint32_t>(s.capacity);
  auto executor_for =
      [&](int index, int io, int cpu_strand) -> std::pair<asio::any_io_executor, bool> {
    if (index < io) return {asio::make_strand(rt.io_context()), true};
    if (index < io + cpu_strand) return {asio::make_strand(rt.cpu().get_executor()), true};
    return {rt.cpu().get_executor(), false};
  };
  for (int c = 0; c < consumers; ++c) {
    auto [ex, cancellable] = executor_for(c, io_consumers, cpu_strand_consumers);
    asio::co_spawn(ex, consumer(q, book, cancellable, ++seed), on_exit);
  }
  for (int p = 0; p < producers; ++p) {
    auto [ex, cancellable] = executor_for(p, io_producers, cpu_strand_producers);
    asio::co_spawn(
        ex, producer(q, book, p * per_producer, per_producer, cancellable, ++seed), on_exit);
  }

  if (s.close_under_load) {
    ASSERT_TRUE(ferry::test::wait_until([&] { return book.received_total.load() >= total / 8; }));
    q.close();
    ASSERT_TRUE(ferry::test::wait_until([&] { return book.producers_done.load() == producers; }));
  } else {
    ASSERT_TRUE(ferry::test::wait_until([&] { return book.producers_done.load() == producers; }));
    std::atomic<bool> joined{false};
    asio::co_spawn(
        asio::make_strand(rt.io_context()),
        [&]() -> ferry::task<void> {
          co_await q.join();
          joined = true;
        },
        on_exit);
    ASSERT_TRUE(ferry::test::wait_until([&] { return joined.load(); }));
    EXPECT_EQ(q.unfinished(), 0u);
    EXPECT_EQ(q.size(), 0u);
    q.close();  // every consumer waits in get: close must wake them all
  }
  ASSERT_TRUE(ferry::test::wait_until([&] { return book.consumers_done.load() == consumers; }));

  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(book.bad.load(), 0);
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.getters_waiting(), 0u);
  EXPECT_EQ(q.putters_waiting(), 0u);
  EXPECT_EQ(q.unfinished(), 0u);
  std::size_t ok = 0, aborted = 0, closed = 0, lost = 0, twice = 0, ghost = 0;
  for (std::size_t id = 0; id < total; ++id) {
    const int state = book.put_state[id].load();
    const int got = book.received[id].load();
    if (state == put_ok) {
      ++ok;
      if (got == 0) ++lost;
      if (got > 1) ++twice;
    } else {
      if (state == put_aborted) ++aborted;
      if (state == put_closed) ++closed;
      if (got != 0) ++ghost;
    }
  }
  SCOPED_TRACE(testing::Message() << "puts ok " << ok << ", puts aborted " << aborted
                                  << ", puts closed " << closed << ", gets aborted "
                                  << book.gets_aborted.load());
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(twice, 0u);
  EXPECT_EQ(ghost, 0u);
  EXPECT_EQ(book.received_total.load(), ok);
  EXPECT_GT(ok, 0u);
  if (s.close_under_load) {
    EXPECT_GT(closed, 0u);  // at least one put saw the close
  } else {
    EXPECT_EQ(ok + aborted, total);  // every producer ran to the end
  }
}

}  // namespace

TEST(QueueStress, ExactlyOnceWithRandomCancellationCapacity1) { run_scenario({1, false}); }

TEST(QueueStress, ExactlyOnceWithRandomCancellationCapacity8) { run_scenario({8, false}); }

TEST(QueueStress, CloseUnderLoadWakesEveryone) { run_scenario({4, true}); }
