// tests/bridge/offload_test.cpp — the contract of ferry::offload (bridge/offload.hpp).
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>
#include <condition_variable>
#include <ferry/ferry.hpp>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>

#include "ferry_test.hpp"

using namespace asio::experimental::awaitable_operators;

namespace {

using ferry::test::is_operation_aborted;

// Holds pool workers until released (hang guard: 60 s).
using ferry::test::gate;

// The start of a function that honours its stop token: says it has started, then keeps busy
// until the stop is requested.
void start_and_run_until_stopped(std::atomic<bool>& started, const std::stop_token& st) {
  started = true;
  ferry::test::wait_until([&] { return st.stop_requested(); });
}

struct custom_error : std::runtime_error {
  custom_error(const std::string& what, int code) : std::runtime_error(what), code(code) {}
  int code;
};

// Completes when `count` callbacks have called `done()`; usable from coroutines on one executor.
class countdown {
 public:
  countdown(asio::any_io_executor ex, int count) : timer_(ex), left_(count) {
    timer_.expires_at(asio::steady_timer::time_point::max());
  }
  void done() {
    if (--left_ == 0) timer_.cancel();
  }
  ferry::task<void> wait() {
    if (left_ == 0) co_return;
    co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
  }

 private:
  asio::steady_timer timer_;
  int left_;
};

const asio::cancellation_type kCancelTypes[] = {
    asio::cancellation_type::terminal,
    asio::cancellation_type::partial,
    asio::cancellation_type::total,
};

}  // namespace

// --- results, exceptions, where things run ------------------------------------------------

TEST(Offload, ResumesOnIoThreadAndRunsOnPool) {
  ferry::runtime rt({.cpu_threads = 2});
  const bool ok = rt.run([&]() -> ferry::task<bool> {
    const auto io_thread = std::this_thread::get_id();
    std::thread::id pool_thread;
    bool on_pool = false;
    const int v = co_await ferry::offload([&] {
      pool_thread = std::this_thread::get_id();
      on_pool = rt.cpu().running_in_this_thread();
      return 41 + 1;
    });
    EXPECT_EQ(v, 42);
    EXPECT_TRUE(on_pool);
    EXPECT_NE(pool_thread, io_thread);
    co_return std::this_thread::get_id() == io_thread&& rt.running_in_this_thread();
  }());
  EXPECT_TRUE(ok);
}

TEST(Offload, ExceptionArrivesIntact) {
  const auto outcome = ferry::run([]() -> ferry::task<std::string> {
    try {
      co_await ferry::offload([]() -> int { throw custom_error("no such row", 404); });
    } catch (const custom_error& e) {
      co_return std::string(e.what()) + "/" + std::to_string(e.code);
    }
    co_return "not thrown";
  }());
  EXPECT_EQ(outcome, "no such row/404");
}

TEST(Offload, VoidFunction) {
  std::atomic<int> runs{0};
  const auto outcome = ferry::run([&]() -> ferry::task<std::string> {
    co_await ferry::offload([&] { ++runs; });
    try {
      co_await ferry::offload([] { throw std::logic_error("void failed"); });
    } catch (const std::logic_error& e) {
      co_return e.what();
    }
    co_return "not thrown";
  }());
  EXPECT_EQ(outcome, "void failed");
  EXPECT_EQ(runs.load(), 1);
}

TEST(Offload, MoveOnlyFunctionAndResult) {
  const int v = ferry::run([]() -> ferry::task<int> {
    auto owned = std::make_unique<int>(20);
    // Named, not a temporary inside the co_await expression: g++ 12 destroys such temporaries
    // twice (see docs/guide.md, "Known compiler issues").
    auto f = [p = std::move(owned)]() mutable { return std::make_unique<int>(*p + 22); };
    std::unique_ptr<int> r = co_await ferry::offload(std::move(f));
    co_return r ? *r : -1;
  }());
  EXPECT_EQ(v, 42);
}

TEST(Offload, FunctionReturningReferenceDeliversACopy) {
  static int shared_value = 5;
  const int v = ferry::run([]() -> ferry::task<int> {
    int copy = co_await ferry::offload([]() -> int& { return shared_value; });
    co_return copy;
  }());
  EXPECT_EQ(v, 5);
}

TEST(Offload, StopTokenIsPassed) {
  const bool possible = ferry::run([]() -> ferry::task<bool> {
    co_return co_await ferry::offload([](std::stop_token st) { return st.stop_possible(); });
  }());
  EXPECT_TRUE(possible);
}

TEST(Offload, ExplicitPool) {
  ferry::cpu_pool pool(2);
  ferry::runtime rt({.cpu_threads = 1});
  const bool on_pool = rt.run([&]() -> ferry::task<bool> {
    co_return co_await ferry::offload(pool, [&] { return pool.running_in_this_thread(); });
  }());
  EXPECT_TRUE(on_pool);
}

// --- which pool offload(f) picks ----------------------------------------------------------

TEST(Offload, UsesTheRuntimesPoolFromItsIoContextAndStrands) {
  ferry::runtime rt({.io_threads = 2, .cpu_threads = 1});
  const auto checks = rt.run([&]() -> ferry::task<std::pair<bool, bool>> {
    const bool direct =
        co_await ferry::offload([&] { return ferry::cpu_pool::current() == &rt.cpu(); });
    // A strand of the runtime's io_context (the slow lookup path).
    const bool strand = co_await asio::co_spawn(
        asio::make_strand(rt.io_context()),
        [&]() -> ferry::task<bool> {
          co_return co_await ferry::offload(
              [&] { return ferry::cpu_pool::current() == &rt.cpu(); });
        },
        asio::use_awaitable);
    co_return std::pair{direct, strand};
  }());
  EXPECT_TRUE(checks.first);
  EXPECT_TRUE(checks.second);
}

TEST(Offload, OutsideAnyRuntimeUsesTheDefaultPool) {
  ferry::runtime rt({.cpu_threads = 1});
  auto pool = ferry::offload([] { return ferry::cpu_pool::current(); }, asio::use_future).get();
  EXPECT_NE(pool, nullptr);
  EXPECT_NE(pool, &rt.cpu());
  EXPECT_EQ(pool, &ferry::detail::default_cpu_pool());
}

TEST(Offload, FromACoroutineOnAPoolUsesThatPool) {
  ferry::cpu_pool pool(2);
  auto same =
      asio::co_spawn(
          pool.get_executor(),
          [&]() -> ferry::task<bool> {
            co_return co_await ferry::offload([&] { return ferry::cpu_pool::current() == &pool; });
          },
          asio::use_future)
          .get();
  EXPECT_TRUE(same);
}

// --- completion tokens --------------------------------------------------------------------

TEST(OffloadToken, UseFuture) {
  ferry::cpu_pool pool(1);
  EXPECT_EQ(ferry::offload(
                pool, [] { return 7; }, asio::use_future)
                .get(),
            7);
  auto failing = ferry::offload(
      pool, []() -> int { throw custom_error("future", 1); }, asio::use_future);
  EXPECT_THROW(failing.get(), custom_error);
  auto void_future = ferry::offload(
      pool, [] {}, asio::use_future);
  EXPECT_NO_THROW(void_future.get());
}

TEST(OffloadToken, DeferredRunsOnlyWhenInitiated) {
  std::atomic<int> runs{0};
  const int v = ferry::run([&]() -> ferry::task<int> {
    auto op = ferry::offload([&] { return ++runs * 10; }, asio::deferred);
    co_await ferry::sleep(1ms);
    EXPECT_EQ(runs.load(), 0);
    co_return co_await std::move(op)(asio::use_awaitable);
  }());
  EXPECT_EQ(v, 10);
  EXPECT_EQ(runs.load(), 1);
}

TEST(OffloadToken, AsTupleDoesNotThrow) {
  const auto outcome = ferry::run([]() -> ferry::task<std::string> {
    auto [error, value] = co_await ferry::offload([]() -> int { throw custom_error("tuple", 3); },
                                                  asio::as_tuple(asio::use_awaitable));
    EXPECT_EQ(value, 0);
    try {
      if (error) std::rethrow_exception(error);
    } catch (const custom_error& e) {
      co_return e.what();
    }
    co_return "no error";
  }());
  EXPECT_EQ(outcome, "tuple");
}

TEST(OffloadToken, CallbackBoundToAStrandRunsInTheStrand) {
  ferry::cpu_pool pool(1);
  asio::io_context io;
  auto strand = asio::make_strand(io);
  int calls = 0;
  bool in_strand = false;
  int value = 0;
  ferry::offload(
      pool, [] { return 9; }, asio::bind_executor(strand, [&](std::exception_ptr e, int v) {
        ++calls;
        in_strand = strand.running_in_this_thread();
        value = e ? -1 : v;
      }));
  io.run();  // returns once the completion ran: the operation held work on the strand
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(in_strand);
  EXPECT_EQ(value, 9);
}

TEST(OffloadToken, PlainCallbackRunsOnceOffThePool) {
  ferry::cpu_pool pool(1);
  std::promise<std::pair<int, bool>> result;
  std::atomic<int> calls{0};
  ferry::offload(
      pool,
      [] { return 5; },
      [&](std::exception_ptr e, int v) {
        ++calls;
        result.set_value({e ? -1 : v, pool.running_in_this_thread()});
      });
  auto [v, on_pool] = result.get_future().get();
  EXPECT_EQ(v, 5);
  EXPECT_FALSE(on_pool);  // resumed by post on its (system) executor, never inline on the pool
  EXPECT_EQ(calls.load(), 1);
}

// --- cancellation -------------------------------------------------------------------------

// Before f starts: f never runs and the handler completes at once, while the pool is saturated.
TEST(OffloadCancel, BeforeStartNeverRunsAndCompletesAtOnce) {
  for (const auto type : kCancelTypes) {
    SCOPED_TRACE(static_cast<int>(type));
    gate blocker;
    std::atomic<bool> ran{false};
    {
      ferry::cpu_pool pool(1);
      asio::io_context io;
      std::atomic<bool> blocker_started{false};
      asio::post(pool.get_executor(), [&] {
        blocker_started = true;
        blocker.wait();
      });
      ASSERT_TRUE(ferry::test::wait_until([&] { return blocker_started.load(); }));

      ferry::test::cancellable_completion done;
      ferry::offload(pool, ferry::test::mark_and_return(ran, 1), done.handler(io));
      done.cancel(type);
      io.run();  // the aborted completion is posted at once: the pool is still blocked
      EXPECT_EQ(done.calls, 1);
      EXPECT_TRUE(is_operation_aborted(done.error));
      blocker.open();
    }  // the pool drains: the cancelled job is dropped without running f
    EXPECT_FALSE(ran.load());
  }
}

// After f started: stop is requested, and the handler runs only after f returned.
TEST(OffloadCancel, AfterStartRequestsStopAndWaitsForF) {
  for (const auto type : kCancelTypes) {
    SCOPED_TRACE(static_cast<int>(type));
    ferry::cpu_pool pool(1);
    asio::io_context io;
    std::atomic<bool> started{false};
    std::atomic<bool> returned{false};
    asio::cancellation_signal signal;
    int calls = 0;
    bool returned_at_resume = false;
    int value = 0;
    std::exception_ptr error;
    ferry::offload(
        pool,
        [&](std::stop_token st) {
          start_and_run_until_stopped(started, st);
          std::this_thread::sleep_for(5ms);  // still busy after the stop request
          returned = true;
          return st.stop_requested() ? 7 : -7;
        },
        asio::bind_cancellation_slot(signal.slot(),
                                     asio::bind_executor(io, [&](std::exception_ptr e, int v) {
                                       ++calls;
                                       returned_at_resume = returned.load();
                                       value = v;
                                       error = e;
                                     })));
    ASSERT_TRUE(ferry::test::wait_until([&] { return started.load(); }));
    signal.emit(type);
    io.run();
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(returned_at_resume);
    EXPECT_EQ(value, 7);  // f's own outcome
    EXPECT_FALSE(error);
  }
}

TEST(OffloadCancel, NoneTypeIsIgnored) {
  ferry::cpu_pool pool(1);
  asio::io_context io;
  asio::cancellation_signal signal;
  int value = 0;
  ferry::offload(
      pool,
      [] { return 3; },
      asio::bind_cancellation_slot(signal.slot(), ferry::test::value_into(io, value)));
  signal.emit(asio::cancellation_type::none);
  io.run();
  EXPECT_EQ(value, 3);
}

TEST(OffloadCancel, AwaitableOrSleepWinsAndLoserHasFinished) {
  std::atomic<bool> started{false};
  std::atomic<bool> finished{false};
  const auto index = ferry::run([&]() -> ferry::task<std::size_t> {
    auto r = co_await (ferry::offload([&](std::stop_token st) {
                         start_and_run_until_stopped(started, st);
                         finished = true;
                         return 1;
                       }) ||
                       ferry::sleep(5ms));
    // Whether f had started or not, it is not running now.
    EXPECT_EQ(started.load(), finished.load());
    co_return r.index();
  }());
  EXPECT_EQ(index, 1u);
}

TEST(OffloadCancel, AwaitableOrOffloadWins) {
  const auto r = ferry::run([]() -> ferry::task<std::variant<int, std::monostate>> {
    co_return co_await (ferry::offload([] { return 42; }) || ferry::sleep(1h));
  }());
  ASSERT_EQ(r.index(), 0u);
  EXPECT_EQ(std::get<0>(r), 42);
}

// --- backpressure -------------------------------------------------------------------------

TEST(OffloadBackpressure, NeverExceedsTheBound) {
  constexpr int kOffloads = 40;
  std::atomic<int> running{0};
  std::atomic<int> peak{0};
  std::atomic<int> done{0};
  ferry::runtime rt({.cpu_threads = 2, .max_offloads_in_flight = 2});
  rt.run([&]() -> ferry::task<void> {
    const auto ex = co_await asio::this_coro::executor;
    countdown all(ex, kOffloads);
    std::size_t waiting_seen = 0;
    std::vector<ferry::test::spawned> coros;
    for (int i = 0; i < kOffloads; ++i) {
      coros.push_back(ferry::test::spawn_checked(ex, [&]() -> ferry::task<void> {
        co_await ferry::offload([&] {
          const int now = ++running;
          int p = peak.load();
          while (now > p && !peak.compare_exchange_weak(p, now)) {
          }
          std::this_thread::sleep_for(1ms);
          --running;
        });
        ++done;
        all.done();
      }));
    }
    waiting_seen = rt.stats().cpu.waiting;
    co_await all.wait();
    for (const auto& coro : coros) {
      while (!coro.ended()) co_await ferry::sleep(0ms);  // its end is reported after done()
    }
    EXPECT_GT(waiting_seen, 0u);  // 40 offloads started at once: most had to wait for a slot
  }());
  EXPECT_EQ(done.load(), kOffloads);
  EXPECT_LE(peak.load(), 2);
  EXPECT_GE(peak.load(), 1);
  EXPECT_EQ(rt.stats().cpu.waiting, 0u);
}

TEST(OffloadBackpressure, CancelWhileWaitingForASlotLosesNothing) {
  ferry::cpu_pool pool(1, /*max_in_flight=*/1);
  asio::io_context io;
  gate blocker;
  std::atomic<bool> blocker_started{false};
  int blocker_value = 0;
  ferry::offload(
      pool,
      [&] {
        blocker_started = true;
        blocker.wait();
        return 1;
      },
      ferry::test::value_into(io, blocker_value));
  ASSERT_TRUE(ferry::test::wait_until([&] { return blocker_started.load(); }));

  std::atomic<bool> waiter_ran{false};
  ferry::test::cancellable_completion waiter;
  ferry::offload(pool, ferry::test::mark_and_return(waiter_ran, 2), waiter.handler(io));
  EXPECT_EQ(pool.stats().waiting, 1u);
  waiter.cancel();
  EXPECT_EQ(pool.stats().waiting, 0u);
  io.run_one();  // the waiter's aborted completion
  EXPECT_TRUE(is_operation_aborted(waiter.error));

  blocker.open();
  io.restart();
  io.run();
  EXPECT_EQ(blocker_value, 1);
  // The slot the blocker held is free again: a new offload runs.
  int third = 0;
  ferry::offload(
      pool, [] { return 3; }, ferry::test::value_into(io, third));
  io.restart();
  io.run();
  EXPECT_EQ(third, 3);
  EXPECT_FALSE(waiter_ran.load());
}

TEST(OffloadBackpressure, WaitersAreAdmittedInOrder) {
  ferry::cpu_pool pool(1, /*max_in_flight=*/1);
  asio::io_context io;
  gate blocker;
  std::atomic<bool> blocker_started{false};
  ferry::offload(
      pool,
      [&] {
        blocker_started = true;
        blocker.wait();
      },
      asio::bind_executor(io, [](std::exception_ptr) {}));
  ASSERT_TRUE(ferry::test::wait_until([&] { return blocker_started.load(); }));
  std::vector<int> order;  // written by one pool thread at a time (bound 1), read after the drain
  std::mutex order_mutex;
  for (int i = 0; i < 8; ++i) {
    ferry::offload(
        pool,
        [&, i] {
          std::lock_guard lock(order_mutex);
          order.push_back(i);
        },
        asio::bind_executor(io, [](std::exception_ptr) {}));
  }
  blocker.open();
  io.run();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST(OffloadCancel, ThrowIfStopRequestedCompletesAsCancelled) {
  ferry::cpu_pool pool(1);
  asio::io_context io;
  std::atomic<bool> started{false};
  asio::cancellation_signal signal;
  std::exception_ptr error;
  ferry::offload(
      pool,
      [&](std::stop_token st) {
        start_and_run_until_stopped(started, st);
        ferry::throw_if_stop_requested(st);
        return 1;
      },
      asio::bind_cancellation_slot(signal.slot(), ferry::test::error_into(io, error)));
  ASSERT_TRUE(ferry::test::wait_until([&] { return started.load(); }));
  signal.emit(asio::cancellation_type::terminal);
  io.run();
  EXPECT_TRUE(is_operation_aborted(error));
  EXPECT_NO_THROW(ferry::throw_if_stop_requested(std::stop_token()));
}
