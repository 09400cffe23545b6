// tests/io/gather_test.cpp — ferry::gather, ferry::gather_settled and ferry::outcome
// (io/gather.hpp, io/outcome.hpp).
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <ferry/ferry.hpp>
#include <ferry/io/gather.hpp>
#include <ferry/io/outcome.hpp>
#include <ferry/io/semaphore.hpp>
#include <ferry/io/sleep.hpp>
#include <memory>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <tuple>
#include <variant>
#include <vector>

#include "ferry_test.hpp"

using namespace asio::experimental::awaitable_operators;

namespace {

using namespace ferry::test;

ferry::task<void> nothing() { co_return; }

ferry::task<int> immediate(int v) { co_return v; }

}  // namespace

TEST(GatherOutcome, HoldsAValueOrAnException) {
  ferry::outcome<int> good(7);
  EXPECT_TRUE(good.has_value());
  EXPECT_TRUE(static_cast<bool>(good));
  EXPECT_EQ(good.value(), 7);
  EXPECT_FALSE(good.error());

  auto bad = ferry::outcome<int>::failure(std::make_exception_ptr(std::runtime_error("no")));
  EXPECT_FALSE(bad.has_value());
  EXPECT_EQ(message_of(bad.error()), "no");
  EXPECT_THROW(bad.value(), std::runtime_error);

  ferry::outcome<void> ok;
  EXPECT_TRUE(ok.has_value());
  EXPECT_NO_THROW(ok.value());
  auto failed = ferry::outcome<void>::failure(std::make_exception_ptr(std::logic_error("x")));
  EXPECT_FALSE(failed.has_value());
  EXPECT_THROW(failed.value(), std::logic_error);

  ferry::outcome<std::unique_ptr<int>> owned(std::make_unique<int>(3));
  std::unique_ptr<int> taken = std::move(owned).value();
  EXPECT_EQ(*taken, 3);
}

TEST(GatherOutcome, FailureRejectsANullException) {
  EXPECT_THROW(ferry::outcome<int>::failure(nullptr), std::invalid_argument);
  EXPECT_THROW(ferry::outcome<void>::failure(nullptr), std::invalid_argument);
}

TEST(Gather, ReturnsValuesInArgumentOrderWhateverTheCompletionOrder) {
  asio::io_context io;
  ferry::semaphore g0(0), g1(0), g2(0);
  std::optional<std::tuple<int, int, std::monostate, int>> result;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    result = co_await ferry::gather(
        value_after(g0, 10), value_after(g1, 11), nothing(), value_after(g2, 12));
  });
  io.poll();  // every child waits on its gate
  EXPECT_EQ(g0.waiting() + g1.waiting() + g2.waiting(), 3u);
  g2.release();  // complete in reverse order
  io.poll();
  g1.release();
  io.poll();
  EXPECT_FALSE(result);
  g0.release();
  io.run();
  ASSERT_TRUE(result);
  EXPECT_EQ(std::get<0>(*result), 10);
  EXPECT_EQ(std::get<1>(*result), 11);
  EXPECT_EQ(std::get<3>(*result), 12);
}

TEST(Gather, ChildrenRunConcurrently) {
  // Child 0 can only finish once child 1 has run: sequential execution would never complete.
  asio::io_context io;
  ferry::semaphore gate(0);
  auto releaser = [&]() -> ferry::task<int> {
    gate.release();
    co_return 2;
  };
  auto r = run(io, ferry::gather(value_after(gate, 1), releaser()));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r.value(), std::make_tuple(1, 2));
}

TEST(Gather, ChildrenStartOnlyAfterTheCallerSuspends) {
  asio::io_context io;
  bool started = false;
  bool started_before_await = true;
  auto child = [&]() -> ferry::task<void> {
    started = true;
    co_return;
  };
  auto r = run(io, [&]() -> ferry::task<void> {
    auto g = ferry::gather(child());
    started_before_await = started;
    co_await std::move(g);
  }());
  EXPECT_TRUE(r.has_value());
  EXPECT_FALSE(started_before_await);
  EXPECT_TRUE(started);
}

TEST(Gather, FirstFailureCancelsTheOthersWaitsForThemAndIsRethrown) {
  asio::io_context io;
  probe a, b;
  bool losers_finished_at_throw = false;
  auto r = run(io, [&]() -> ferry::task<void> {
    try {
      co_await ferry::gather(wait_forever(a), fail_soon("boom"), wait_forever(b));
    } catch (const std::runtime_error&) {
      losers_finished_at_throw = a.finished && b.finished;
      throw;
    }
  }());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(message_of(r.error()), "boom");
  EXPECT_TRUE(losers_finished_at_throw);
  EXPECT_TRUE(a.aborted);
  EXPECT_TRUE(b.aborted);
}

TEST(Gather, TheFirstFailureByCompletionOrderWins) {
  // Child 0 fails late (while handling its cancellation); child 1 failed first.
  asio::io_context io;
  auto late = []() -> ferry::task<int> {
    try {
      co_await ferry::sleep(1h);
    } catch (const boost::system::system_error&) {
      throw std::runtime_error("late");
    }
    co_return 0;
  };
  auto r = run(io, ferry::gather(late(), fail_soon("first")));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(message_of(r.error()), "first");
}

TEST(Gather, CancellingTheAwaiterCancelsEveryChildAndWaitsForThem) {
  asio::io_context io;
  probe a, b;
  const awaiter_cancellation r = cancel_the_awaiter(
      io, ferry::gather(wait_forever(a), wait_forever(b)), [&] { return a.started && b.started; });
  ASSERT_TRUE(r.started_before_cancel);
  EXPECT_TRUE(r.completed);
  EXPECT_TRUE(is_operation_aborted(r.error));
  EXPECT_TRUE(a.finished && a.aborted);
  EXPECT_TRUE(b.finished && b.aborted);
}

TEST(Gather, ChildrenThatFinishDespiteTheCancellationStillGiveTheirValues) {
  // gather's outcome is its children's: cancellation is forwarded, not substituted.
  asio::io_context io;
  asio::cancellation_signal signal;
  auto shielded = [](int v) -> ferry::task<int> {
    co_await asio::this_coro::reset_cancellation_state(
        [](asio::cancellation_type_t) { return asio::cancellation_type::none; });
    co_await ferry::sleep(1ms);
    co_return v;
  };
  std::exception_ptr error;
  std::tuple<int, int> values{};
  asio::co_spawn(io,
                 ferry::gather(shielded(1), shielded(2)),
                 asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e, auto v) {
                   error = e;
                   values = v;
                 }));
  io.poll();
  signal.emit(asio::cancellation_type::terminal);
  io.run();
  EXPECT_FALSE(error);
  EXPECT_EQ(values, std::make_tuple(1, 2));
}

TEST(Gather, ComposesWithAwaitableOperators) {
  asio::io_context io;
  probe a;
  std::size_t index = 99;
  auto r = run(io, [&]() -> ferry::task<void> {
    auto v = co_await (ferry::gather(wait_forever(a), immediate(1)) || ferry::sleep(1ms));
    index = v.index();
  }());
  EXPECT_TRUE(r.has_value());
  EXPECT_EQ(index, 1u);
  EXPECT_TRUE(a.finished && a.aborted);
}

TEST(Gather, VectorOfTasksReturnsValuesInOrder) {
  asio::io_context io;
  ferry::semaphore gate(0);
  std::vector<ferry::task<int>> tasks;
  for (int i = 0; i < 5; ++i) tasks.push_back(value_after(gate, i * i));
  std::optional<std::vector<int>> result;
  auto coro = ferry::test::spawn_checked(
      io, [&]() -> ferry::task<void> { result = co_await ferry::gather(std::move(tasks)); });
  io.poll();
  EXPECT_EQ(gate.waiting(), 5u);
  gate.release(5);
  io.run();
  ASSERT_TRUE(result);
  EXPECT_EQ(*result, (std::vector<int>{0, 1, 4, 9, 16}));
}

TEST(Gather, EmptyGathersCompleteAtOnce) {
  asio::io_context io;
  auto r1 = run(io, ferry::gather(std::vector<ferry::task<int>>{}));
  ASSERT_TRUE(r1.has_value());
  EXPECT_TRUE(r1.value().empty());
  auto r2 = run(io, []() -> ferry::task<void> { co_await ferry::gather(); }());
  EXPECT_TRUE(r2.has_value());
}

TEST(Gather, VectorOfVoidTasksReturnsVoidAndRethrowsTheFirstFailure) {
  asio::io_context io;
  int ran = 0;
  auto count = [&]() -> ferry::task<void> {
    ++ran;
    co_return;
  };
  std::vector<ferry::task<void>> tasks;
  for (int i = 0; i < 4; ++i) tasks.push_back(count());
  auto ok = run(io, ferry::gather(std::move(tasks)));
  EXPECT_TRUE(ok.has_value());
  EXPECT_EQ(ran, 4);

  probe p;
  std::vector<ferry::task<void>> failing;
  failing.push_back(wait_forever(p));
  failing.push_back([]() -> ferry::task<void> {
    co_await ferry::sleep(0ms);
    throw std::out_of_range("vector child");
  }());
  auto bad = run(io, ferry::gather(std::move(failing)));
  ASSERT_FALSE(bad.has_value());
  EXPECT_THROW(bad.value(), std::out_of_range);
  EXPECT_TRUE(p.finished && p.aborted);
}

TEST(Gather, ChildrenRunOnTheCallersExecutorAndTheCallerResumesThere) {
  asio::io_context io;
  auto strand = asio::make_strand(io);
  int children_on_strand = 0;
  bool resumed_on_strand = false;
  auto child = [&]() -> ferry::task<int> {
    co_await ferry::sleep(0ms);
    children_on_strand += strand.running_in_this_thread() ? 1 : 0;
    co_return 0;
  };
  auto coro = ferry::test::spawn_checked(strand, [&]() -> ferry::task<void> {
    co_await ferry::gather(child(), child(), child());
    resumed_on_strand = strand.running_in_this_thread();
  });
  io.run();
  EXPECT_EQ(children_on_strand, 3);
  EXPECT_TRUE(resumed_on_strand);
}

TEST(Gather, MoveOnlyAndNonDefaultConstructibleResults) {
  struct no_default {
    explicit no_default(int v) : value(v) {}
    int value;
  };
  asio::io_context io;
  auto make_ptr = []() -> ferry::task<std::unique_ptr<int>> { co_return std::make_unique<int>(5); };
  auto make_nd = []() -> ferry::task<no_default> { co_return no_default(6); };
  auto r = run(io, [&]() -> ferry::task<int> {
    auto [p, n] = co_await ferry::gather(make_ptr(), make_nd());
    co_return *p + n.value;
  }());
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r.value(), 11);
}

TEST(Gather, ChildrenOnAMultiThreadedExecutorRunInParallel) {
  // Two children that each wait until both are running at the same time: they must be on two
  // threads at once (the per-child strands do not serialise them).
  ferry::runtime rt({.io_threads = 1, .cpu_threads = 2});
  std::atomic<int> arrived{0};
  auto rendezvous = [&]() -> ferry::task<bool> {
    arrived.fetch_add(1);
    co_return ferry::test::wait_until([&] { return arrived.load() == 2; });
  };
  auto f = asio::co_spawn(
      rt.cpu().get_executor(), ferry::gather(rendezvous(), rendezvous()), asio::use_future);
  auto [a, b] = f.get();
  EXPECT_TRUE(a);
  EXPECT_TRUE(b);
}

FERRY_CO_TEST(Gather, OffloadsAreGatheredAndAFailureStopsTheOthers) {
  auto [x, y] =
      co_await ferry::gather(ferry::offload([] { return 20; }), ferry::offload([] { return 22; }));
  EXPECT_EQ(x + y, 42);

  std::atomic<bool> started{false};
  std::atomic<bool> saw_stop{false};
  auto spin = [&](std::stop_token st) {
    started = true;
    while (!st.stop_requested()) std::this_thread::sleep_for(100us);
    saw_stop = true;
    return 0;
  };
  // The failure comes once the offload runs (the state the test is about): earlier, gather
  // would cancel it before it started, and it would never see the stop request.
  auto fail = [&]() -> ferry::task<int> {
    while (!started.load()) co_await ferry::sleep(1ms);
    throw std::runtime_error("offload sibling failed");
  };
  std::string what;
  try {
    co_await ferry::gather(ferry::offload(spin), fail());
  } catch (const std::runtime_error& e) {
    what = e.what();
  }
  EXPECT_EQ(what, "offload sibling failed");
  EXPECT_TRUE(saw_stop.load());  // the offload had returned before gather rethrew
}

TEST(GatherSettled, ReturnsEveryOutcomeAndStopsNobody) {
  asio::io_context io;
  ferry::semaphore gate(0);
  auto releaser = [&]() -> ferry::task<void> {
    co_await ferry::sleep(1ms);  // after the failure
    gate.release();
  };
  auto r = run(
      io, ferry::gather_settled(fail_soon("settled failure"), value_after(gate, 9), releaser()));
  ASSERT_TRUE(r.has_value());
  auto& [a, b, c] = r.value();
  EXPECT_FALSE(a.has_value());
  EXPECT_EQ(message_of(a.error()), "settled failure");
  ASSERT_TRUE(b.has_value());  // not cancelled by its sibling's failure
  EXPECT_EQ(b.value(), 9);
  EXPECT_TRUE(c.has_value());
}

TEST(GatherSettled, VectorGivesOneOutcomePerTask) {
  asio::io_context io;
  std::vector<ferry::task<int>> tasks;
  tasks.push_back(immediate(1));
  tasks.push_back(fail_soon("two"));
  tasks.push_back(immediate(3));
  auto r = run(io, ferry::gather_settled(std::move(tasks)));
  ASSERT_TRUE(r.has_value());
  const auto& outcomes = r.value();
  ASSERT_EQ(outcomes.size(), 3u);
  EXPECT_EQ(outcomes[0].value(), 1);
  EXPECT_THROW(outcomes[1].value(), std::runtime_error);
  EXPECT_EQ(message_of(outcomes[1].error()), "two");
  EXPECT_EQ(outcomes[2].value(), 3);
}

TEST(GatherSettled, CancellingTheAwaiterGivesAbortedOutcomesWithoutThrowing) {
  asio::io_context io;
  asio::cancellation_signal signal;
  probe a;
  bool returned = false;
  bool child_aborted = false;
  bool next_await_threw = false;
  bool finished_before_return = false;
  auto coro = ferry::test::spawn_checked(
      io,
      [&]() -> ferry::task<void> {
        auto [o] = co_await ferry::gather_settled(wait_forever(a));
        returned = true;
        finished_before_return = a.finished;
        child_aborted = is_operation_aborted(o.error());
        try {
          co_await ferry::sleep(0ms);  // the awaiting coroutine stays cancelled
        } catch (const boost::system::system_error&) {
          next_await_threw = true;
        }
      },
      signal.slot());
  io.poll();
  signal.emit(asio::cancellation_type::terminal);
  io.run();
  EXPECT_TRUE(returned);
  EXPECT_TRUE(finished_before_return);
  EXPECT_TRUE(child_aborted);
  EXPECT_TRUE(next_await_threw);
}

// The stop of a child that has not started yet is marked before it starts and emitted right
// after its first step — never posted behind it — so a caller cancelled before the children
// start cancels a sleep(0) child every time, though its timer is due in the same pass of the
// loop (the ordering timeout(0ms, sleep(0ms)) needs too).
TEST(Gather, ACancellationBeforeTheChildrenStartCancelsEvenASleepZeroEveryTime) {
  for (int i = 0; i < 50; ++i) {
    asio::io_context io;
    asio::cancellation_signal signal;
    std::exception_ptr error;
    bool completed = false;
    asio::co_spawn(
        io,
        ferry::gather(value_soon(1), value_soon(2)),
        asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e, auto&&...) {
          error = e;
          completed = true;
        }));
    signal.emit(asio::cancellation_type::terminal);  // queued behind the gather's start
    io.run();
    ASSERT_TRUE(completed);
    EXPECT_TRUE(is_operation_aborted(error)) << "attempt " << i;
  }
}
