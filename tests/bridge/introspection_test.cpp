// tests/bridge/introspection_test.cpp — the stall report's stack (runtime_options::
// slow_callback_threshold) and the task tree (runtime::dump_tasks).
//
// A stall is produced by a handler that blocks until the watchdog has reported it (never for a
// fixed time); the dump is taken once the children are in the state it should show.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <chrono>
#include <ferry/ferry.hpp>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ferry_test.hpp"

using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

struct report_log {
  std::mutex mutex;
  std::vector<ferry::slow_callback_report> reports;
  std::atomic<bool> ongoing_seen{false};

  std::function<void(const ferry::slow_callback_report&)> sink() {
    return [this](const ferry::slow_callback_report& r) {
      std::lock_guard lock(mutex);
      reports.push_back(r);
      if (r.ongoing) ongoing_seen.store(true);
    };
  }
  std::vector<ferry::slow_callback_report> copy() {
    std::lock_guard lock(mutex);
    return reports;
  }
  bool has_final() {
    for (const auto& r : copy())
      if (!r.ongoing) return true;
    return false;
  }
};

// The culprit: blocks the thread it runs on until the watchdog has reported it. Internal
// linkage, so only the debug info (-g) can name it.
[[gnu::noinline]] void ferry_stall_culprit_spins_until_reported(const std::atomic<bool>& reported) {
  while (!reported.load()) {
    asm volatile("" ::: "memory");
  }
}

}  // namespace

TEST(StallReport, NamesTheFunctionThatBlocksTheLoop) {
  report_log log;
  std::thread::id io_thread;
  {
    ferry::runtime rt(
        ferry::runtime_options{.slow_callback_threshold = 50ms, .on_slow_callback = log.sink()});
    rt.run([&]() -> ferry::task<void> {
      io_thread = std::this_thread::get_id();
      ferry_stall_culprit_spins_until_reported(log.ongoing_seen);
      co_await ferry::sleep(1ms);
    }());
    ASSERT_TRUE(ferry::test::wait_until([&] { return log.has_final(); }));
    const auto recent = rt.recent_slow_callbacks();
    ASSERT_EQ(recent.size(), 1u);
    EXPECT_FALSE(recent[0].ongoing);
    EXPECT_NE(recent[0].where.find("ferry_stall_culprit_spins_until_reported"), std::string::npos);
  }
  const auto reports = log.copy();
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0].thread, io_thread);
  EXPECT_NE(reports[0].where.find("ferry_stall_culprit_spins_until_reported"), std::string::npos)
      << reports[0].where;
  EXPECT_EQ(reports[0].where.rfind("#0 ", 0), 0u) << reports[0].where;
  EXPECT_EQ(reports[1].where, reports[0].where);
}

TEST(StallReport, WithSeveralIoThreadsNamesTheOneThatIsStuck) {
  report_log log;
  std::atomic<bool> culprit_started{false};
  std::thread::id culprit_thread;
  {
    ferry::runtime rt(ferry::runtime_options{
        .io_threads = 3, .slow_callback_threshold = 50ms, .on_slow_callback = log.sink()});
    asio::post(rt.get_executor(), [&] {
      culprit_thread = std::this_thread::get_id();
      culprit_started.store(true);
      ferry_stall_culprit_spins_until_reported(log.ongoing_seen);
    });
    ASSERT_TRUE(ferry::test::wait_until([&] { return culprit_started.load(); }));
    // The other threads keep running the loop while one is stuck.
    rt.run([]() -> ferry::task<void> {
      for (int i = 0; i < 20; ++i) co_await ferry::sleep(1ms);
    }());
    ASSERT_TRUE(ferry::test::wait_until([&] { return log.has_final(); }));
  }
  const auto reports = log.copy();
  ASSERT_EQ(reports.size(), 2u);  // the idle threads are not reported
  for (const auto& r : reports) EXPECT_EQ(r.thread, culprit_thread);
  EXPECT_NE(reports[0].where.find("ferry_stall_culprit_spins_until_reported"), std::string::npos)
      << reports[0].where;
}

TEST(StallReport, DefaultReporterPrintsTheStack) {
  std::atomic<bool> done{false};
  testing::internal::CaptureStderr();
  {
    ferry::runtime rt(ferry::runtime_options{.slow_callback_threshold = 40ms});
    rt.run([&rt, &done]() -> ferry::task<void> {
      // Blocks until the watchdog has counted the stall, i.e. written the ongoing report.
      std::atomic<bool> counted{false};
      std::thread watcher([&] {
        ferry::test::wait_until([&] { return rt.stats().loop.slow_callbacks > 0; });
        counted.store(true);
      });
      ferry_stall_culprit_spins_until_reported(counted);
      watcher.join();
      co_await ferry::sleep(1ms);
      done = true;
    }());
    ASSERT_TRUE(done.load());
    ASSERT_TRUE(ferry::test::wait_until([&] { return rt.stats().loop.longest_stall > 0ns; }));
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("has not returned to the loop for"), std::string::npos) << err;
  EXPECT_NE(err.find(", stack:\n  #0 "), std::string::npos) << err;
  EXPECT_NE(err.find("ferry_stall_culprit_spins_until_reported"), std::string::npos) << err;
}
