// tests/bridge/run_in_executor_test.cpp — ferry::run_in_executor on any Asio executor.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <ferry/ferry.hpp>
#include <memory>
#include <stdexcept>
#include <thread>

#include "ferry_test.hpp"

namespace {

using ferry::test::is_operation_aborted;

}  // namespace

TEST(RunInExecutor, RunsOnTheExecutorAndResumesOnTheIoThread) {
  asio::thread_pool legacy(2);
  const bool ok = ferry::run([&]() -> ferry::task<bool> {
    const auto io_thread = std::this_thread::get_id();
    const bool on_legacy = co_await ferry::run_in_executor(
        legacy.get_executor(), [&] { return legacy.get_executor().running_in_this_thread(); });
    EXPECT_TRUE(on_legacy);
    co_return std::this_thread::get_id() == io_thread;
  }());
  EXPECT_TRUE(ok);
}

TEST(RunInExecutor, OnAStrandAndOnFerryPools) {
  asio::thread_pool legacy(2);
  ferry::cpu_pool cpu(2);
  ferry::blocking_pool blocking(2);
  const auto checks = ferry::run([&]() -> ferry::task<std::tuple<bool, bool, bool>> {
    auto strand = asio::make_strand(legacy);
    const bool s =
        co_await ferry::run_in_executor(strand, [&] { return strand.running_in_this_thread(); });
    const bool c = co_await ferry::run_in_executor(cpu.get_executor(),
                                                   [&] { return cpu.running_in_this_thread(); });
    const bool b = co_await ferry::run_in_executor(
        blocking.get_executor(), [&] { return blocking.running_in_this_thread(); });
    co_return std::tuple{s, c, b};
  }());
  EXPECT_TRUE(std::get<0>(checks));
  EXPECT_TRUE(std::get<1>(checks));
  EXPECT_TRUE(std::get<2>(checks));
}

TEST(RunInExecutor, ExceptionArrivesIntact) {
  asio::thread_pool legacy(1);
  const auto what = ferry::run([&]() -> ferry::task<std::string> {
    try {
      co_await ferry::run_in_executor(legacy.get_executor(),
                                      []() -> int { throw std::domain_error("bad row"); });
    } catch (const std::domain_error& e) {
      co_return e.what();
    }
    co_return "not thrown";
  }());
  EXPECT_EQ(what, "bad row");
}

TEST(RunInExecutorCancel, BeforeStartNeverRuns) {
  asio::io_context target;  // not run yet: the function waits in its queue
  asio::io_context io;
  std::atomic<bool> ran{false};
  ferry::test::cancellable_completion done;
  ferry::run_in_executor(
      target.get_executor(), ferry::test::mark_and_return(ran, 1), done.handler(io));
  done.cancel();
  io.run();
  EXPECT_EQ(done.calls, 1);
  EXPECT_TRUE(is_operation_aborted(done.error));
  target.run();  // the dropped function finds the operation cancelled
  EXPECT_FALSE(ran.load());
}

TEST(RunInExecutor, TargetShutDownBeforeRunningCompletesWithOperationAborted) {
  asio::io_context io;
  std::exception_ptr error;
  int calls = 0;
  {
    auto target = std::make_unique<asio::io_context>();
    ferry::run_in_executor(
        target->get_executor(),
        [] { return 1; },
        asio::bind_executor(io, [&](std::exception_ptr e, int) {
          ++calls;
          error = e;
        }));
  }  // destroyed without ever running the function
  io.run();
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(is_operation_aborted(error));
}
