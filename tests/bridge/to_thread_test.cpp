// tests/bridge/to_thread_test.cpp — ferry::to_thread: blocking calls on the blocking pool.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <ferry/ferry.hpp>
#include <stdexcept>
#include <thread>

#include "ferry_test.hpp"

namespace {

using ferry::test::is_operation_aborted;

}  // namespace

TEST(ToThread, RunsOnTheBlockingPoolAndResumesOnTheIoThread) {
  ferry::runtime rt({.cpu_threads = 1});
  const bool ok = rt.run([&]() -> ferry::task<bool> {
    const auto io_thread = std::this_thread::get_id();
    const auto where = co_await ferry::to_thread([&] {
      return std::pair{rt.blocking().running_in_this_thread(), ferry::cpu_pool::current()};
    });
    EXPECT_TRUE(where.first);
    EXPECT_EQ(where.second, nullptr);  // never a work-stealing worker
    co_return std::this_thread::get_id() == io_thread;
  }());
  EXPECT_TRUE(ok);
}

TEST(ToThread, ExceptionArrivesIntact) {
  const auto what = ferry::run([]() -> ferry::task<std::string> {
    try {
      co_await ferry::to_thread([] { throw std::out_of_range("legacy call failed"); });
    } catch (const std::out_of_range& e) {
      co_return e.what();
    }
    co_return "not thrown";
  }());
  EXPECT_EQ(what, "legacy call failed");
}

// Blocking calls that wait for each other only finish if each gets its own thread.
TEST(ToThread, ConcurrentBlockingCallsEachGetAThread) {
  constexpr int kCalls = 12;
  std::atomic<int> started{0};
  ferry::runtime rt({.blocking_threads = kCalls});
  const int all_saw_all = rt.run([&]() -> ferry::task<int> {
    std::atomic<int> ok{0};
    std::atomic<int> done{0};
    for (int i = 0; i < kCalls; ++i) {
      ferry::to_thread(
          [&] {
            ++started;
            if (ferry::test::wait_until([&] { return started.load() == kCalls; })) ++ok;
          },
          asio::bind_executor(rt.get_executor(), [&](std::exception_ptr) { ++done; }));
    }
    while (done.load() != kCalls) co_await ferry::sleep(1ms);
    co_return ok.load();
  }());
  EXPECT_EQ(all_saw_all, kCalls);
}

TEST(ToThread, ExplicitPoolAndOutsideARuntime) {
  ferry::blocking_pool pool(2);
  EXPECT_TRUE(ferry::to_thread(
                  pool, [&] { return pool.running_in_this_thread(); }, asio::use_future)
                  .get());
  EXPECT_TRUE(ferry::to_thread(
                  [] { return ferry::detail::default_blocking_pool().running_in_this_thread(); },
                  asio::use_future)
                  .get());
}

TEST(ToThreadCancel, BeforeStartNeverRuns) {
  std::atomic<bool> ran{false};
  std::atomic<bool> release{false};
  {
    ferry::blocking_pool pool(1);
    asio::io_context io;
    std::atomic<bool> blocker_started{false};
    ferry::to_thread(
        pool,
        [&] {
          blocker_started = true;
          ferry::test::wait_until([&] { return release.load(); });
        },
        asio::bind_executor(io, [](std::exception_ptr) {}));
    ASSERT_TRUE(ferry::test::wait_until([&] { return blocker_started.load(); }));
    asio::cancellation_signal signal;
    std::exception_ptr error;
    ferry::to_thread(
        pool,
        [&] { ran = true; },
        asio::bind_cancellation_slot(
            signal.slot(), asio::bind_executor(io, [&](std::exception_ptr e) { error = e; })));
    signal.emit(asio::cancellation_type::terminal);
    io.run_one();  // completes at once, while the only thread is still blocked
    EXPECT_TRUE(is_operation_aborted(error));
    release = true;
    io.run();
  }
  EXPECT_FALSE(ran.load());
}

TEST(ToThreadCancel, AfterStartStopsTheToken) {
  ferry::blocking_pool pool(1);
  asio::io_context io;
  std::atomic<bool> started{false};
  asio::cancellation_signal signal;
  std::string outcome;
  ferry::to_thread(
      pool,
      [&](std::stop_token st) {
        started = true;
        ferry::test::wait_until([&] { return st.stop_requested(); });
        return std::string(st.stop_requested() ? "stopped" : "timed out");
      },
      asio::bind_cancellation_slot(
          signal.slot(), asio::bind_executor(io, [&](std::exception_ptr e, std::string s) {
            outcome = e ? "error" : s;
          })));
  ASSERT_TRUE(ferry::test::wait_until([&] { return started.load(); }));
  signal.emit(asio::cancellation_type::partial);
  io.run();
  EXPECT_EQ(outcome, "stopped");
}
