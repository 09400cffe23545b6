// tests/io/generator_test.cpp — ferry::generator (io/generator.hpp).
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/append.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <ferry/ferry.hpp>
#include <ferry/io/generator.hpp>
#include <ferry/io/sleep.hpp>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "ferry_test.hpp"

using namespace asio::experimental::awaitable_operators;

namespace {

using ferry::test::is_operation_aborted;

// Counts live instances: a body's locals must be destroyed on every path.
struct tracked {
  explicit tracked(std::atomic<int>& live) : live_(&live) { ++*live_; }
  tracked(const tracked&) = delete;
  tracked& operator=(const tracked&) = delete;
  ~tracked() { --*live_; }
  std::atomic<int>* live_;
};

// Not default-constructible: awaited tasks returning it take the optional path.
struct labelled {
  explicit labelled(std::string s) : text(std::move(s)) {}
  std::string text;
};

// g++ 12 at -O1 inlines Asio's coroutine frame allocation (aligned_alloc) into these coroutines
// and then cannot match it with the frame's sized operator delete (which frees it correctly).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

ferry::generator<int> count_to(int n, std::atomic<int>& live) {
  tracked local(live);
  for (int i = 1; i <= n; ++i) {
    co_await ferry::sleep(1ms);
    co_yield i;
  }
}

ferry::generator<int> yields_then_throws() {
  co_yield 1;
  co_await ferry::sleep(0ms);
  throw std::runtime_error("boom");
}

ferry::generator<int> sleeps_long(std::atomic<int>& live, bool catch_cancellation) {
  tracked local(live);
  co_yield 1;
  try {
    co_await ferry::sleep(1h);
  } catch (const boost::system::system_error& e) {
    if (!catch_cancellation || e.code() != asio::error::operation_aborted) throw;
  }
  co_yield -1;  // only when the cancellation was caught
}

// Records how each await of a cancelled step, and of the step after it, ends.
ferry::generator<int> sticky_cancellation(std::vector<std::string>& log) {
  for (int step = 0; step < 2; ++step) {
    for (int i = 0; i < 2; ++i) {
      try {
        co_await ferry::sleep(step == 0 && i == 0 ? std::chrono::hours(1) : 0ms);
        log.push_back("ok");
      } catch (const boost::system::system_error& e) {
        log.push_back(e.code() == asio::error::operation_aborted ? "aborted" : "other");
      }
    }
    co_yield step;
  }
}

ferry::task<labelled> make_label(std::string s) {
  co_await ferry::sleep(0ms);
  co_return labelled(std::move(s));
}

ferry::task<int> add_later(int a, int b) {
  co_await ferry::sleep(1ms);
  co_return a + b;
}

ferry::generator<std::string> mixed_awaits() {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex);
  timer.expires_after(1ms);
  co_await timer.async_wait(asio::deferred);  // deferred op, void(error_code)
  co_await asio::post(ex, asio::deferred);    // deferred op, void()
  co_yield "timer";
  int one = co_await asio::post(ex, asio::append(asio::deferred, 1));  // void(int)
  auto [two, three] =
      co_await asio::post(ex, asio::append(asio::deferred, 2, std::string("three")));
  int four = co_await asio::post(ex, asio::append(asio::deferred, boost::system::error_code(), 4));
  co_yield std::to_string(one) + std::to_string(two) + three + std::to_string(four);
  int sum = co_await add_later(2, 3);  // task<int>
  co_yield "sum " + std::to_string(sum);
  labelled l = co_await make_label("label");  // task<not default-constructible>
  co_yield l.text;
  co_await ferry::sleep(1ms);  // task<void>
  timer.expires_after(1h);
  asio::post(ex, [&timer] { timer.cancel(); });
  std::string outcome = "no error";
  try {
    co_await timer.async_wait(asio::deferred);
  } catch (const boost::system::system_error& e) {
    outcome = e.code() == asio::error::operation_aborted ? "aborted" : e.code().message();
  }
  co_yield "timer error: " + outcome;
}

ferry::generator<int> offloads() {
  int a = co_await ferry::offload([] { return 20; });                  // default token: a task
  int b = co_await ferry::offload([] { return 22; }, asio::deferred);  // deferred
  co_yield a + b;
  co_await ferry::offload([] { throw std::invalid_argument("from the pool"); });
}

// Yields whether the body runs on `strand` after each kind of await.
ferry::generator<bool> on_strand(asio::strand<asio::io_context::executor_type> strand) {
  co_yield strand.running_in_this_thread();
  for (int i = 0; i < 3; ++i) {
    co_await ferry::sleep(0ms);
    co_yield strand.running_in_this_thread();
    co_await asio::post(asio::deferred);
    co_yield strand.running_in_this_thread();
    co_await ferry::offload([] { return 0; });
    co_yield strand.running_in_this_thread();
  }
}

ferry::generator<std::unique_ptr<int>> move_only() {
  auto p = std::make_unique<int>(1);
  co_yield std::move(p);
  co_yield std::make_unique<int>(2);
}

ferry::generator<int> evens(ferry::generator<int> source) {
  while (auto v = co_await source.next()) {
    if (*v % 2 == 0) co_yield *v;
  }
}

ferry::generator<int> numbers(int n) {
  for (int i = 1; i <= n; ++i) {
    co_await asio::post(co_await asio::this_coro::executor, asio::deferred);
    co_yield i;
  }
}

ferry::generator<int> starts(bool& started) {
  started = true;
  co_yield 1;
}

ferry::generator<int> first_await_throws_if_cancelled(bool& saw_cancellation) {
  try {
    co_await ferry::sleep(0ms);
  } catch (const boost::system::system_error& e) {
    saw_cancellation = e.code() == asio::error::operation_aborted;
  }
  co_yield 7;
}

#pragma GCC diagnostic pop

}  // namespace

TEST(Generator, YieldsEveryValueThenEnds) {
  asio::io_context io;
  std::atomic<int> live{0};
  std::vector<int> got;
  bool ended_again = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto g = count_to(3, live);
    while (auto v = co_await g.next()) got.push_back(*v);
    EXPECT_FALSE(g.done() && live != 0);
    ended_again = !(co_await g.next()).has_value();
    EXPECT_TRUE(g.done());
  });
  io.run();
  EXPECT_EQ(got, (std::vector<int>{1, 2, 3}));
  EXPECT_TRUE(ended_again);
  EXPECT_EQ(live.load(), 0);
}

TEST(Generator, BodyIsLazy) {
  asio::io_context io;
  bool started = false;
  std::optional<int> first;
  auto g = starts(started);
  EXPECT_FALSE(started);
  EXPECT_FALSE(g.done());
  g.async_next(asio::bind_executor(
      io, [&](std::exception_ptr, std::optional<int> v) { first = std::move(v); }));
  EXPECT_FALSE(started);  // the step is posted, not run inline
  io.run();
  EXPECT_TRUE(started);
  EXPECT_EQ(first, std::optional<int>(1));
}

TEST(Generator, AwaitsDeferredOperationsAndTasks) {
  asio::io_context io;
  std::vector<std::string> got;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto g = mixed_awaits();
    while (auto v = co_await g.next()) got.push_back(*v);
  });
  io.run();
  EXPECT_EQ(
      got,
      (std::vector<std::string>{"timer", "12three4", "sum 5", "label", "timer error: aborted"}));
}

FERRY_CO_TEST(Generator, AwaitsOffloadWithEitherToken) {
  auto g = offloads();
  auto first = co_await g.next();
  EXPECT_EQ(first, std::optional<int>(42));
  try {
    co_await g.next();
    ADD_FAILURE() << "the offload's exception did not surface";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "from the pool");
  }
  EXPECT_FALSE((co_await g.next()).has_value());
}

TEST(Generator, ExceptionInTheBodySurfacesAtNextThenTheGeneratorIsFinished) {
  asio::io_context io;
  std::vector<std::string> events;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto g = yields_then_throws();
    events.push_back(std::to_string(*co_await g.next()));
    try {
      co_await g.next();
    } catch (const std::runtime_error& e) {
      events.push_back(e.what());
    }
    events.push_back((co_await g.next()).has_value() ? "value" : "end");
  });
  io.run();
  EXPECT_EQ(events, (std::vector<std::string>{"1", "boom", "end"}));
}

TEST(Generator, BreakingOutEarlyDestroysTheBody) {
  asio::io_context io;
  std::atomic<int> live{0};
  int seen_live = -1;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    {
      auto g = count_to(100, live);
      while (auto v = co_await g.next()) {
        if (*v == 2) break;
      }
      seen_live = live;  // the body's local is alive while the generator is
    }
    {
      auto never_started = count_to(5, live);  // destroyed before its first step
    }
    EXPECT_EQ(live.load(), 0);
  });
  io.run();
  EXPECT_EQ(seen_live, 1);
  EXPECT_EQ(live.load(), 0);
}

TEST(Generator, MoveOnlyValues) {
  asio::io_context io;
  std::vector<int> got;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto g = move_only();
    while (auto v = co_await g.next()) got.push_back(**v);
  });
  io.run();
  EXPECT_EQ(got, (std::vector<int>{1, 2}));
}

TEST(Generator, BodyMayConsumeAnotherGenerator) {
  asio::io_context io;
  std::vector<int> got;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto g = evens(numbers(7));
    while (auto v = co_await g.next()) got.push_back(*v);
  });
  io.run();
  EXPECT_EQ(got, (std::vector<int>{2, 4, 6}));
}

TEST(Generator, CancellingNextCancelsWhatTheBodyAwaits) {
  asio::io_context io;
  std::atomic<int> live{0};
  auto g = sleeps_long(live, /*catch_cancellation=*/false);
  std::optional<int> first;
  g.async_next(asio::bind_executor(
      io, [&](std::exception_ptr, std::optional<int> v) { first = std::move(v); }));
  io.run();
  ASSERT_EQ(first, std::optional<int>(1));
  io.restart();
  asio::cancellation_signal signal;
  std::exception_ptr error;
  bool done = false;
  g.async_next(asio::bind_cancellation_slot(
      signal.slot(), asio::bind_executor(io, [&](std::exception_ptr e, std::optional<int> v) {
        done = true;
        error = e;
        EXPECT_FALSE(v.has_value());
      })));
  io.poll();  // the body now sleeps for an hour
  EXPECT_FALSE(done);
  signal.emit(asio::cancellation_type::terminal);
  io.run();
  EXPECT_TRUE(done);
  EXPECT_TRUE(is_operation_aborted(error));
  EXPECT_TRUE(g.done());
  EXPECT_EQ(live.load(), 0);  // the body unwound
}

TEST(Generator, BodyMayCatchTheCancellationAndGoOn) {
  asio::io_context io;
  std::atomic<int> live{0};
  std::vector<int> got;
  std::size_t race_index = 99;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    auto g = sleeps_long(live, /*catch_cancellation=*/true);
    got.push_back(*co_await g.next());
    // A timeout on next(): the sleeping body is cancelled, catches it and yields -1, which
    // the `||` discards because the timer won; the next next() ends the generator.
    auto r = co_await (g.next() || ferry::sleep(5ms));
    race_index = r.index();
    while (auto v = co_await g.next()) got.push_back(*v);
  });
  io.run();
  EXPECT_EQ(race_index, 1u);
  EXPECT_EQ(got, (std::vector<int>{1}));
  EXPECT_EQ(live.load(), 0);
}

TEST(Generator, CancellationSticksForTheRestOfTheStepOnly) {
  asio::io_context io;
  std::vector<std::string> log;
  auto g = sticky_cancellation(log);
  asio::cancellation_signal signal;
  std::vector<int> got;
  auto collect = [&](std::exception_ptr e, std::optional<int> v) {
    EXPECT_FALSE(e);
    if (v) got.push_back(*v);
  };
  g.async_next(asio::bind_cancellation_slot(signal.slot(), asio::bind_executor(io, collect)));
  io.poll();  // the body sleeps for an hour
  signal.emit(asio::cancellation_type::terminal);
  io.run();
  io.restart();
  g.async_next(asio::bind_executor(io, collect));
  io.run();
  EXPECT_EQ(got, (std::vector<int>{0, 1}));
  EXPECT_EQ(log, (std::vector<std::string>{"aborted", "aborted", "ok", "ok"}));
}

TEST(Generator, CancellationBeforeTheStepRunsFailsTheBodysFirstAwait) {
  asio::io_context io;
  bool saw_cancellation = false;
  auto g = first_await_throws_if_cancelled(saw_cancellation);
  asio::cancellation_signal signal;
  std::optional<int> value;
  g.async_next(asio::bind_cancellation_slot(
      signal.slot(), asio::bind_executor(io, [&](std::exception_ptr e, std::optional<int> v) {
        EXPECT_FALSE(e);
        value = std::move(v);
      })));
  signal.emit(asio::cancellation_type::partial);  // the step is posted, the body has not run
  io.run();
  EXPECT_TRUE(saw_cancellation);
  EXPECT_EQ(value, std::optional<int>(7));
}

TEST(Generator, OverlappingNextIsALogicError) {
  asio::io_context io;
  std::atomic<int> live{0};
  auto g = count_to(3, live);
  g.async_next(asio::bind_executor(io, [](std::exception_ptr, std::optional<int>) {}));
  EXPECT_THROW(g.async_next(asio::bind_executor(io, [](std::exception_ptr, std::optional<int>) {})),
               std::logic_error);
  io.run();
  ferry::generator<int> empty;
  EXPECT_TRUE(empty.done());
  EXPECT_THROW(
      empty.async_next(asio::bind_executor(io, [](std::exception_ptr, std::optional<int>) {})),
      std::logic_error);
  bool caught = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    try {
      co_await empty.next();
    } catch (const std::logic_error&) {
      caught = true;
    }
  });
  io.restart();
  io.run();
  EXPECT_TRUE(caught);
}

TEST(Generator, DestroyingTheLoopMidStepFreesConsumerAndBody) {
  std::atomic<int> live{0};
  bool resumed = false;
  {
    asio::io_context io;
    auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
      auto g = sleeps_long(live, false);
      co_await g.next();
      co_await g.next();  // the body sleeps for an hour: never completes
      resumed = true;
    });
    coro.may_not_finish();  // destroyed suspended with the loop: what the test checks
    io.run_for(20ms);
    EXPECT_EQ(live.load(), 1);
  }  // destroys the timer's handler → the step → the consumer's frame → the generator
  EXPECT_FALSE(resumed);
  EXPECT_EQ(live.load(), 0);  // ASan would also report the frames if they leaked
}

TEST(Generator, BodyRunsOnTheConsumersExecutor) {
  ferry::runtime rt({.io_threads = 2, .cpu_threads = 2});
  auto strand = asio::make_strand(rt.io_context());
  std::atomic<bool> finished{false};
  std::atomic<int> mismatches{0}, steps{0};
  auto consumer = ferry::test::spawn_checked(strand, [&]() -> ferry::task<void> {
    auto g = on_strand(strand);
    while (auto on = co_await g.next()) {
      if (!*on) ++mismatches;                              // the body
      if (!strand.running_in_this_thread()) ++mismatches;  // the consumer
      ++steps;
    }
    finished = true;
  });
  // Also from a coroutine on the cpu pool, with an offload inside the body.
  std::atomic<int> pool_result{0};
  auto on_pool = ferry::test::spawn_checked(rt.cpu().get_executor(), [&]() -> ferry::task<void> {
    auto g = offloads();
    pool_result = *co_await g.next();
  });
  ASSERT_TRUE(ferry::test::wait_until([&] { return consumer.ended() && on_pool.ended(); }));
  EXPECT_TRUE(finished.load());
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(steps.load(), 10);
  EXPECT_EQ(pool_result.load(), 42);
}
