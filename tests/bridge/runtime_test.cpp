// tests/bridge/runtime_test.cpp — black-box tests of ferry::runtime, ferry::run and ferry::sleep.
//
// Deterministic: cancellation and signals are sent only once main has announced (through an
// atomic flag) that it is about to suspend; functions on the pools are held until the test
// releases them; every wait is bounded by a generous hang guard (ferry::test::hang_guard) that only
// turns a bug into a failure instead of a hang. No assertion depends on how long anything took: a
// sleep that "never ends" is a hang_guard sleep the test cancels long before it could expire.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/system/system_error.hpp>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ferry/ferry.hpp>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "ferry_test.hpp"

namespace {

using namespace boost::asio::experimental::awaitable_operators;

using ferry::test::hang_guard;

bool is_operation_aborted(const boost::system::system_error& e) {
  return e.code() == asio::error::operation_aborted;
}

// --- run ------------------------------------------------------------------------------------

TEST(Runtime, RunReturnsMainsValue) {
  EXPECT_EQ(ferry::run([]() -> ferry::task<int> { co_return 42; }()), 42);
}

TEST(Runtime, RunReturnsAValueProducedAfterSuspending) {
  const std::string s = ferry::run([]() -> ferry::task<std::string> {
    co_await ferry::sleep(1ms);
    co_return std::string(100, 'x');  // not a small string: moved out of the frame intact
  }());
  EXPECT_EQ(s, std::string(100, 'x'));
}

TEST(Runtime, RunCompletesAVoidMain) {
  bool ran = false;
  ferry::run([&ran]() -> ferry::task<void> {
    co_await ferry::sleep(0ms);
    ran = true;
  }());
  EXPECT_TRUE(ran);
}

TEST(Runtime, RunRethrowsMainsExceptionWithTypeAndMessage) {
  try {
    ferry::run([]() -> ferry::task<int> {
      co_await ferry::sleep(1ms);
      throw std::runtime_error("boom");
    }());
    ADD_FAILURE() << "run returned";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "boom");
  } catch (...) {
    ADD_FAILURE() << "an exception of another type";
  }
}

TEST(Runtime, RunRethrowsAnExceptionThrownBeforeTheFirstSuspension) {
  EXPECT_THROW(ferry::run([]() -> ferry::task<void> {
                 throw std::out_of_range("early");
                 co_return;
               }()),
               std::out_of_range);
}

TEST(Runtime, RunTwiceInSequenceOnTheSameRuntime) {
  ferry::runtime rt;
  EXPECT_EQ(rt.run([]() -> ferry::task<int> { co_return 1; }()), 1);
  EXPECT_THROW(rt.run([]() -> ferry::task<void> {
    co_await ferry::sleep(1ms);
    throw std::runtime_error("second");
  }()),
               std::runtime_error);
  EXPECT_EQ(rt.run([]() -> ferry::task<int> {
    co_await ferry::sleep(1ms);
    co_return 3;
  }()),
            3);
}

// --- sleep ----------------------------------------------------------------------------------

// A sleep started later but with an earlier deadline finishes first. The long one is cancelled
// by `||` as soon as the short one finishes, so no timing can make this test slow or flaky.
FERRY_CO_TEST(Runtime, SleepShorterTimerStartedLaterFinishesFirst) {
  std::optional<boost::system::error_code> long_error;
  auto long_sleep = [&long_error]() -> ferry::task<void> {
    try {
      co_await ferry::sleep(hang_guard);
      long_error = boost::system::error_code();
    } catch (const boost::system::system_error& e) {
      long_error = e.code();
      throw;
    }
  };
  const auto winner = co_await (long_sleep() || ferry::sleep(1ms));
  EXPECT_EQ(winner.index(), 1u);
  EXPECT_EQ(long_error.value_or(boost::system::error_code()), asio::error::operation_aborted);
}

// Both sleeps complete, in deadline order (the long one started first). The margin between
// the two deadlines (249 ms) dwarfs the gap between two consecutive handlers on the loop.
FERRY_CO_TEST(Runtime, SleepTimersCompleteInDeadlineOrder) {
  std::vector<std::string> order;
  auto timed = [&order](std::chrono::milliseconds d, std::string name) -> ferry::task<void> {
    co_await ferry::sleep(d);
    order.push_back(std::move(name));
  };
  co_await (timed(250ms, "long") && timed(1ms, "short"));
  EXPECT_EQ(order, (std::vector<std::string>{"short", "long"}));
}

FERRY_CO_TEST(Runtime, SleepCancelledThroughACancellationSlotThrowsOperationAborted) {
  const auto ex = co_await asio::this_coro::executor;
  asio::cancellation_signal signal;
  bool sleeping = false;
  // `sleeping` is set in the same handler that suspends on the timer (one io thread): once the
  // canceller sees it, the sleep is waiting on its timer.
  auto sleeper = [&sleeping]() -> ferry::task<void> {
    sleeping = true;
    co_await ferry::sleep(hang_guard);
  };
  auto canceller = [&sleeping, &signal, ex]() -> ferry::task<void> {
    while (!sleeping) co_await asio::post(ex, asio::use_awaitable);
    signal.emit(asio::cancellation_type::terminal);
  };
  auto canceller_coro = ferry::test::spawn_checked(ex, canceller());
  std::optional<boost::system::error_code> error;
  try {
    co_await asio::co_spawn(
        ex, sleeper(), asio::bind_cancellation_slot(signal.slot(), asio::use_awaitable));
  } catch (const boost::system::system_error& e) {
    error = e.code();
  }
  EXPECT_EQ(error.value_or(boost::system::error_code()), asio::error::operation_aborted);
  while (!canceller_coro.ended()) co_await asio::post(ex, asio::use_awaitable);
}

FERRY_CO_TEST(Runtime, SleepOfZeroResumesOnTheLoop) {
  ferry::runtime* rt = ferry::runtime::current();
  EXPECT_NE(rt, nullptr);
  co_await ferry::sleep(0ms);
  co_await ferry::sleep(-1ms);
  EXPECT_EQ(ferry::runtime::current(), rt);
}

// --- request_stop ---------------------------------------------------------------------------

// Announces that it is about to suspend, then sleeps until cancelled; returns 7 when cancelled
// with operation_aborted (-1 if the sleep was never cancelled).
ferry::task<int> graceful_main(std::atomic<bool>& in_main) {
  int result = -1;
  try {
    in_main.store(true, std::memory_order_release);
    co_await ferry::sleep(hang_guard);
  } catch (const boost::system::system_error& e) {
    result = is_operation_aborted(e) ? 7 : -2;
  }
  co_return result;
}

// Same without catching: the cancellation escapes main.
ferry::task<int> ungraceful_main(std::atomic<bool>& in_main) {
  in_main.store(true, std::memory_order_release);
  co_await ferry::sleep(hang_guard);
  co_return -1;
}

// Calls `action` from another thread once main has announced itself.
class once_main_started {
 public:
  template <class F>
  once_main_started(std::atomic<bool>& in_main, F action)
      : thread_([&in_main, action = std::move(action)] {
          if (ferry::test::wait_until([&] { return in_main.load(std::memory_order_acquire); })) {
            action();
          }
        }) {}
  ~once_main_started() { thread_.join(); }

  once_main_started(const once_main_started&) = delete;
  once_main_started& operator=(const once_main_started&) = delete;

 private:
  std::thread thread_;
};

TEST(Runtime, RequestStopFromAnotherThreadCancelsMainWhichFinishesGracefully) {
  ferry::runtime rt;
  std::atomic<bool> in_main{false};
  int result = 0;
  {
    once_main_started stopper(in_main, [&rt] { rt.request_stop(); });
    result = rt.run(graceful_main(in_main));
  }
  EXPECT_EQ(result, 7);
}

TEST(Runtime, RequestStopPropagatesOperationAbortedWhenMainDoesNotCatch) {
  ferry::runtime rt;
  std::atomic<bool> in_main{false};
  std::optional<boost::system::error_code> error;
  {
    once_main_started stopper(in_main, [&rt] { rt.request_stop(); });
    try {
      rt.run(ungraceful_main(in_main));
    } catch (const boost::system::system_error& e) {
      error = e.code();
    }
  }
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(*error, asio::error::operation_aborted);
}

TEST(Runtime, RequestStopWhenNothingRunsIsANoOp) {
  ferry::runtime rt;
  rt.request_stop();
  rt.request_stop();
  // A later run is not affected by the stop requested before it.
  EXPECT_EQ(rt.run([]() -> ferry::task<int> {
    co_await ferry::sleep(1ms);
    co_return 3;
  }()),
            3);
  rt.request_stop();  // after a run: still a no-op
  EXPECT_EQ(rt.run([]() -> ferry::task<int> { co_return 4; }()), 4);
}

// request_stop may come from any thread at any moment of run, including while run is still
// starting main (a SIGINT arriving then takes the same path). Such a stop must neither race
// with main's start (ThreadSanitizer checks that) nor keep run from returning. A run that never
// returns cannot be recovered from (its thread is stuck in run): after the hang guard the test
// reports it and aborts the binary rather than hang CI.
TEST(Runtime, RequestStopRacingTheStartOfRunIsSafe) {
  ferry::runtime rt;
  std::promise<void> finished;
  std::thread runner([&] {
    for (int i = 0; i < 20; ++i) {
      std::atomic<bool> in_main{false};
      std::atomic<bool> done{false};
      std::thread stopper([&] {
        while (!done.load()) {
          rt.request_stop();
          std::this_thread::sleep_for(20us);
        }
      });
      const int result = rt.run(graceful_main(in_main));
      done = true;
      stopper.join();
      EXPECT_EQ(result, 7) << "iteration " << i;
    }
    finished.set_value();
  });
  if (finished.get_future().wait_for(hang_guard) != std::future_status::ready) {
    std::fprintf(stderr,
                 "Runtime.RequestStopRacingTheStartOfRunIsSafe: runtime::run never returned "
                 "after a stop requested while it was starting main; aborting\n");
    std::abort();
  }
  runner.join();
}

// --- signals --------------------------------------------------------------------------------

TEST(Runtime, SigintCancelsMainGracefully) {
  ferry::runtime rt;
  std::atomic<bool> in_main{false};
  int result = 0;
  {
    once_main_started signaller(in_main, [] { ::raise(SIGINT); });
    result = rt.run(graceful_main(in_main));
  }
  EXPECT_EQ(result, 7);
}

TEST(Runtime, SigtermCancelsMainGracefully) {
  ferry::runtime rt;
  std::atomic<bool> in_main{false};
  int result = 0;
  {
    once_main_started signaller(in_main, [] { ::kill(::getpid(), SIGTERM); });
    result = rt.run(graceful_main(in_main));
  }
  EXPECT_EQ(result, 7);
}

TEST(Runtime, SignalsCancelEachRunOfTheSameRuntime) {
  ferry::runtime rt;
  for (int i = 0; i < 2; ++i) {
    std::atomic<bool> in_main{false};
    int result = 0;
    {
      once_main_started signaller(in_main, [] { ::raise(SIGINT); });
      result = rt.run(graceful_main(in_main));
    }
    EXPECT_EQ(result, 7) << "run " << i;
  }
}

using signal_handler = void (*)(int);

signal_handler handler_of(int signal_number) {
  struct sigaction sa {};
  ::sigaction(signal_number, nullptr, &sa);
  return sa.sa_handler;
}

// While run is in progress the runtime intercepts SIGINT and SIGTERM; once it has returned it
// no longer does (the handler the runtime installed is gone; it is removed on the loop, shortly
// after run returns).
TEST(Runtime, SignalHandlersAreRemovedAfterRun) {
  ferry::runtime rt;
  const signal_handler int_before = handler_of(SIGINT);
  const signal_handler term_before = handler_of(SIGTERM);
  signal_handler int_during = nullptr;
  signal_handler term_during = nullptr;
  rt.run([&]() -> ferry::task<void> {
    int_during = handler_of(SIGINT);
    term_during = handler_of(SIGTERM);
    co_return;
  }());
  EXPECT_NE(int_during, int_before);
  EXPECT_NE(term_during, term_before);
  // Removed before run returns, and what was there before is back.
  EXPECT_EQ(handler_of(SIGINT), int_before);
  EXPECT_EQ(handler_of(SIGTERM), term_before);
}

namespace {
void test_handler(int) {}
}  // namespace

TEST(Runtime, SignalDispositionsInstalledBeforeRunAreRestored) {
  struct sigaction mine {};
  mine.sa_handler = &test_handler;
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction old_int {
  }, old_term{};
  ASSERT_EQ(::sigaction(SIGINT, &mine, &old_int), 0);
  ASSERT_EQ(::sigaction(SIGTERM, &ignore, &old_term), 0);
  {
    ferry::runtime rt;
    EXPECT_EQ(rt.run([]() -> ferry::task<int> { co_return 1; }()), 1);
  }
  EXPECT_EQ(handler_of(SIGINT), &test_handler);
  EXPECT_EQ(handler_of(SIGTERM), SIG_IGN);
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
}

// --- misuse and options -----------------------------------------------------------------------

TEST(Runtime, RunFromAnIoThreadOfTheSameRuntimeThrowsLogicError) {
  ferry::runtime rt;
  auto f = asio::co_spawn(
      rt.get_executor(),
      [&rt]() -> ferry::task<std::string> {
        std::string outcome;
        try {
          rt.run([]() -> ferry::task<int> { co_return 0; }());
          outcome = "returned";
        } catch (const std::logic_error&) {
          outcome = "logic_error";
        } catch (...) {
          outcome = "other exception";
        }
        co_return outcome;
      },
      asio::use_future);
  ASSERT_EQ(f.wait_for(hang_guard), std::future_status::ready);
  EXPECT_EQ(f.get(), "logic_error");
  // The runtime is still usable.
  EXPECT_EQ(rt.run([]() -> ferry::task<int> { co_return 5; }()), 5);
}

TEST(Runtime, RunWhileAnotherRunIsInProgressThrowsLogicError) {
  ferry::runtime rt;
  std::atomic<bool> in_main{false};
  std::string second;
  int result = 0;
  {
    once_main_started other(in_main, [&] {
      try {
        rt.run([]() -> ferry::task<int> { co_return 0; }());
        second = "returned";
      } catch (const std::logic_error&) {
        second = "logic_error";
      } catch (...) {
        second = "other exception";
      }
      rt.request_stop();
    });
    result = rt.run(graceful_main(in_main));
  }
  EXPECT_EQ(second, "logic_error");
  EXPECT_EQ(result, 7);  // the first run was not disturbed by the refused one
}

TEST(Runtime, InvalidOptionsThrowInvalidArgument) {
  EXPECT_THROW({ ferry::runtime rt(ferry::runtime_options{.io_threads = 0}); },
               std::invalid_argument);
  EXPECT_THROW({ ferry::runtime rt(ferry::runtime_options{.blocking_threads = 0}); },
               std::invalid_argument);
  EXPECT_THROW({ ferry::runtime rt(ferry::runtime_options{.io_threads = 1025}); },
               std::invalid_argument);
  EXPECT_THROW({ ferry::runtime rt(ferry::runtime_options{.slow_callback_threshold = -1ms}); },
               std::invalid_argument);
  for (const auto window : {std::chrono::nanoseconds(-1), std::chrono::nanoseconds(11ms)}) {
    try {
      ferry::runtime rt(ferry::runtime_options{.completion_batch_window = window});
      ADD_FAILURE() << "completion_batch_window = " << window.count() << " ns was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_STREQ(e.what(), "ferry::runtime: completion_batch_window must be between 0 and 10 ms");
    }
  }
}

// The pools check the options they own, with their own message (one check per option).
TEST(Runtime, OptionsOwnedByAPoolAreCheckedByThatPool) {
  const auto message_of_bad = [](const ferry::runtime_options& options) -> std::string {
    try {
      ferry::runtime rt(options);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "(no exception)";
  };
  EXPECT_EQ(
      message_of_bad({.spin = 11ms}).rfind("ferry::cpu_pool: spin must be between 0 and 10 ms", 0),
      0u);
  EXPECT_EQ(
      message_of_bad({.spin = -1ns}).rfind("ferry::cpu_pool: spin must be between 0 and 10 ms", 0),
      0u);
  EXPECT_EQ(message_of_bad({.blocking_threads = 0}),
            "ferry::blocking_pool: max_threads must be at least 1");
  EXPECT_EQ(message_of_bad({.cpu_nice_increment = 20})
                .rfind("ferry::cpu_pool: nice_increment must be between 0 and 19", 0),
            0u);
}

// An exception that escapes a handler on the loop is written to stderr; the io thread goes back
// to the loop, and the handlers behind it still run (runtime.hpp, Errors).
TEST(Runtime, AnExceptionEscapingAHandlerIsReportedAndTheLoopGoesOn) {
  for (const std::size_t io_threads : {1u, 2u}) {
    SCOPED_TRACE(io_threads);
    ferry::runtime rt(ferry::runtime_options{.io_threads = io_threads});
    testing::internal::CaptureStderr();
    std::atomic<int> ran{0};
    asio::post(rt.get_executor(), [] { throw std::runtime_error("posted handler throws"); });
    asio::post(rt.get_executor(), [] { throw 42; });
    asio::post(rt.get_executor(), [&ran] { ran.fetch_add(1); });
    ASSERT_TRUE(ferry::test::wait_until([&] { return ran.load() == 1; }));
    EXPECT_EQ(rt.run(ferry::test::value_soon(7)), 7);  // the loop still serves
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("ferry: an exception escaped a handler on an io thread: posted handler "
                       "throws\n"),
              std::string::npos)
        << err;
    EXPECT_NE(err.find("ferry: an exception escaped a handler on an io thread\n"),
              std::string::npos)
        << err;
  }
}

TEST(Runtime, RunWithInvalidOptionsThrowsWithoutStartingMain) {
  bool started = false;
  EXPECT_THROW(ferry::run(
                   [&started]() -> ferry::task<void> {
                     started = true;
                     co_return;
                   }(),
                   ferry::runtime_options{.io_threads = 0}),
               std::invalid_argument);
  EXPECT_FALSE(started);
}

TEST(Runtime, OptionsAreKept) {
  ferry::runtime rt(ferry::runtime_options{
      .io_threads = 2, .cpu_threads = 3, .blocking_threads = 5, .max_offloads_in_flight = 7});
  EXPECT_EQ(rt.options().io_threads, 2u);
  EXPECT_EQ(rt.cpu().concurrency(), 3u);
  EXPECT_EQ(rt.cpu().max_in_flight(), 7u);
  EXPECT_EQ(rt.blocking().max_threads(), 5u);
  EXPECT_EQ(rt.stats().io_threads, 2u);
}

// --- io threads -----------------------------------------------------------------------------

TEST(Runtime, MainRunsOnAnIoThreadOfTheRuntimeWithSeveralIoThreads) {
  ferry::runtime rt(ferry::runtime_options{.io_threads = 4});
  EXPECT_FALSE(rt.running_in_this_thread());
  EXPECT_EQ(ferry::runtime::current(), nullptr);
  struct seen {
    bool on_io_thread = false;
    ferry::runtime* current = nullptr;
    bool on_io_thread_after_sleep = false;
    bool on_io_thread_after_offload = false;
    std::thread::id id;
  };
  const seen s = rt.run([&rt]() -> ferry::task<seen> {
    seen r;
    r.on_io_thread = rt.running_in_this_thread();
    r.current = ferry::runtime::current();
    r.id = std::this_thread::get_id();
    co_await ferry::sleep(1ms);
    r.on_io_thread_after_sleep = rt.running_in_this_thread();
    co_await ferry::offload([] { return 0; });
    r.on_io_thread_after_offload = rt.running_in_this_thread();
    co_return r;
  }());
  EXPECT_TRUE(s.on_io_thread);
  EXPECT_EQ(s.current, &rt);
  EXPECT_TRUE(s.on_io_thread_after_sleep);
  EXPECT_TRUE(s.on_io_thread_after_offload);
  EXPECT_NE(s.id, std::this_thread::get_id());
  EXPECT_EQ(ferry::runtime::current(), nullptr);
}

// Four handlers that each block their io thread until all four have arrived: only four io
// threads serving the loop at the same time can get them all through.
TEST(Runtime, AllIoThreadsServeTheLoop) {
  constexpr int n = 4;
  ferry::runtime rt(ferry::runtime_options{.io_threads = n});
  std::atomic<int> arrived{0};
  std::atomic<int> observed_all{0};
  std::atomic<int> done{0};
  std::mutex mutex;
  std::set<std::thread::id> ids;
  for (int i = 0; i < n; ++i) {
    asio::post(rt.get_executor(), [&] {
      {
        std::lock_guard lock(mutex);
        ids.insert(std::this_thread::get_id());
      }
      arrived.fetch_add(1);
      if (ferry::test::wait_until([&] { return arrived.load() >= n; })) observed_all.fetch_add(1);
      done.fetch_add(1);
    });
  }
  ASSERT_TRUE(ferry::test::wait_until([&] { return done.load() == n; }));
  EXPECT_EQ(observed_all.load(), n);
  std::lock_guard lock(mutex);
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(n));
}

TEST(Runtime, CurrentIsTheRuntimeOnItsIoThreadsOnly) {
  ferry::runtime a;
  ferry::runtime b;
  EXPECT_EQ(ferry::runtime::current(), nullptr);
  auto on_a = asio::co_spawn(
      a.get_executor(),
      [&a, &b]() -> ferry::task<std::tuple<ferry::runtime*, bool, bool>> {
        co_return std::tuple{
            ferry::runtime::current(), a.running_in_this_thread(), b.running_in_this_thread()};
      },
      asio::use_future);
  ASSERT_EQ(on_a.wait_for(hang_guard), std::future_status::ready);
  const auto [current, in_a, in_b] = on_a.get();
  EXPECT_EQ(current, &a);
  EXPECT_TRUE(in_a);
  EXPECT_FALSE(in_b);
}

// --- the runtime's pools --------------------------------------------------------------------

TEST(Runtime, OffloadFromMainUsesTheRuntimesCpuPool) {
  ferry::runtime rt(ferry::runtime_options{.cpu_threads = 2});
  const auto [on_its_pool, on_io_thread, resumed_on_io_thread] =
      rt.run([&rt]() -> ferry::task<std::tuple<bool, bool, bool>> {
        const auto [pool, io] = co_await ferry::offload([&rt] {
          return std::pair{ferry::cpu_pool::current() == &rt.cpu(), rt.running_in_this_thread()};
        });
        co_return std::tuple{pool, io, rt.running_in_this_thread()};
      }());
  EXPECT_TRUE(on_its_pool);
  EXPECT_FALSE(on_io_thread);
  EXPECT_TRUE(resumed_on_io_thread);
}

TEST(Runtime, ToThreadFromMainUsesTheRuntimesBlockingPool) {
  ferry::runtime rt;
  const auto [on_its_pool, on_cpu_pool, on_io_thread] =
      rt.run([&rt]() -> ferry::task<std::tuple<bool, bool, bool>> {
        co_return co_await ferry::to_thread([&rt] {
          return std::tuple{rt.blocking().running_in_this_thread(),
                            ferry::cpu_pool::current() != nullptr,
                            rt.running_in_this_thread()};
        });
      }());
  EXPECT_TRUE(on_its_pool);
  EXPECT_FALSE(on_cpu_pool);
  EXPECT_FALSE(on_io_thread);
}

TEST(Runtime, StatsCountTheOffloadsOfMain) {
  constexpr int n = 20;
  ferry::runtime rt(ferry::runtime_options{.cpu_threads = 2});
  const int sum = rt.run([]() -> ferry::task<int> {
    int total = 0;
    for (int i = 0; i < n; ++i) total += co_await ferry::offload([i] { return i; });
    co_return total;
  }());
  EXPECT_EQ(sum, n * (n - 1) / 2);
  EXPECT_GE(rt.stats().cpu.submitted, static_cast<std::uint64_t>(n));
  // A pool counts a job complete just after it returns, which may be after main resumed.
  EXPECT_TRUE(ferry::test::wait_until([&] {
    const ferry::runtime_stats s = rt.stats();
    return s.cpu.completed == s.cpu.submitted;
  }));
  const ferry::runtime_stats s = rt.stats();
  EXPECT_EQ(s.io_threads, 1u);
  EXPECT_EQ(s.cpu.threads, 2u);
  EXPECT_EQ(s.cpu.in_flight, 0u);
  EXPECT_EQ(s.cpu.waiting, 0u);
}

// --- shutdown with work in flight -------------------------------------------------------------

struct shutdown_counters {
  std::atomic<int> started{0};   // offloaded functions that began
  std::atomic<int> finished{0};  // offloaded functions that returned
  std::atomic<int> resumed{0};   // coroutine steps after an offload (handler side)
  std::atomic<bool> release{true};
};

// Offloads `rounds` functions in turn; each loops ~50 x 1 ms unless stopped (and first waits for
// `release`, bounded by the hang guard).
ferry::task<void> offload_rounds(shutdown_counters& c, int rounds) {
  for (int r = 0; r < rounds; ++r) {
    co_await ferry::offload([&c](std::stop_token stop) {
      c.started.fetch_add(1, std::memory_order_acq_rel);
      ferry::test::wait_until([&] { return c.release.load(std::memory_order_acquire); });
      for (int i = 0; i < 50 && !stop.stop_requested(); ++i) std::this_thread::sleep_for(1ms);
      c.finished.fetch_add(1, std::memory_order_acq_rel);
    });
    c.resumed.fetch_add(1, std::memory_order_acq_rel);
  }
}

// After the destructor: every function that started has finished (none was cut off or is still
// running), and no handler runs any more.
void expect_quiescent_after_destruction(shutdown_counters& c) {
  EXPECT_EQ(c.started.load(), c.finished.load());
  const int resumed = c.resumed.load();
  const int started = c.started.load();
  std::this_thread::sleep_for(50ms);  // an observation window, not a deadline
  EXPECT_EQ(c.resumed.load(), resumed);
  EXPECT_EQ(c.started.load(), started);
}

TEST(Runtime, DestructionWaitsForInFlightOffloadsAndRunsNoHandlerAfterwards) {
  constexpr int coroutines = 16;
  shutdown_counters c;
  {
    ferry::runtime rt(ferry::runtime_options{.cpu_threads = 2});
    std::vector<ferry::test::spawned> coros;
    for (int i = 0; i < coroutines; ++i) {
      coros.push_back(ferry::test::spawn_checked(rt.get_executor(), offload_rounds(c, 3)));
      coros.back().may_not_finish();  // the runtime's destruction may destroy it suspended
    }
    ASSERT_TRUE(ferry::test::wait_until(
        [&] { return c.started.load() >= 1 && rt.stats().cpu.submitted >= coroutines; }));
  }
  // Every offload handed to the pool ran to its end, queued ones included.
  EXPECT_GE(c.finished.load(), coroutines);
  EXPECT_LE(c.finished.load(), 3 * coroutines);
  expect_quiescent_after_destruction(c);
}

// cpu_threads = 1, no admission limit: one function runs (held), the others are queued in the
// arena when the runtime is destroyed; they all still run.
TEST(Runtime, DestructionRunsOffloadsQueuedBehindASaturatedPool) {
  constexpr int coroutines = 8;
  shutdown_counters c;
  c.release = false;
  {
    ferry::runtime rt(ferry::runtime_options{.cpu_threads = 1,
                                             .admission = ferry::admission_policy::unbounded()});
    std::vector<ferry::test::spawned> coros;
    for (int i = 0; i < coroutines; ++i) {
      coros.push_back(ferry::test::spawn_checked(rt.get_executor(), offload_rounds(c, 1)));
      coros.back().may_not_finish();  // the runtime's destruction may destroy it suspended
    }
    ASSERT_TRUE(ferry::test::wait_until(
        [&] { return c.started.load() == 1 && rt.stats().cpu.submitted == coroutines; }));
    const ferry::cpu_pool_stats s = rt.stats().cpu;
    EXPECT_EQ(s.in_flight, static_cast<std::size_t>(coroutines));
    EXPECT_EQ(c.started.load(), 1);
    c.release = true;
  }
  EXPECT_EQ(c.started.load(), coroutines);
  EXPECT_EQ(c.finished.load(), coroutines);
  expect_quiescent_after_destruction(c);
}

// max_offloads_in_flight = 1: the others wait for an admission slot when the runtime is
// destroyed; they are admitted and run.
TEST(Runtime, DestructionRunsOffloadsWaitingForAdmission) {
  constexpr int coroutines = 8;
  shutdown_counters c;
  c.release = false;
  {
    ferry::runtime rt(ferry::runtime_options{.cpu_threads = 2, .max_offloads_in_flight = 1});
    std::vector<ferry::test::spawned> coros;
    for (int i = 0; i < coroutines; ++i) {
      coros.push_back(ferry::test::spawn_checked(rt.get_executor(), offload_rounds(c, 1)));
      coros.back().may_not_finish();  // the runtime's destruction may destroy it suspended
    }
    ASSERT_TRUE(ferry::test::wait_until(
        [&] { return c.started.load() == 1 && rt.stats().cpu.submitted == coroutines; }));
    const ferry::cpu_pool_stats s = rt.stats().cpu;
    EXPECT_EQ(s.in_flight, 1u);
    EXPECT_EQ(s.waiting, static_cast<std::size_t>(coroutines - 1));
    c.release = true;
  }
  EXPECT_EQ(c.started.load(), coroutines);
  EXPECT_EQ(c.finished.load(), coroutines);
  expect_quiescent_after_destruction(c);
}

// Coroutines suspended on timers and on to_thread when the runtime goes away are destroyed
// without running; the blocking call in flight finishes first.
TEST(Runtime, DestructionWithSleepingAndBlockingCoroutines) {
  shutdown_counters c;
  c.release = false;
  std::atomic<int> blocking_started{0};
  std::atomic<int> blocking_finished{0};
  {
    ferry::runtime rt;
    std::vector<ferry::test::spawned> coros;
    for (int i = 0; i < 4; ++i) {
      coros.push_back(ferry::test::spawn_checked(rt.get_executor(), [&c]() -> ferry::task<void> {
        co_await ferry::sleep(hang_guard);
        c.resumed.fetch_add(1);
      }));
      coros.back().may_not_finish();  // the runtime's destruction may destroy it suspended
      coros.push_back(ferry::test::spawn_checked(
          rt.get_executor(), [&c, &blocking_started, &blocking_finished]() -> ferry::task<void> {
            co_await ferry::to_thread([&] {
              blocking_started.fetch_add(1);
              ferry::test::wait_until([&] { return c.release.load(); });
              blocking_finished.fetch_add(1);
            });
            c.resumed.fetch_add(1);
          }));
      coros.back().may_not_finish();  // the runtime's destruction may destroy it suspended
    }
    ASSERT_TRUE(ferry::test::wait_until([&] { return blocking_started.load() == 4; }));
    c.release = true;
  }
  EXPECT_EQ(blocking_finished.load(), 4);
  expect_quiescent_after_destruction(c);
}

}  // namespace
