// tests/io/condition_stress_test.cpp — no lost notification, exactly-once consumption and the
// reacquire-on-cancel contract of ferry::condition, across io threads and the cpu_pool.
//
// Producers push numbered items into a plain vector guarded by the condition's mutex and call
// notify_one once per item. Consumers take items under the mutex:
//  - steady consumers (io strands and the cpu_pool's plain executor) wait with a predicate and
//    never give up, so they depend on every notification reaching a live waiter;
//  - retiring consumers (io strands and cpu strands) wait with a random cancellation (`||` with a
//    short timer, or a cancellation_signal with a random type after random hops); after a random
//    number of cancelled waits, the next one that finds no item makes them leave for good.
// A notification lost to a cancelled waiter would strand an item with only steady consumers
// waiting: the test would hang (caught by the 60 s hang guard).
// After every wait, returned or thrown, the consumer must hold the mutex again. At the end every
// item was consumed exactly once and the condition and its mutex are idle.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <ferry/ferry.hpp>
#include <ferry/io/condition.hpp>
#include <ferry/io/mutex.hpp>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ferry_test.hpp"
#include "stress_counts.hpp"

using namespace asio::experimental::awaitable_operators;

namespace {

struct shared_state {
  explicit shared_state(int total) : total(total), taken(static_cast<std::size_t>(total), 0) {}
  ferry::condition cv;
  const int total;
  std::vector<int> items;  // guarded by cv.mutex()
  std::vector<int> taken;  // per item, how many times it was consumed; guarded
  int consumed = 0;        // guarded
  std::atomic<int> not_owned_after_wait{0};
  std::atomic<int> cancelled{0};
  std::atomic<int> retired{0};
  std::atomic<int> unexpected{0};
  std::atomic<int> finished{0};

  bool all_consumed() const { return consumed == total; }

  // Under the mutex, with an item available.
  void take_one() {
    const int id = items.back();
    items.pop_back();
    ++taken[static_cast<std::size_t>(id)];
    if (++consumed == total) cv.notify_all();  // release the steady consumers still waiting
  }
};

// g++ 12 at -O1 inlines Asio's coroutine frame allocation (aligned_alloc) into these coroutines
// and then cannot match it with the frame's sized operator delete (which frees it correctly).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

ferry::task<void> producer(shared_state& s, int first, int count, unsigned seed) {
  std::mt19937 rng(seed);
  auto ex = co_await asio::this_coro::executor;
  for (int id = first; id < first + count; ++id) {
    {
      auto lock = co_await s.cv.lock();
      s.items.push_back(id);
      s.cv.notify_one();
    }
    if (rng() % 4 == 0) co_await asio::post(ex, asio::use_awaitable);
  }
}

ferry::task<void> steady_consumer(shared_state& s) {
  auto lock = co_await s.cv.lock();
  for (;;) {
    co_await s.cv.wait(lock, [&] { return !s.items.empty() || s.all_consumed(); });
    if (!lock.owns_lock()) ++s.not_owned_after_wait;
    if (s.items.empty()) co_return;  // everything was consumed
    s.take_one();
    if (s.consumed % 3 == 0) {  // let the others in now and then
      lock.unlock();
      lock = co_await s.cv.lock();
    }
  }
}

// Runs on a strand: cancellation is emitted in its execution context.
ferry::task<void> retiring_consumer(shared_state& s, unsigned seed) {
  std::mt19937 rng(seed);
  auto ex = co_await asio::this_coro::executor;
  int budget = static_cast<int>(10 + rng() % 300);  // cancellations before it may retire
  auto lock = co_await s.cv.lock();
  for (;;) {
    bool was_cancelled = false;
    if (s.items.empty() && !s.all_consumed()) {
      if (rng() % 2 == 0) {
        const auto delay = std::chrono::microseconds(rng() % 100);
        auto r = co_await (s.cv.wait(lock) || ferry::sleep(delay));
        was_cancelled = r.index() == 1;
      } else {
        auto signal = std::make_shared<asio::cancellation_signal>();
        ferry::test::emit_after(ex, signal, rng() % 6, ferry::test::random_cancellation_type(rng));
        auto [e] = co_await s.cv.async_wait(
            lock,
            asio::bind_cancellation_slot(signal->slot(), asio::as_tuple(asio::use_awaitable)));
        was_cancelled = e != nullptr;
      }
      if (!lock.owns_lock()) {
        ++s.not_owned_after_wait;
        co_return;
      }
      if (was_cancelled) {
        ++s.cancelled;
        --budget;
      }
    }
    if (!s.items.empty()) {
      s.take_one();
    } else if (s.all_consumed() || (was_cancelled && budget <= 0)) {
      if (!s.all_consumed()) ++s.retired;
      co_return;
    }
  }
}

#pragma GCC diagnostic pop

}  // namespace

TEST(ConditionStress, NoLostNotificationUnderRandomCancellation) {
  constexpr int kProducers = 4;
  constexpr int kItemsPerProducer = ferry::test::counts::condition_items;
  constexpr int kTotal = kProducers * kItemsPerProducer;
  for (std::size_t io_threads : {3u, 1u}) {
    SCOPED_TRACE("io_threads=" + std::to_string(io_threads));
    shared_state s(kTotal);
    int spawned = 0;
    {
      ferry::runtime rt({.io_threads = io_threads, .cpu_threads = 2});
      auto done = [&s](std::exception_ptr e) {
        if (e) ++s.unexpected;
        ++s.finished;
      };
      auto io_strand = [&] { return asio::make_strand(rt.io_context()); };
      auto cpu_strand = [&] { return asio::make_strand(rt.cpu().get_executor()); };
      unsigned seed = 1;
      for (int i = 0; i < 2; ++i, ++spawned) {
        asio::co_spawn(io_strand(), steady_consumer(s), done);
      }
      for (int i = 0; i < 2; ++i, ++spawned) {
        asio::co_spawn(rt.cpu().get_executor(), steady_consumer(s), done);
      }
      for (int i = 0; i < 4; ++i, ++spawned) {
        asio::co_spawn(io_strand(), retiring_consumer(s, seed++), done);
      }
      for (int i = 0; i < 4; ++i, ++spawned) {
        asio::co_spawn(cpu_strand(), retiring_consumer(s, seed++), done);
      }
      for (int p = 0; p < kProducers; ++p, ++spawned) {
        const int first = p * kItemsPerProducer;
        if (p % 2 == 0) {
          asio::co_spawn(io_strand(), producer(s, first, kItemsPerProducer, seed++), done);
        } else {
          asio::co_spawn(cpu_strand(), producer(s, first, kItemsPerProducer, seed++), done);
        }
      }
      ASSERT_TRUE(ferry::test::wait_until([&] { return s.finished.load() == spawned; }))
          << "a coroutine never finished: a notification was lost";
    }
    EXPECT_EQ(s.unexpected.load(), 0);
    EXPECT_EQ(s.not_owned_after_wait.load(), 0);
    EXPECT_EQ(s.consumed, kTotal);
    EXPECT_TRUE(s.items.empty());
    int wrong = 0;
    for (int n : s.taken) wrong += n != 1;
    EXPECT_EQ(wrong, 0) << "items not consumed exactly once";
    EXPECT_EQ(s.cv.waiting(), 0u);
    EXPECT_FALSE(s.cv.mutex().locked());
    EXPECT_EQ(s.cv.mutex().waiting(), 0u);
    const std::string suffix = "_io" + std::to_string(io_threads);
    RecordProperty("cancelled" + suffix, std::to_string(s.cancelled.load()));
    RecordProperty("retired" + suffix, std::to_string(s.retired.load()));
  }
}
