// tests/io/task_group_test.cpp — ferry::task_group, ferry::task_handle and
// ferry::exception_group (io/task_group.hpp).
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <ferry/ferry.hpp>
#include <ferry/io/detail/child_strand.hpp>
#include <ferry/io/outcome.hpp>
#include <ferry/io/semaphore.hpp>
#include <ferry/io/sleep.hpp>
#include <ferry/io/task_group.hpp>
#include <ferry/io/timeout.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ferry_test.hpp"

namespace {

using namespace ferry::test;

// The messages of an exception_group, in order.
std::vector<std::string> messages_of(const ferry::exception_group& group) {
  std::vector<std::string> out;
  for (const auto& e : group.exceptions()) out.push_back(message_of(e));
  return out;
}

// Completes only when cancelled; records whether the cancellation handler ran inside the
// child's own context (`in_context()`), i.e. whether the cancellation was emitted there.
struct cancel_record {
  std::atomic<int> calls{0};
  std::atomic<bool> in_context{false};
  std::atomic<bool> hooked{false};  // the cancellation handler is installed
};

template <class Token>
auto async_until_cancelled(std::function<bool()> in_context, cancel_record& record, Token&& token) {
  return asio::async_initiate<Token, void(boost::system::error_code)>(
      [&record](auto handler, std::function<bool()> in_context) {
        using handler_type = decltype(handler);
        auto slot = asio::get_associated_cancellation_slot(handler);
        auto ex = asio::get_associated_executor(handler);
        auto h = std::make_shared<handler_type>(std::move(handler));
        slot.assign([h, slot, ex, in_context, &record](asio::cancellation_type_t) mutable {
          record.in_context = in_context();
          record.calls.fetch_add(1);
          asio::post(ex, [h, slot]() mutable {
            slot.clear();
            handler_type handler = std::move(*h);
            std::move(handler)(boost::system::error_code(asio::error::operation_aborted));
          });
        });
        record.hooked = true;
      },
      token,
      std::move(in_context));
}

// Whether the caller runs inside `ex`, a strand (of any of the kinds a child may run on).
std::function<bool()> running_in(const asio::any_io_executor& ex) {
  if (auto* s = ex.target<asio::strand<asio::io_context::executor_type>>()) {
    return [s = *s] { return s.running_in_this_thread(); };
  }
  if (auto* s = ex.target<ferry::detail::child_strand>()) {
    return [s = *s] { return s.running_in_this_thread(); };
  }
  return [] { return false; };
}

// A child that waits in async_until_cancelled, checking its own executor.
ferry::task<void> until_cancelled(cancel_record& record) {
  auto ex = co_await asio::this_coro::executor;
  auto op = async_until_cancelled(running_in(ex), record, asio::use_awaitable);
  co_await std::move(op);
}

}  // namespace

TEST(TaskGroupExceptionGroup, WhatSummarisesTheCountAndTheFirstMessage) {
  auto a = std::make_exception_ptr(std::runtime_error("first"));
  auto b = std::make_exception_ptr(42);
  ferry::exception_group one({a});
  EXPECT_STREQ(one.what(), "ferry::exception_group: 1 failure: first");
  ferry::exception_group two({a, b});
  EXPECT_STREQ(two.what(), "ferry::exception_group: 2 failures; first: first");
  EXPECT_EQ(two.exceptions().size(), 2u);
  ferry::exception_group copy = two;  // copies share the list
  EXPECT_EQ(&copy.exceptions(), &two.exceptions());
  ferry::exception_group unknown({b});
  EXPECT_STREQ(unknown.what(), "ferry::exception_group: 1 failure: unknown exception");
  const std::exception& base = one;
  EXPECT_STREQ(base.what(), one.what());
}

TEST(TaskGroup, JoinWaitsForEveryChildAndResultsAreReadableAfterIt) {
  asio::io_context io;
  ferry::semaphore gate(0);
  std::optional<ferry::task_handle<int>> h1, h2;
  std::optional<ferry::task_handle<void>> h3;
  bool joined = false;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    ferry::task_group tg{co_await asio::this_coro::executor};
    h1 = tg.spawn(value_after(gate, 1));
    h2 = tg.spawn(value_soon(2));
    h3 = tg.spawn(ferry::sleep(0ms));
    co_await tg.join();
    joined = true;
  });
  io.poll();
  EXPECT_FALSE(joined);
  EXPECT_TRUE(h2->done());
  EXPECT_FALSE(h1->done());
  gate.release();
  io.run();
  ASSERT_TRUE(joined);
  EXPECT_EQ(h1->result(), 1);
  EXPECT_EQ(h2->result(), 2);
  EXPECT_NO_THROW(h3->result());
}

TEST(TaskGroup, ResultBeforeTheJoinThrowsLogicError) {
  asio::io_context io;
  ferry::task_group tg{io};
  auto h = tg.spawn(value_soon(3));
  io.run();
  io.restart();
  EXPECT_TRUE(h.done());
  EXPECT_THROW(h.result(), std::logic_error);  // finished, but the group was not joined
  auto r = run(io, tg.join());
  EXPECT_TRUE(r.has_value());
  EXPECT_EQ(h.result(), 3);
  ferry::task_handle<int> empty;
  EXPECT_FALSE(empty.valid());
  EXPECT_THROW(empty.result(), std::logic_error);
}

TEST(TaskGroup, FirstFailureCancelsTheSiblingsAndSurfacesAsAnExceptionGroup) {
  asio::io_context io;
  probe a, b;
  bool siblings_finished_at_throw = false;
  std::vector<std::string> messages;
  std::string what;
  std::optional<ferry::task_handle<void>> ha;
  auto r = run(io, [&]() -> ferry::task<void> {
    ferry::task_group tg{co_await asio::this_coro::executor};
    ha = tg.spawn(wait_forever(a));
    tg.spawn(fail_soon<void>("boom"));
    tg.spawn(wait_forever(b));
    try {
      co_await tg.join();
    } catch (const ferry::exception_group& e) {
      siblings_finished_at_throw = a.finished && b.finished;
      messages = messages_of(e);
      what = e.what();
      throw;
    }
  }());
  EXPECT_THROW(r.value(), ferry::exception_group);
  EXPECT_TRUE(siblings_finished_at_throw);
  EXPECT_TRUE(a.aborted && b.aborted);
  EXPECT_EQ(messages, std::vector<std::string>{"boom"});  // the cancelled siblings are not failures
  EXPECT_EQ(what, "ferry::exception_group: 1 failure: boom");
  try {
    ha->result();
    ADD_FAILURE() << "a cancelled child has no value";
  } catch (const boost::system::system_error& e) {
    EXPECT_EQ(e.code(), asio::error::operation_aborted);
  }
}

TEST(TaskGroup, EveryFailureIsReportedInCompletionOrder) {
  // The second failure happens while the child handles the cancellation the first one caused:
  // it is still a failure (only operation_aborted from a cancelled child is not).
  asio::io_context io;
  auto failing_cleanup = []() -> ferry::task<void> {
    try {
      co_await ferry::sleep(1h);
    } catch (const boost::system::system_error&) {
      throw std::runtime_error("cleanup");
    }
  };
  std::vector<std::string> messages;
  auto r = run(io, [&]() -> ferry::task<void> {
    ferry::task_group tg{co_await asio::this_coro::executor};
    tg.spawn(failing_cleanup());
    tg.spawn(fail_soon<void>("boom"));
    try {
      co_await tg.join();
    } catch (const ferry::exception_group& e) {
      messages = messages_of(e);
    }
  }());
  EXPECT_TRUE(r.has_value());
  EXPECT_EQ(messages, (std::vector<std::string>{"boom", "cleanup"}));
}

TEST(TaskGroup, ChildrenCancelledByTheGroupAreNotFailures) {
  asio::io_context io;
  probe a, b;
  auto r = run(io, [&]() -> ferry::task<void> {
    ferry::task_group tg{co_await asio::this_coro::executor};
    tg.spawn(wait_forever(a));
    tg.spawn(wait_forever(b));
    co_await ferry::sleep(0ms);
    tg.cancel();
    co_await tg.join();  // no exception
  }());
  EXPECT_TRUE(r.has_value()) << message_of(r.error());
  EXPECT_TRUE(a.finished && a.aborted);
  EXPECT_TRUE(b.finished && b.aborted);
}

TEST(TaskGroup, ChildrenCancelledBeforeTheyStartNeverRunAndSpawnsWhileCancellingNeverRun) {
  asio::io_context io;
  ferry::task_group tg{io};
  probe before, after;
  auto h1 = tg.spawn(wait_forever(before));
  tg.cancel();  // before the loop ran the child's start
  auto h2 = tg.spawn(wait_forever(after));
  auto r = run(io, tg.join());
  EXPECT_TRUE(r.has_value());
  EXPECT_FALSE(before.started);
  EXPECT_FALSE(after.started);
  EXPECT_THROW(h1.result(), boost::system::system_error);
  EXPECT_THROW(h2.result(), boost::system::system_error);
}

TEST(TaskGroup, OperationAbortedFromAChildTheGroupDidNotCancelIsAFailure) {
  asio::io_context io;
  auto self_aborting = []() -> ferry::task<void> {
    co_await ferry::sleep(0ms);
    throw boost::system::system_error(asio::error::operation_aborted);
  };
  std::size_t failures = 0;
  auto r = run(io, [&]() -> ferry::task<void> {
    ferry::task_group tg{co_await asio::this_coro::executor};
    tg.spawn(self_aborting());
    try {
      co_await tg.join();
    } catch (const ferry::exception_group& e) {
      failures = e.exceptions().size();
      EXPECT_TRUE(is_operation_aborted(e.exceptions().front()));
    }
  }());
  EXPECT_TRUE(r.has_value());
  EXPECT_EQ(failures, 1u);
}

TEST(TaskGroup, CancellingTheJoinerCancelsEveryChildWaitsAndRethrowsTheCancellation) {
  asio::io_context io;
  asio::cancellation_signal signal;
  probe a, b;
  bool aborted = false;
  bool children_finished_at_throw = false;
  auto coro = ferry::test::spawn_checked(
      io,
      [&]() -> ferry::task<void> {
        ferry::task_group tg{co_await asio::this_coro::executor};
        tg.spawn(wait_forever(a));
        tg.spawn(wait_forever(b));
        try {
          co_await tg.join();
        } catch (const boost::system::system_error& e) {
          aborted = e.code() == asio::error::operation_aborted;
          children_finished_at_throw = a.finished && b.finished;
        }
      },
      signal.slot());
  io.poll();
  ASSERT_TRUE(a.started && b.started);
  signal.emit(asio::cancellation_type::terminal);
  io.run_for(ferry::test::hang_guard);
  EXPECT_TRUE(aborted);
  EXPECT_TRUE(children_finished_at_throw);
  EXPECT_TRUE(a.aborted && b.aborted);
}

TEST(TaskGroup, FailuresTakePrecedenceOverTheJoinersCancellation) {
  asio::io_context io;
  asio::cancellation_signal signal;
  auto failing_cleanup = []() -> ferry::task<void> {
    try {
      co_await ferry::sleep(1h);
    } catch (const boost::system::system_error&) {
      throw std::runtime_error("cleanup after cancel");
    }
  };
  std::vector<std::string> messages;
  auto coro = ferry::test::spawn_checked(
      io,
      [&]() -> ferry::task<void> {
        ferry::task_group tg{co_await asio::this_coro::executor};
        tg.spawn(failing_cleanup());
        try {
          co_await tg.join();
        } catch (const ferry::exception_group& e) {
          messages = messages_of(e);
        }
      },
      signal.slot());
  io.poll();
  signal.emit(asio::cancellation_type::terminal);
  io.run_for(ferry::test::hang_guard);
  EXPECT_EQ(messages, std::vector<std::string>{"cleanup after cancel"});
}

TEST(TaskGroup, ChildrenCanSpawnSiblingsAndJoinWaitsForThem) {
  asio::io_context io;
  int leaves = 0;
  auto r = run(io, [&]() -> ferry::task<void> {
    ferry::task_group tg{co_await asio::this_coro::executor};
    auto leaf = [&]() -> ferry::task<void> {
      co_await ferry::sleep(1ms);
      ++leaves;
    };
    auto parent = [&]() -> ferry::task<void> {
      for (int i = 0; i < 3; ++i) {
        co_await ferry::sleep(0ms);
        tg.spawn(leaf());
      }
    };
    tg.spawn(parent());
    co_await tg.join();
    EXPECT_EQ(leaves, 3);  // the siblings spawned during the join were awaited too
  }());
  EXPECT_TRUE(r.has_value());
  EXPECT_EQ(leaves, 3);
}

TEST(TaskGroup, AfterTheJoinSpawnThrowsAndALaterJoinGivesTheSameOutcome) {
  asio::io_context io;
  ferry::task_group tg{io};
  tg.spawn(fail_soon<void>("only once"));
  auto first = run(io, tg.join());
  auto second = run(io, tg.join());
  EXPECT_THROW(first.value(), ferry::exception_group);
  EXPECT_THROW(second.value(), ferry::exception_group);
  EXPECT_THROW(tg.spawn(value_soon(1)), std::logic_error);
}

TEST(TaskGroup, ASecondConcurrentJoinIsRejected) {
  asio::io_context io;
  ferry::semaphore gate(0);
  ferry::task_group tg{io};
  tg.spawn(value_after(gate, 1));
  std::exception_ptr first = std::make_exception_ptr(0), second;
  bool first_done = false;
  tg.async_join(asio::bind_executor(io, [&](std::exception_ptr e) {
    first = e;
    first_done = true;
  }));
  tg.async_join(asio::bind_executor(io, [&](std::exception_ptr e) { second = e; }));
  io.poll();
  EXPECT_FALSE(first_done);
  EXPECT_THROW(std::rethrow_exception(second), std::logic_error);
  gate.release();
  io.run();
  EXPECT_TRUE(first_done);
  EXPECT_FALSE(first);
}

TEST(TaskGroup, JoinWithoutChildrenCompletes) {
  asio::io_context io;
  ferry::task_group tg{io};
  auto r = run(io, tg.join());
  EXPECT_TRUE(r.has_value());
}

TEST(TaskGroup, AsyncJoinAcceptsACallbackTokenAndCompletesByPost) {
  asio::io_context io;
  ferry::task_group tg{io};
  bool called = false;
  tg.async_join(asio::bind_executor(io, [&](std::exception_ptr e) { called = !e; }));
  EXPECT_FALSE(called);  // never inline, even with nothing to wait for
  io.run();
  EXPECT_TRUE(called);
}

TEST(TaskGroup, DestructorCancelsTheChildrenWithoutBlocking) {
  asio::io_context io;
  probe a, b;
  bool finished_right_after_destructor = true;
  auto coro = ferry::test::spawn_checked(io, [&]() -> ferry::task<void> {
    {
      ferry::task_group tg{co_await asio::this_coro::executor};
      tg.spawn(wait_forever(a));
      tg.spawn(wait_forever(b));
      co_await ferry::sleep(0ms);
    }                                              // never joined
    finished_right_after_destructor = a.finished;  // the destructor did not wait
  });
  io.run_for(ferry::test::hang_guard);
  EXPECT_TRUE(io.stopped());  // no work left: the children were cancelled and finished
  EXPECT_FALSE(finished_right_after_destructor);
  EXPECT_TRUE(a.started && a.finished && a.aborted);
  EXPECT_TRUE(b.started && b.finished && b.aborted);
}

TEST(TaskGroup, ChildrenOfADestroyedContextAreReportedAndNothingDangles) {
  // The children's context goes away before they ran: they are reported as not run, the join
  // (on another context) completes, and the shared state is freed (checked under ASan/LSan).
  asio::io_context io1;
  std::exception_ptr join_error = std::make_exception_ptr(0);
  bool joined = false;
  std::optional<ferry::task_group> tg;
  std::optional<ferry::task_handle<int>> h;
  {
    asio::io_context io2;
    tg.emplace(io2.get_executor());
    h = tg->spawn(value_soon(1));
    tg->async_join(asio::bind_executor(io1, [&](std::exception_ptr e) {
      join_error = e;
      joined = true;
    }));
  }
  io1.run();
  EXPECT_TRUE(joined);
  EXPECT_FALSE(join_error);
  EXPECT_THROW(h->result(), boost::system::system_error);
  tg.reset();
}

TEST(TaskGroup, ChildrenRunOnTheGroupsExecutor) {
  asio::io_context io;
  auto strand = asio::make_strand(io);
  int on_io = 0;
  int on_strand = 0;
  auto on_io_child = [&]() -> ferry::task<void> {
    co_await ferry::sleep(0ms);
    on_io += io.get_executor().running_in_this_thread() ? 1 : 0;
  };
  auto on_strand_child = [&]() -> ferry::task<void> {
    co_await ferry::sleep(0ms);
    on_strand += strand.running_in_this_thread() ? 1 : 0;
  };
  ferry::task_group g1{io.get_executor()};
  ferry::task_group g2{strand};
  for (int i = 0; i < 3; ++i) {
    g1.spawn(on_io_child());
    g2.spawn(on_strand_child());
  }
  auto r1 = run(io, g1.join());
  auto r2 = run(io, g2.join());
  EXPECT_TRUE(r1.has_value() && r2.has_value());
  EXPECT_EQ(on_io, 3);
  EXPECT_EQ(on_strand, 3);
}

TEST(TaskGroup, CancellationIsEmittedInTheChildsOwnContext) {
  // cancel() is called from a foreign thread while the children run elsewhere: each child's
  // cancellation handler must still run inside the child's own strand — a user strand, the
  // strand a group on a plain io executor gives each child, or the one it gives each child on a
  // multi-threaded pool.
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread loop([&] { io.run_for(ferry::test::hang_guard); });
  asio::thread_pool pool(2);
  auto strand = asio::make_strand(io);
  std::vector<std::unique_ptr<ferry::task_group>> groups;
  groups.push_back(std::make_unique<ferry::task_group>(strand));
  groups.push_back(std::make_unique<ferry::task_group>(io.get_executor()));
  groups.push_back(std::make_unique<ferry::task_group>(pool.get_executor()));
  std::vector<cancel_record> records(groups.size());
  for (std::size_t i = 0; i < groups.size(); ++i) {
    groups[i]->spawn(until_cancelled(records[i]));
  }
  ASSERT_TRUE(ferry::test::wait_until(
      [&] { return records[0].hooked && records[1].hooked && records[2].hooked; }));
  std::atomic<int> joined{0};
  for (auto& g : groups) {
    g->cancel();
    g->async_join(asio::bind_executor(io, [&](std::exception_ptr) { ++joined; }));
  }
  EXPECT_TRUE(ferry::test::wait_until([&] { return joined.load() == 3; }));
  work.reset();
  loop.join();
  pool.join();
  for (std::size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].calls.load(), 1) << "group " << i;
    EXPECT_TRUE(records[i].in_context.load()) << "group " << i;
  }
}

TEST(TaskGroup, HandleCancelStopsOneChildOnly) {
  asio::io_context io;
  ferry::semaphore gate(0);
  probe a;
  ferry::task_group tg{io};
  auto h1 = tg.spawn(wait_forever(a));
  auto h2 = tg.spawn(value_after(gate, 8));
  io.poll();
  h1.cancel();
  io.poll();
  EXPECT_TRUE(a.finished && a.aborted);
  EXPECT_TRUE(h1.done());
  EXPECT_FALSE(h2.done());  // the sibling was not cancelled
  gate.release();
  auto r = run(io, tg.join());
  EXPECT_TRUE(r.has_value());  // the cancelled child is not a failure
  EXPECT_THROW(h1.result(), boost::system::system_error);
  EXPECT_EQ(h2.result(), 8);
}

TEST(TaskGroup, SpawnIsThreadSafe) {
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread loop([&] { io.run_for(ferry::test::hang_guard); });
  ferry::semaphore gate(0);
  ferry::task_group tg{io};
  std::atomic<int> ran{0};
  auto child = [&](int i) -> ferry::task<int> {
    ran.fetch_add(1);
    co_return i;
  };
  tg.spawn(value_after(gate, -1));  // keeps the group busy while the threads spawn
  std::atomic<bool> joined{false};
  std::exception_ptr join_error = std::make_exception_ptr(0);
  tg.async_join(asio::bind_executor(io, [&](std::exception_ptr e) {
    join_error = e;
    joined = true;
  }));
  std::vector<std::thread> spawners;
  std::vector<std::vector<ferry::task_handle<int>>> handles(4);
  for (int t = 0; t < 4; ++t) {
    spawners.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) handles[t].push_back(tg.spawn(child(t * 100 + i)));
    });
  }
  for (auto& s : spawners) s.join();
  gate.release();
  EXPECT_TRUE(ferry::test::wait_until([&] { return joined.load(); }));
  work.reset();
  loop.join();
  EXPECT_FALSE(join_error);
  EXPECT_EQ(ran.load(), 200);
  for (int t = 0; t < 4; ++t) {
    for (int i = 0; i < 50; ++i) EXPECT_EQ(handles[t][i].result(), t * 100 + i);
  }
}

TEST(TaskGroup, ComposesWithTimeout) {
  asio::io_context io;
  probe a;
  bool finished_at_throw = false;
  auto r = run(io, [&]() -> ferry::task<void> {
    ferry::task_group tg{co_await asio::this_coro::executor};
    tg.spawn(wait_forever(a));
    try {
      co_await ferry::timeout(1ms, tg.join());
    } catch (const ferry::timeout_error&) {
      finished_at_throw = a.finished;
      throw;
    }
  }());
  EXPECT_THROW(r.value(), ferry::timeout_error);
  EXPECT_TRUE(finished_at_throw);
  EXPECT_TRUE(a.aborted);
}

TEST(TaskGroup, AZeroTimeoutStillRunsTheJoin) {
  // The join is attempted even though its deadline has passed: it cancels and awaits the
  // children, and closes the group.
  asio::io_context io;
  probe a;
  ferry::task_group tg{io};
  tg.spawn(wait_forever(a));
  auto r = run(io, ferry::timeout(0ms, tg.join()));
  EXPECT_THROW(r.value(), ferry::timeout_error);
  EXPECT_TRUE(a.finished);
  EXPECT_THROW(tg.spawn(value_soon(1)), std::logic_error);  // closed by the join
}

TEST(TaskGroup, EmptyExecutorIsRejected) {
  EXPECT_THROW(ferry::task_group{asio::any_io_executor()}, std::invalid_argument);
}

TEST(TaskGroup, MoveOnlyResultsCanBeMovedOutOfTheHandle) {
  asio::io_context io;
  ferry::task_group tg{io};
  auto h =
      tg.spawn([]() -> ferry::task<std::unique_ptr<int>> { co_return std::make_unique<int>(9); }());
  auto r = run(io, tg.join());
  ASSERT_TRUE(r.has_value());
  std::unique_ptr<int> p = std::move(h.result());
  EXPECT_EQ(*p, 9);
}

FERRY_CO_TEST(TaskGroup, SiblingsCanBeSpawnedFromAPoolThread) {
  ferry::task_group tg{co_await asio::this_coro::executor};
  std::atomic<int> ran{0};
  std::atomic<bool> on_loop{true};
  auto leaf = [&]() -> ferry::task<void> {
    ++ran;
    if (!ferry::runtime::current()) on_loop = false;
    co_return;
  };
  auto parent = [&]() -> ferry::task<void> {
    co_await ferry::offload([&] {
      for (int i = 0; i < 10; ++i) tg.spawn(leaf());
    });
  };
  tg.spawn(parent());
  co_await tg.join();
  EXPECT_EQ(ran.load(), 10);
  EXPECT_TRUE(on_loop.load());  // spawned from a pool thread, run on the group's executor
}
