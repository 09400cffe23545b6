// tests/bridge/try_offload_test.cpp — try_offload: admitted like offload, or refused at once.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <ferry/ferry.hpp>
#include <memory>
#include <thread>

#include "ferry_test.hpp"

using ferry::test::gate;

namespace {

bool is_rejected(const std::exception_ptr& e) {
  try {
    if (e) std::rethrow_exception(e);
  } catch (const ferry::offload_rejected&) {
    return true;
  } catch (...) {
  }
  return false;
}

// Takes pool's only admission slot until `g` opens; returns once the function runs.
void hold_the_slot(ferry::cpu_pool& pool, asio::io_context& io, gate& g, int& result) {
  std::atomic<bool> started{false};
  ferry::offload(
      pool,
      [&g, &started] {
        started = true;
        g.wait();
        return 1;
      },
      asio::bind_executor(io, [&result](std::exception_ptr e, int v) { result = e ? -1 : v; }));
  ASSERT_TRUE(ferry::test::wait_until([&] { return started.load(); }));
}

// A test that steps `io` by hand (run_one, poll) ends with this: run() returns only once every
// pool thread that posted to `io` has dropped its hold on it (docs/design.md, "Completion"), so
// `io` may then be destroyed.
void drain(asio::io_context& io) {
  io.restart();
  io.run();
}

}  // namespace

FERRY_CO_TEST(TryOffload, RunsTheFunctionWhenThePoolHasNoBound) {
  const int v = co_await ferry::try_offload([] { return 42; });
  EXPECT_EQ(v, 42);
}

TEST(TryOffload, RefusesAtOnceWhenEverySlotIsTakenAndNeverRunsTheFunction) {
  ferry::cpu_pool pool(2, /*max_in_flight=*/1);
  asio::io_context io;
  gate g;
  int held = 0;
  hold_the_slot(pool, io, g, held);

  std::atomic<bool> ran{false};
  auto owned = std::make_shared<int>(7);
  std::weak_ptr<int> watch = owned;
  std::exception_ptr error;
  int completions = 0;
  ferry::try_offload(
      pool,
      [&ran, owned = std::move(owned)] {
        ran = true;
        return *owned;
      },
      asio::bind_executor(io, [&](std::exception_ptr e, int) {
        error = e;
        ++completions;
      }));
  EXPECT_EQ(completions, 0);  // never inline in the initiating function
  io.run_one();
  EXPECT_EQ(completions, 1);
  EXPECT_TRUE(is_rejected(error));
  EXPECT_FALSE(ran.load());
  EXPECT_TRUE(watch.expired());  // the refused function was destroyed with the operation
  EXPECT_EQ(pool.stats().rejected, 1u);
  EXPECT_EQ(pool.stats().waiting, 0u);  // refused, not queued

  g.open();
  io.run_one();  // the holder's completion
  EXPECT_EQ(held, 1);
  // The holder's worker gives the slot back once the function has returned there, which may be
  // just after the completion ran here: wait for that state.
  ASSERT_TRUE(ferry::test::wait_until([&] { return pool.stats().in_flight == 0; }));
  io.restart();
  int value = 0;
  ferry::try_offload(
      pool, [] { return 5; }, ferry::test::value_into(io, value));
  io.run_one();
  EXPECT_EQ(value, 5);  // a free slot admits it
  drain(io);
}

TEST(TryOffload, RefusesWhileOthersWaitForASlotSoTheQueueKeepsItsOrder) {
  ferry::cpu_pool pool(2, /*max_in_flight=*/1);
  asio::io_context io;
  gate g;
  int held = 0;
  hold_the_slot(pool, io, g, held);
  int waiter = 0;
  ferry::offload(
      pool, [] { return 2; }, ferry::test::value_into(io, waiter));
  ASSERT_EQ(pool.stats().waiting, 1u);
  std::exception_ptr error;
  ferry::try_offload(
      pool, [] { return 3; }, ferry::test::error_into(io, error));
  io.run_one();
  EXPECT_TRUE(is_rejected(error));
  g.open();
  ASSERT_TRUE(ferry::test::wait_until([&] {
    io.poll();
    return held == 1 && waiter == 2;
  }));
  drain(io);
}

TEST(TryOffload, ACancellationAfterTheRefusalChangesNothingAndTheHandlerRunsOnce) {
  ferry::cpu_pool pool(1, /*max_in_flight=*/1);
  asio::io_context io;
  gate g;
  int held = 0;
  hold_the_slot(pool, io, g, held);
  asio::cancellation_signal signal;
  int completions = 0;
  std::exception_ptr error;
  ferry::try_offload(
      pool,
      [] { return 3; },
      asio::bind_cancellation_slot(signal.slot(),
                                   asio::bind_executor(io, [&](std::exception_ptr e, int) {
                                     error = e;
                                     ++completions;
                                   })));
  signal.emit(asio::cancellation_type::terminal);  // before the refusal's completion has run
  io.run_one();
  EXPECT_EQ(completions, 1);
  EXPECT_TRUE(is_rejected(error));
  g.open();
  ASSERT_TRUE(ferry::test::wait_until([&] {
    io.poll();
    return held == 1;
  }));
  EXPECT_EQ(completions, 1);
  drain(io);
}

TEST(TryOffload, ARefusedOffloadFromACoroutineResumesOnItsExecutorWithOffloadRejected) {
  ferry::runtime rt({.cpu_threads = 1, .max_offloads_in_flight = 1});
  gate g;
  rt.run([&]() -> ferry::task<void> {
    ferry::event holding;  // set from the pool thread once the holder runs
    ferry::event held_done;
    asio::co_spawn(co_await asio::this_coro::executor,
                   ferry::offload([&] {
                     holding.set();
                     g.wait();
                   }),
                   [&](std::exception_ptr) { held_done.set(); });
    co_await holding.wait();
    bool refused = false;
    try {
      co_await ferry::try_offload([] { return 1; });
    } catch (const ferry::offload_rejected&) {
      refused = true;
    }
    EXPECT_TRUE(refused);
    EXPECT_TRUE(rt.running_in_this_thread());
    g.open();
    co_await held_done.wait();
  }());
  EXPECT_EQ(rt.stats().cpu.rejected, 1u);
}
