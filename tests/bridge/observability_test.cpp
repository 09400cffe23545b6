// tests/bridge/observability_test.cpp — runtime::stats(), the lag probe, the loop watchdog,
// write_prometheus, and the fast completion lane (loop_inbox) seen from outside.
//
// No timing is asserted: a stall is produced by blocking the loop for far longer than the
// threshold, and "well behaved" means handlers far shorter than it.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <ferry/ferry.hpp>
#include <mutex>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ferry_test.hpp"

namespace {

using ferry::test::report_log;

}  // namespace

// --- stats --------------------------------------------------------------------------------

TEST(Observability, StatsCountSubmittedCompletedFailedAndCancelledOffloads) {
  // The two functions that hold the pool read these until the runtime has drained them: they
  // outlive the runtime.
  std::atomic<bool> release{false};
  std::atomic<int> holding{0};
  std::vector<ferry::test::spawned> holds;  // the coroutines awaiting them
  ferry::runtime rt(ferry::runtime_options{.cpu_threads = 2});
  rt.run([&release, &holding, &holds]() -> ferry::task<void> {
    for (int i = 0; i < 5; ++i) co_await ferry::offload([i] { return i; });
    for (int i = 0; i < 3; ++i) {
      try {
        co_await ferry::offload([]() -> int { throw std::runtime_error("boom"); });
      } catch (const std::runtime_error&) {
      }
    }
    // Cancelled before it starts: the pool is held by two functions waiting on a flag.
    auto hold = [&release, &holding] {
      holding.fetch_add(1);
      ferry::test::wait_until([&] { return release.load(); });
    };
    auto ex = co_await asio::this_coro::executor;
    holds.push_back(ferry::test::spawn_checked(ex, ferry::offload(hold)));
    holds.push_back(ferry::test::spawn_checked(ex, ferry::offload(hold)));
    while (holding.load() < 2) co_await ferry::sleep(1ms);  // both workers are taken now
    asio::cancellation_signal cancel;
    auto never = [] { ADD_FAILURE() << "a function cancelled before it started ran"; };
    auto queued = ferry::offload(
        never, asio::bind_cancellation_slot(cancel.slot(), asio::as_tuple(asio::use_awaitable)));
    asio::post(ex, [&cancel] { cancel.emit(asio::cancellation_type::terminal); });
    auto [error] = co_await std::move(queued);
    EXPECT_TRUE(ferry::test::is_operation_aborted(error));
    release = true;
  }());
  ASSERT_TRUE(ferry::test::wait_until([&] { return rt.stats().offloads.in_flight == 0; }));
  ASSERT_TRUE(ferry::test::wait_until([&] { return ferry::test::all_ended(holds); }));
  const ferry::runtime_stats s = rt.stats();
  EXPECT_EQ(s.offloads.submitted, 11u);
  EXPECT_EQ(s.offloads.ran, 10u);
  EXPECT_EQ(s.offloads.failed, 3u);
  EXPECT_EQ(s.offloads.skipped, 1u);
  EXPECT_EQ(s.offloads.queue_wait.count, 10u);
  EXPECT_EQ(s.offloads.run_time.count, 10u);
  EXPECT_GE(s.offloads.run_time.max, s.offloads.run_time.percentile(0.5));
}

TEST(Observability, LagProbeSamplesTheLoop) {
  ferry::runtime rt(ferry::runtime_options{.lag_probe_interval = 1ms});
  rt.run([&rt]() -> ferry::task<void> {
    for (int i = 0; i < 10'000 && rt.stats().loop.lag.count < 5; ++i) co_await ferry::sleep(1ms);
  }());
  EXPECT_GE(rt.stats().loop.lag.count, 5u);
}

TEST(Observability, LagProbeOffRecordsNothing) {
  ferry::runtime rt(ferry::runtime_options{.lag_probe_interval = 0ms});
  rt.run([]() -> ferry::task<void> { co_await ferry::sleep(30ms); }());
  EXPECT_EQ(rt.stats().loop.lag.count, 0u);
}

// --- watchdog -----------------------------------------------------------------------------

TEST(Observability, WatchdogReportsAHandlerThatBlocksTheLoop) {
  report_log log;
  std::thread::id io_thread;
  {
    ferry::runtime rt(
        ferry::runtime_options{.slow_callback_threshold = 50ms, .on_slow_callback = log.sink()});
    rt.run([&io_thread]() -> ferry::task<void> {
      io_thread = std::this_thread::get_id();
      std::this_thread::sleep_for(400ms);  // the bug the watchdog is for: blocking the loop
      co_await ferry::sleep(1ms);
    }());
    // The final report comes once the loop ran the watchdog's probe again.
    ASSERT_TRUE(ferry::test::wait_until([&] { return log.has_final(); }));
    const ferry::runtime_stats s = rt.stats();
    EXPECT_EQ(s.loop.slow_callbacks, 1u);
    EXPECT_GE(s.loop.longest_stall, 50ms);
  }
  const auto reports = log.copy();
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_TRUE(reports[0].ongoing);
  EXPECT_FALSE(reports[1].ongoing);
  for (const auto& r : reports) {
    EXPECT_GE(r.blocked_for, 50ms);
    EXPECT_EQ(r.thread, io_thread);
  }
  EXPECT_GE(reports[1].blocked_for, reports[0].blocked_for);
}

TEST(Observability, WatchdogStaysQuietWhileHandlersReturnPromptly) {
  report_log log;
  ferry::runtime rt(
      ferry::runtime_options{.slow_callback_threshold = 500ms, .on_slow_callback = log.sink()});
  rt.run([]() -> ferry::task<void> {
    for (int i = 0; i < 100; ++i) {
      co_await ferry::sleep(1ms);
      co_await ferry::offload([] { std::this_thread::sleep_for(2ms); });  // off the loop
    }
  }());
  EXPECT_TRUE(log.copy().empty());
  EXPECT_EQ(rt.stats().loop.slow_callbacks, 0u);
}

TEST(Observability, WatchdogSurvivesAReporterThatThrows) {
  std::atomic<int> calls{0};
  ferry::runtime rt(
      ferry::runtime_options{.slow_callback_threshold = 30ms,
                             .on_slow_callback = [&calls](const ferry::slow_callback_report&) {
                               calls.fetch_add(1);
                               throw std::runtime_error("reporter failed");
                             }});
  testing::internal::CaptureStderr();
  rt.run([]() -> ferry::task<void> {
    std::this_thread::sleep_for(200ms);
    co_await ferry::sleep(100ms);  // the loop comes back: the stall ends
    std::this_thread::sleep_for(200ms);
    co_await ferry::sleep(1ms);
  }());
  ASSERT_TRUE(ferry::test::wait_until([&] { return calls.load() >= 4; }));
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("on_slow_callback threw: reporter failed"), std::string::npos) << err;
  // At least the two stalls: on a loaded machine the loop thread can also wait longer than the
  // threshold for a core, which the watchdog rightly reports too.
  EXPECT_GE(rt.stats().loop.slow_callbacks, 2u);
}

TEST(Observability, DefaultReporterWritesOneLineToStderr) {
  testing::internal::CaptureStderr();
  {
    ferry::runtime rt(ferry::runtime_options{.slow_callback_threshold = 40ms});
    rt.run([]() -> ferry::task<void> {
      std::this_thread::sleep_for(300ms);
      co_await ferry::sleep(1ms);
    }());
    ASSERT_TRUE(ferry::test::wait_until([&] {
      return rt.stats().loop.longest_stall > 0ns;  // the final report has been sent
    }));
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("ferry: slow callback: io thread"), std::string::npos) << err;
  EXPECT_NE(err.find("has not returned to the loop for"), std::string::npos) << err;
  EXPECT_NE(err.find("was blocked for"), std::string::npos) << err;
}

TEST(Observability, InvalidObservabilityOptionsThrow) {
  EXPECT_THROW(ferry::runtime(ferry::runtime_options{.slow_callback_threshold = 2h}),
               std::invalid_argument);
  EXPECT_THROW(ferry::runtime(ferry::runtime_options{.lag_probe_interval = -1ms}),
               std::invalid_argument);
  EXPECT_THROW(ferry::runtime(ferry::runtime_options{.spin = -1ns}), std::invalid_argument);
  EXPECT_THROW(ferry::runtime(ferry::runtime_options{.spin = 11ms}), std::invalid_argument);
}

// --- Prometheus ---------------------------------------------------------------------------

TEST(Observability, PrometheusTextIsWellFormedAndCarriesTheCounters) {
  ferry::runtime rt(ferry::runtime_options{.cpu_threads = 2});
  rt.run([]() -> ferry::task<void> {
    for (int i = 0; i < 3; ++i) co_await ferry::offload([] {});
  }());
  ASSERT_TRUE(ferry::test::wait_until([&] { return rt.stats().offloads.in_flight == 0; }));
  std::string text;
  ferry::write_prometheus(text, rt.stats());

  const std::regex sample(R"re(^ferry_[a-z_]+(\{le="([0-9.e+-]+|\+Inf)"\})? [0-9.e+-]+$)re");
  const std::regex comment(R"(^# (HELP|TYPE) ferry_[a-z_]+ .+$)");
  std::istringstream lines(text);
  std::string line;
  int samples = 0;
  while (std::getline(lines, line)) {
    if (line.starts_with("#")) {
      EXPECT_TRUE(std::regex_match(line, comment)) << line;
    } else {
      EXPECT_TRUE(std::regex_match(line, sample)) << line;
      ++samples;
    }
  }
  EXPECT_GT(samples, 40);
  EXPECT_NE(
      text.find(
          "# TYPE ferry_offloads_submitted_total counter\nferry_offloads_submitted_total 3\n"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("ferry_offload_queue_wait_seconds_bucket{le=\"+Inf\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("ferry_offload_queue_wait_seconds_count 3\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE ferry_loop_lag_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE ferry_loop_inbox_completions_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE ferry_loop_inbox_batches_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE ferry_loop_batch_windows_total counter\n"), std::string::npos);
}

// --- the fast completion lane ---------------------------------------------------------------

TEST(Observability, CallbackHandlersOnTheLoopCompleteThroughTheFastLaneEvenWhenOneThrows) {
  ferry::runtime rt(ferry::runtime_options{.cpu_threads = 2});
  std::atomic<int> delivered{0};
  std::atomic<bool> on_loop{true};
  testing::internal::CaptureStderr();
  asio::post(rt.get_executor(), [&] {
    for (int i = 0; i < 50; ++i) {
      ferry::offload([i] { return i; },
                     asio::bind_executor(rt.get_executor(), [&, i](std::exception_ptr, int v) {
                       if (!rt.running_in_this_thread()) on_loop = false;
                       EXPECT_EQ(v, i);
                       delivered.fetch_add(1);
                       if (i == 7) throw std::runtime_error("handler 7 throws");
                     }));
    }
  });
  ASSERT_TRUE(ferry::test::wait_until([&] { return delivered.load() == 50; }));
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("handler 7 throws"), std::string::npos) << err;
  EXPECT_TRUE(on_loop.load());
}

TEST(Observability, OffloadsCompleteWithSpinningOff) {
  ferry::runtime rt(ferry::runtime_options{.cpu_threads = 2, .spin = 0ns});
  const int sum = rt.run([]() -> ferry::task<int> {
    int total = 0;
    for (int i = 0; i < 200; ++i) total += co_await ferry::offload([i] { return i; });
    co_return total;
  }());
  EXPECT_EQ(sum, 199 * 200 / 2);
}

TEST(Observability, StrandAndLoopCompletionsInterleaveOnTheirOwnExecutors) {
  ferry::runtime rt(ferry::runtime_options{.io_threads = 2, .cpu_threads = 2});
  auto strand = asio::make_strand(rt.get_executor());
  std::atomic<int> done{0};
  std::atomic<int> wrong{0};
  auto on_strand = [&, strand]() -> ferry::task<void> {
    for (int i = 0; i < 200; ++i) {
      const int v = co_await ferry::offload([i] { return i; });
      if (v != i || !strand.running_in_this_thread()) wrong.fetch_add(1);
    }
    done.fetch_add(1);
  };
  auto on_loop = [&]() -> ferry::task<void> {
    for (int i = 0; i < 200; ++i) {
      const int v = co_await ferry::offload([i] { return i; });
      if (v != i || !rt.running_in_this_thread()) wrong.fetch_add(1);
    }
    done.fetch_add(1);
  };
  std::vector<ferry::test::spawned> coros;
  coros.push_back(ferry::test::spawn_checked(strand, on_strand()));
  coros.push_back(ferry::test::spawn_checked(rt.get_executor(), on_loop()));
  coros.push_back(ferry::test::spawn_checked(rt.get_executor(), on_loop()));
  ASSERT_TRUE(ferry::test::wait_until([&] { return ferry::test::all_ended(coros); }));
  EXPECT_EQ(done.load(), 3);
  EXPECT_EQ(wrong.load(), 0);
}

// While the pool is saturated (here: 16 chains of offloads on 2 workers), completions reach the
// loop in batches (runtime_options::completion_batch_window, 2 ms here). Nothing is
// lost, each completion runs on its own executor, and the loop's timers keep firing meanwhile.
TEST(Observability, BatchedCompletionsReachTheirExecutorsWhileTheLoopServesTimers) {
  for (const std::size_t io_threads : {1u, 2u}) {
    SCOPED_TRACE(io_threads);
    ferry::runtime rt(ferry::runtime_options{
        .io_threads = io_threads, .cpu_threads = 2, .completion_batch_window = 2ms});
    std::atomic<int> done{0};
    std::atomic<int> wrong{0};
    auto chain = [&](auto ex) -> ferry::task<void> {
      for (int i = 0; i < 300; ++i) {
        const int v = co_await ferry::offload([i] { return i; });
        if (v != i || !ex.running_in_this_thread()) wrong.fetch_add(1);
      }
      done.fetch_add(1);
    };
    std::vector<ferry::test::spawned> coros;
    for (int c = 0; c < 8; ++c) {
      auto strand = asio::make_strand(rt.get_executor());
      coros.push_back(ferry::test::spawn_checked(strand, chain(strand)));
      coros.push_back(ferry::test::spawn_checked(rt.get_executor(), chain(rt.get_executor())));
    }
    coros.push_back(ferry::test::spawn_checked(rt.get_executor(), [&]() -> ferry::task<void> {
      for (int i = 0; i < 20; ++i) co_await ferry::sleep(100us);
      done.fetch_add(1);
    }));
    ASSERT_TRUE(ferry::test::wait_until([&] { return ferry::test::all_ended(coros); }));
    EXPECT_EQ(done.load(), 17);
    EXPECT_EQ(wrong.load(), 0);
  }
}

// A runtime destroyed while completions are being batched (a window's timer may be pending):
// nothing is delivered after the loop stopped, nothing leaks (ASan), nothing crashes.
TEST(Observability, RuntimeDestroyedWhileCompletionsAreBatched) {
  std::atomic<long> completed{0};
  for (int round = 0; round < 20; ++round) {
    SCOPED_TRACE(round);
    const long before = completed.load();
    ferry::runtime rt(ferry::runtime_options{.cpu_threads = 2, .completion_batch_window = 2ms});
    std::vector<ferry::test::spawned> coros;
    for (int c = 0; c < 8; ++c) {
      coros.push_back(
          ferry::test::spawn_checked(rt.get_executor(), [&completed]() -> ferry::task<void> {
            for (;;) {
              co_await ferry::offload([] { return 1; });
              completed.fetch_add(1);
            }
          }));
      coros.back().may_not_finish();  // loops until the runtime's destruction destroys it
    }
    // Completions are flowing: the pool is saturated and windows open and close.
    ASSERT_TRUE(ferry::test::wait_until([&] { return completed.load() - before >= 200; }));
  }
}

// The window opens exactly when it should: after a delivery, with more offloads unfinished than
// the pool has workers. Two workers hold two of five offloads; releasing one delivers it while
// four are unfinished (two held, two queued): a window opens, and the stats count it. With the
// window off, the same steps open none. Every offload completes either way.
TEST(Observability, ABatchWindowOpensAfterADeliveryWhileThePoolIsSaturated) {
  for (const auto window : {std::chrono::nanoseconds(10ms), std::chrono::nanoseconds(0)}) {
    SCOPED_TRACE(window.count());
    std::atomic<int> holding{0};
    std::atomic<int> released{0};  // offloads 0 .. released-1 may return
    std::atomic<int> done{0};
    ferry::runtime rt(ferry::runtime_options{.cpu_threads = 2, .completion_batch_window = window});
    std::vector<ferry::test::spawned> coros;
    for (int k = 0; k < 5; ++k) {
      coros.push_back(ferry::test::spawn_checked(rt.get_executor(), [&, k]() -> ferry::task<void> {
        co_await ferry::offload([&, k] {
          holding.fetch_add(1);
          ferry::test::wait_until([&] { return released.load() > k; });
        });
        done.fetch_add(1);
      }));
    }
    ASSERT_TRUE(ferry::test::wait_until([&] { return holding.load() == 2; }));
    EXPECT_EQ(rt.stats().loop.batch_windows, 0u);
    released = 1;  // offload 0 returns; the worker takes the next queued one
    ASSERT_TRUE(ferry::test::wait_until([&] { return done.load() == 1; }));
    if (window.count() != 0) {
      // The spinner that delivered it opens the window right after the delivery.
      ASSERT_TRUE(ferry::test::wait_until([&] { return rt.stats().loop.batch_windows == 1; }));
    }
    released = 5;
    ASSERT_TRUE(ferry::test::wait_until([&] { return ferry::test::all_ended(coros); }));
    EXPECT_EQ(done.load(), 5);
    const ferry::loop_stats loop = rt.stats().loop;
    EXPECT_EQ(loop.inbox_completions, 5u);
    EXPECT_GE(loop.inbox_batches, 2u);  // offload 0 came alone
    EXPECT_LE(loop.inbox_batches, 5u);
    if (window.count() == 0) {
      EXPECT_EQ(loop.batch_windows, 0u);
    }
  }
}
