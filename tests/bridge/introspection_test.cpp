// tests/bridge/introspection_test.cpp — the stall report's stack (runtime_options::
// slow_callback_threshold) and the task tree (runtime::dump_tasks).
//
// A stall is produced by a handler that blocks until the watchdog has reported it (never for a
// fixed time); the dump is taken once the children are in the state it should show.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <ferry/ferry.hpp>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ferry_test.hpp"

namespace {

using ferry::test::report_log;

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
  std::atomic<std::thread::id> culprit_thread;
  // The culprit spins until the watchdog has reported *its* stall as ongoing: on a loaded machine
  // another io thread, preempted inside a callback for longer than the threshold, is reported
  // too (a real stall of that thread), and must not end the culprit's spin early.
  std::atomic<bool> culprit_reported{false};
  auto sink = [&culprit_thread, &culprit_reported, to_log = log.sink()](
                  const ferry::slow_callback_report& r) {
    to_log(r);
    if (r.ongoing && r.thread == culprit_thread.load()) culprit_reported.store(true);
  };
  {
    ferry::runtime rt(ferry::runtime_options{
        .io_threads = 3, .slow_callback_threshold = 50ms, .on_slow_callback = sink});
    asio::post(rt.get_executor(), [&] {
      culprit_thread.store(std::this_thread::get_id());
      culprit_started.store(true);
      ferry_stall_culprit_spins_until_reported(culprit_reported);
    });
    ASSERT_TRUE(ferry::test::wait_until([&] { return culprit_started.load(); }));
    // The other threads keep running the loop while one is stuck.
    rt.run([]() -> ferry::task<void> {
      for (int i = 0; i < 20; ++i) co_await ferry::sleep(1ms);
    }());
    ASSERT_TRUE(ferry::test::wait_until([&] {
      for (const auto& r : log.copy()) {
        if (!r.ongoing && r.thread == culprit_thread.load()) return true;
      }
      return false;
    }));
  }
  // The culprit's stall is reported twice (ongoing, then final), with its stack. The idle io
  // threads, blocked in the reactor, are never reported; one preempted inside a callback by a
  // loaded machine may be, for that real stall, so reports of other threads are not counted.
  std::vector<ferry::slow_callback_report> culprit;
  for (const auto& r : log.copy()) {
    if (r.thread == culprit_thread.load()) culprit.push_back(r);
  }
  ASSERT_EQ(culprit.size(), 2u);
  EXPECT_TRUE(culprit[0].ongoing);
  EXPECT_FALSE(culprit[1].ongoing);
  EXPECT_NE(culprit[0].where.find("ferry_stall_culprit_spins_until_reported"), std::string::npos)
      << culprit[0].where;
}

TEST(StallReport, DefaultReporterPrintsTheStack) {
  std::atomic<bool> done{false};
  testing::internal::CaptureStderr();
  {
    ferry::runtime rt(ferry::runtime_options{.slow_callback_threshold = 40ms});
    // Tells the culprit when the watchdog has counted the stall, i.e. written the ongoing
    // report. Started before the loop runs: a thread started inside the stalled handler could
    // still be starting when the report is taken (slow under a sanitizer), and the report would
    // show pthread_create instead of the culprit.
    std::atomic<bool> counted{false};
    std::thread watcher([&] {
      ferry::test::wait_until([&] { return rt.stats().loop.slow_callbacks > 0; });
      counted.store(true);
    });
    rt.run([&counted, &done]() -> ferry::task<void> {
      ferry_stall_culprit_spins_until_reported(counted);  // blocks until counted
      co_await ferry::sleep(1ms);
      done = true;
    }());
    watcher.join();
    ASSERT_TRUE(done.load());
    ASSERT_TRUE(ferry::test::wait_until([&] { return rt.stats().loop.longest_stall > 0ns; }));
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("has not returned to the loop for"), std::string::npos) << err;
  EXPECT_NE(err.find(", stack:\n  #0 "), std::string::npos) << err;
  EXPECT_NE(err.find("ferry_stall_culprit_spins_until_reported"), std::string::npos) << err;
}

// --- dump_tasks ---------------------------------------------------------------------------

namespace {

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string spawned_at(int line) { return ":" + std::to_string(line) + ": suspended in "; }

}  // namespace

// The children's bodies: coroutines whose parameters live in their frames.
ferry::task<void> sleep_long() { co_await ferry::sleep(1h); }

ferry::task<void> offload_until(const std::atomic<bool>& release) {
  co_await ferry::offload([&release] { ferry::test::wait_until([&] { return release.load(); }); });
}

ferry::task<int> get_one(ferry::queue<int>& q) { co_return co_await q.get(); }

ferry::task<void> wait_in_a_group_of_its_own(ferry::event& go, int& inner_line) {
  ferry::task_group inner{co_await asio::this_coro::executor};
  inner_line = __LINE__ + 1;
  inner.spawn(go.wait());
  co_await inner.join();
}

TEST(TaskDump, ShowsWhereEachChildWasSpawnedAndWhatItAwaits) {
  std::atomic<bool> release{false};  // outlives the runtime: the offloaded function reads it
  ferry::runtime rt(ferry::runtime_options{.cpu_threads = 1});
  std::string dump;
  int sleep_line = 0, offload_line = 0, get_line = 0;
  rt.run([](ferry::runtime& rt,
            std::atomic<bool>& release,
            std::string& dump,
            int& sleep_line,
            int& offload_line,
            int& get_line) -> ferry::task<void> {
    ferry::queue<int> q(1);
    ferry::task_group tg{co_await asio::this_coro::executor};
    sleep_line = __LINE__ + 1;
    auto sleeper = tg.spawn(sleep_long());
    offload_line = __LINE__ + 1;
    tg.spawn(offload_until(release));
    get_line = __LINE__ + 1;
    tg.spawn(get_one(q));
    // Waits for the state: the three children suspended (main, which dumps, is running).
    while (count_of(dump = rt.dump_tasks(), "suspended in ") < 3) co_await ferry::sleep(1ms);
    release = true;
    q.try_put(1);
    sleeper.cancel();
    co_await tg.join();
  }(rt, release, dump, sleep_line, offload_line, get_line));
  EXPECT_NE(dump.find(spawned_at(sleep_line) + "sleep for "), std::string::npos) << dump;
  EXPECT_NE(dump.find(spawned_at(offload_line) + "offload for "), std::string::npos) << dump;
  EXPECT_NE(dump.find(spawned_at(get_line) + "queue::get for "), std::string::npos) << dump;
  EXPECT_NE(dump.find("run main: running"), std::string::npos) << dump;
  EXPECT_EQ(count_of(dump, "task_group "), 1u) << dump;
  // The group is drawn under main, its children under the group.
  EXPECT_LT(dump.find("run main"), dump.find("task_group ")) << dump;
  EXPECT_LT(dump.find("task_group "), dump.find(spawned_at(sleep_line))) << dump;
  EXPECT_EQ(count_of(rt.dump_tasks(), "task_group "), 0u);  // gone once joined
}

TEST(TaskDump, ShowsANestedGroupUnderTheChildThatMadeIt) {
  ferry::runtime rt(ferry::runtime_options{.io_threads = 2});
  std::string dump;
  int outer_line = 0, inner_line = 0;
  ferry::event go;
  // Dumped from this thread while main waits in join: main is suspended too.
  std::thread dumper([&] {
    while (count_of(dump = rt.dump_tasks(), "suspended in ") < 3) std::this_thread::yield();
    go.set();
  });
  rt.run([](ferry::event& go, int& outer_line, int& inner_line) -> ferry::task<void> {
    ferry::task_group tg{co_await asio::this_coro::executor};
    outer_line = __LINE__ + 1;
    tg.spawn(wait_in_a_group_of_its_own(go, inner_line));
    co_await tg.join();
  }(go, outer_line, inner_line));
  dumper.join();
  const auto main = dump.find("run main: suspended in task_group::join");
  const auto outer = dump.find(spawned_at(outer_line) + "task_group::join");
  const auto inner = dump.find(spawned_at(inner_line) + "event::wait");
  ASSERT_NE(main, std::string::npos) << dump;
  ASSERT_NE(outer, std::string::npos) << dump;
  ASSERT_NE(inner, std::string::npos) << dump;
  EXPECT_LT(main, outer) << dump;
  EXPECT_LT(outer, inner) << dump;
  EXPECT_EQ(count_of(dump, "task_group "), 2u) << dump;
}

TEST(TaskDump, IsSafeWhileChildrenComeAndGo) {
  ferry::runtime rt(ferry::runtime_options{.io_threads = 2, .cpu_threads = 2});
  std::atomic<bool> done{false};
  std::atomic<int> dumps{0};
  std::thread dumper([&] {
    while (!done.load()) {
      if (!rt.dump_tasks().empty()) dumps.fetch_add(1);
    }
  });
  rt.run([&]() -> ferry::task<void> {
    for (int round = 0; round < 200 || dumps.load() < 20; ++round) {
      ferry::task_group tg{co_await asio::this_coro::executor};
      for (int i = 0; i < 8; ++i) {
        tg.spawn([]() -> ferry::task<int> {
          co_await ferry::sleep(0ms);
          co_return co_await ferry::offload([] { return 1; });
        }());
      }
      co_await tg.join();
    }
  }());
  done = true;
  dumper.join();
  EXPECT_GE(dumps.load(), 20);
}

// A coroutine that a child co_spawns before its first suspension starts inline, while the child
// is the current task: its waits are noted on the child's node, and it may outlive the child.
ferry::task<void> wait_twice(ferry::event& first, ferry::event& second, std::atomic<int>& woken) {
  co_await first.wait();
  woken.fetch_add(1);
  co_await second.wait();
  woken.fetch_add(1);
}

TEST(TaskDump, ACoroutineStartedInsideAChildMayOutliveIt) {
  std::optional<ferry::test::spawned> waiter;  // the coroutine the child starts
  ferry::runtime rt(ferry::runtime_options{.io_threads = 2});
  ferry::event first, second;
  std::atomic<int> woken{0};
  rt.run([](ferry::event& first,
            ferry::event& second,
            std::atomic<int>& woken,
            std::optional<ferry::test::spawned>& waiter) -> ferry::task<void> {
    {
      ferry::task_group tg{co_await asio::this_coro::executor};
      tg.spawn([](ferry::event& first,
                  ferry::event& second,
                  std::atomic<int>& woken,
                  std::optional<ferry::test::spawned>& waiter) -> ferry::task<void> {
        const auto ex = co_await asio::this_coro::executor;
        waiter.emplace(ferry::test::spawn_checked(ex, wait_twice(first, second, woken)));
        co_return;
      }(first, second, woken, waiter));
      co_await tg.join();
    }  // the child and its node are gone unless the waiting coroutine holds them
    first.set();
    while (woken.load() < 1) co_await ferry::sleep(1ms);
    second.set();
    while (!waiter->ended()) co_await ferry::sleep(1ms);
  }(first, second, woken, waiter));
  EXPECT_EQ(woken.load(), 2);
}
