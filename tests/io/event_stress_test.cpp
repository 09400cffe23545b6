// tests/io/event_stress_test.cpp — ferry::event (and ferry::barrier) under random cancellation,
// with coroutines on io threads and on the cpu_pool at once.
//
// Rounds: waiters and a driver meet at a `start` barrier; the waiters then wait on the event
// (plainly, raced against a short timer with `||`, or with a cancellation_signal of a random type
// emitted after random hops) while the driver sets it after a random delay; everybody meets at an
// `end` barrier, and the driver clears the event for the next round. Invariants: every wait
// completes exactly once, either woken or cancelled; nobody is woken before the round's `set`;
// nobody hangs (a lost wake-up would block the `end` barrier: caught by the 60 s hang guard);
// every barrier phase has exactly one leader; the event has no waiter left.
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
#include <ferry/io/barrier.hpp>
#include <ferry/io/event.hpp>
#include <memory>
#include <random>
#include <string>

#include "ferry_test.hpp"
#include "stress_counts.hpp"

using namespace asio::experimental::awaitable_operators;

namespace {

struct shared_state {
  explicit shared_state(std::size_t parties) : start(parties), end(parties) {}
  ferry::event ev;
  ferry::barrier start;
  ferry::barrier end;
  std::atomic<int> set_round{-1};  // the round whose `set` has been called last
  std::atomic<long> woken{0};
  std::atomic<long> cancelled{0};
  std::atomic<long> early{0};
  std::atomic<long> leaders{0};
  std::atomic<int> unexpected{0};
  std::atomic<int> finished{0};

  ferry::task<void> meet(ferry::barrier& b) {
    const std::size_t index = co_await b.arrive_and_wait();
    if (index == b.parties() - 1) ++leaders;
  }
};

// g++ 12 at -O1 inlines Asio's coroutine frame allocation (aligned_alloc) into these coroutines
// and then cannot match it with the frame's sized operator delete (which frees it correctly).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

// `cancellable`: the coroutine runs on a strand, so cancellation may be emitted to it.
ferry::task<void> waiter(shared_state& s, int rounds, unsigned seed, bool cancellable) {
  std::mt19937 rng(seed);
  auto ex = co_await asio::this_coro::executor;
  for (int r = 0; r < rounds; ++r) {
    co_await s.meet(s.start);
    bool woke = true;
    switch (cancellable ? rng() % 3 : 0) {
      case 0:
        co_await s.ev.wait();
        break;
      case 1: {
        const auto delay = std::chrono::microseconds(rng() % 100);
        auto result = co_await (s.ev.wait() || ferry::sleep(delay));
        woke = result.index() == 0;
        break;
      }
      default: {
        auto signal = std::make_shared<asio::cancellation_signal>();
        ferry::test::emit_after(ex, signal, rng() % 6, ferry::test::random_cancellation_type(rng));
        auto [e] = co_await s.ev.async_wait(
            asio::bind_cancellation_slot(signal->slot(), asio::as_tuple(asio::use_awaitable)));
        woke = e == nullptr;
        break;
      }
    }
    if (woke) {
      ++s.woken;
      if (s.set_round.load() < r) ++s.early;
    } else {
      ++s.cancelled;
    }
    co_await s.meet(s.end);
  }
}

ferry::task<void> driver(shared_state& s, int rounds, unsigned seed) {
  std::mt19937 rng(seed);
  auto ex = co_await asio::this_coro::executor;
  for (int r = 0; r < rounds; ++r) {
    co_await s.meet(s.start);
    for (unsigned hops = rng() % 8; hops > 0; --hops) co_await asio::post(ex, asio::use_awaitable);
    if (rng() % 4 == 0) co_await ferry::sleep(std::chrono::microseconds(rng() % 100));
    s.set_round.store(r);
    s.ev.set();
    co_await s.meet(s.end);
    s.ev.clear();  // every waiter of round r is past its wait
  }
}

#pragma GCC diagnostic pop

}  // namespace

TEST(EventStress, EveryWaitEndsOnceAndNoWakeUpIsLost) {
  constexpr int kRounds = ferry::test::counts::event_rounds;
  constexpr int kIoWaiters = 4;
  constexpr int kCpuStrandWaiters = 2;
  constexpr int kCpuPlainWaiters = 2;
  constexpr int kWaiters = kIoWaiters + kCpuStrandWaiters + kCpuPlainWaiters;
  for (std::size_t io_threads : {3u, 1u}) {
    SCOPED_TRACE("io_threads=" + std::to_string(io_threads));
    shared_state s(kWaiters + 1);
    {
      ferry::runtime rt({.io_threads = io_threads, .cpu_threads = 2});
      auto done = [&s](std::exception_ptr e) {
        if (e) ++s.unexpected;
        ++s.finished;
      };
      unsigned seed = 1;
      for (int i = 0; i < kIoWaiters; ++i) {
        asio::co_spawn(asio::make_strand(rt.io_context()), waiter(s, kRounds, seed++, true), done);
      }
      for (int i = 0; i < kCpuStrandWaiters; ++i) {
        asio::co_spawn(
            asio::make_strand(rt.cpu().get_executor()), waiter(s, kRounds, seed++, true), done);
      }
      for (int i = 0; i < kCpuPlainWaiters; ++i) {
        asio::co_spawn(rt.cpu().get_executor(), waiter(s, kRounds, seed++, false), done);
      }
      asio::co_spawn(asio::make_strand(rt.io_context()), driver(s, kRounds, seed++), done);
      ASSERT_TRUE(ferry::test::wait_until([&] { return s.finished.load() == kWaiters + 1; }))
          << "a coroutine never finished: a wake-up was lost";
    }
    EXPECT_EQ(s.unexpected.load(), 0);
    EXPECT_EQ(s.woken.load() + s.cancelled.load(), static_cast<long>(kWaiters) * kRounds);
    EXPECT_GE(s.woken.load(), static_cast<long>(kCpuPlainWaiters) * kRounds);
    EXPECT_EQ(s.early.load(), 0) << "woken before the round's set";
    EXPECT_EQ(s.leaders.load(), 2L * kRounds);
    EXPECT_EQ(s.start.phase(), static_cast<std::uint64_t>(kRounds));
    EXPECT_EQ(s.end.phase(), static_cast<std::uint64_t>(kRounds));
    EXPECT_EQ(s.ev.waiting(), 0u);
    const std::string suffix = "_io" + std::to_string(io_threads);
    RecordProperty("woken" + suffix, std::to_string(s.woken.load()));
    RecordProperty("cancelled" + suffix, std::to_string(s.cancelled.load()));
  }
}
