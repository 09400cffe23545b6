// tests/io/task_group_scope_test.cpp — ferry::task_group::scope (io/task_group.hpp), with cases
// translated from CPython's Lib/test/test_asyncio/test_taskgroups.py (each names its original).
//
// Where the CPython test sleeps for a while before something happens, these wait for a state (a
// child started, an event set); the long sleeps that must never complete wait for an hour.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <ferry/ferry.hpp>
#include <ferry/io/event.hpp>
#include <ferry/io/outcome.hpp>
#include <ferry/io/semaphore.hpp>
#include <ferry/io/sleep.hpp>
#include <ferry/io/task_group.hpp>
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

// The exception_group in `e`, or nullopt.
std::optional<ferry::exception_group> group_in(const std::exception_ptr& e) {
  try {
    if (e) std::rethrow_exception(e);
  } catch (const ferry::exception_group& group) {
    return group;
  } catch (...) {
  }
  return std::nullopt;
}

// Throws std::runtime_error(what) once `go` is set.
ferry::task<void> fail_when(ferry::event& go, std::string what) {
  co_await go.wait();
  throw std::runtime_error(what);
}

// Waits for an hour; counts in `cancelled` that it saw the cancellation, and rethrows it.
ferry::task<void> count_cancellation(int& cancelled, int by = 1) {
  try {
    co_await ferry::sleep(1h);
  } catch (const boost::system::system_error& e) {
    if (e.code() == asio::error::operation_aborted) cancelled += by;
    throw;
  }
}

// Runs the coroutine `f` on `pool` until the pool has no work left; false when an exception
// escaped `f`.
template <class F>
bool run_on(asio::thread_pool& pool, F&& f) {
  std::atomic<bool> done{false};
  asio::co_spawn(pool, std::forward<F>(f), [&done](std::exception_ptr e) {
    if (!e) done = true;
  });
  pool.wait();
  return done.load();
}

}  // namespace

// CPython: test_taskgroup_01. The scope returns the body's value once every child has finished,
// children included that are still running when the body returns.
TEST(TaskGroupScope, ReturnsTheBodysValueOnceEveryChildHasFinished) {
  asio::io_context io;
  ferry::semaphore gate(0);
  std::optional<ferry::task_handle<int>> h1, h2;
  bool body_returned = false;
  bool scope_returned = false;
  int value = 0;
  auto body = [&](ferry::task_group& tg) -> ferry::task<int> {
    h1 = tg.spawn(value_after(gate, 42));
    h2 = tg.spawn(value_soon(11));
    body_returned = true;
    co_return 7;
  };
  auto coro = spawn_checked(io, [&]() -> ferry::task<void> {
    value = co_await ferry::task_group::scope(body);
    scope_returned = true;
  });
  io.poll();
  EXPECT_TRUE(body_returned);
  EXPECT_TRUE(h2->done());
  EXPECT_FALSE(h1->done());
  EXPECT_FALSE(scope_returned);  // a child is still running
  gate.release();
  io.run();
  ASSERT_TRUE(scope_returned);
  EXPECT_EQ(value, 7);
  EXPECT_EQ(h1->result(), 42);
  EXPECT_EQ(h2->result(), 11);
}

// CPython: test_taskgroup_03. Cancelling one child through its handle is not a failure; the
// others carry on.
TEST(TaskGroupScope, CancellingOneChildIsNotAFailure) {
  asio::io_context io;
  probe p;
  std::optional<ferry::task_handle<void>> h1;
  std::optional<ferry::task_handle<int>> h2;
  auto body = [&](ferry::task_group& tg) -> ferry::task<void> {
    h1 = tg.spawn(wait_forever(p));
    co_await ferry::sleep(0ms);
    h1->cancel();
    h2 = tg.spawn(value_soon(11));
  };
  auto r = run(io, ferry::task_group::scope(io.get_executor(), body));
  ASSERT_TRUE(r.has_value()) << message_of(r.error());
  EXPECT_TRUE(p.finished && p.aborted);
  EXPECT_THROW(h1->result(), boost::system::system_error);
  EXPECT_EQ(h2->result(), 11);
}

// CPython: test_cancel_children_on_child_error (and test_taskgroup_04). A failing child cancels
// its siblings and the body; the scope raises the failures as one group once all have finished.
TEST(TaskGroupScope, AChildsFailureCancelsTheBodyAndTheSiblings) {
  asio::io_context io;
  ferry::event go;
  probe sibling;
  int body_cancelled = 0;
  bool after_scope = false;
  bool everyone_finished_at_throw = false;
  std::vector<std::string> messages;
  auto body = [&](ferry::task_group& tg) -> ferry::task<void> {
    tg.spawn(fail_when(go, "boom"));
    tg.spawn(fail_when(go, "boom"));
    tg.spawn(fail_when(go, "boom"));
    tg.spawn(wait_forever(sibling));
    go.set();
    co_await count_cancellation(body_cancelled);  // asyncio's `await sleep(10)` in the block
  };
  auto runner = [&]() -> ferry::task<void> {
    try {
      co_await ferry::task_group::scope(body);
    } catch (const ferry::exception_group& e) {
      messages = messages_of(e);
      everyone_finished_at_throw = sibling.finished && body_cancelled == 1;
      throw;
    }
    after_scope = true;
  };
  auto r = run(io, runner());
  EXPECT_THROW(r.value(), ferry::exception_group);
  EXPECT_FALSE(after_scope);
  EXPECT_TRUE(everyone_finished_at_throw);
  EXPECT_TRUE(sibling.aborted);
  EXPECT_EQ(body_cancelled, 1);
  // The three children may all have failed before the first failure's stop reached the others.
  EXPECT_GE(messages.size(), 1u);
  EXPECT_LE(messages.size(), 3u);
  for (const std::string& m : messages) EXPECT_EQ(m, "boom");
}

// CPython: test_cancellation and test_taskgroup_07. Cancelling the scope's awaiter cancels the
// body and every child, waits for them, and surfaces as the cancellation.
TEST(TaskGroupScope, CancellingTheAwaiterCancelsTheBodyAndEveryChild) {
  asio::io_context io;
  int cancelled = 0;
  bool body_waiting = false;
  auto body = [&](ferry::task_group& tg) -> ferry::task<void> {
    for (int i = 0; i < 5; ++i) tg.spawn(count_cancellation(cancelled));
    body_waiting = true;
    co_await count_cancellation(cancelled, 10);
  };
  auto r = cancel_the_awaiter(
      io, ferry::task_group::scope(io.get_executor(), body), [&] { return body_waiting; });
  EXPECT_TRUE(r.started_before_cancel);
  ASSERT_TRUE(r.completed);
  EXPECT_TRUE(is_operation_aborted(r.error));
  EXPECT_EQ(cancelled, 15);
}

// CPython: test_taskgroup_17. A scope without children, its awaiter cancelled.
TEST(TaskGroupScope, CancellingTheAwaiterOfAChildlessScope) {
  asio::io_context io;
  int cancelled = 0;
  bool body_waiting = false;
  auto body = [&](ferry::task_group&) -> ferry::task<void> {
    body_waiting = true;
    co_await count_cancellation(cancelled, 10);
  };
  auto r = cancel_the_awaiter(
      io, ferry::task_group::scope(io.get_executor(), body), [&] { return body_waiting; });
  ASSERT_TRUE(r.completed);
  EXPECT_TRUE(is_operation_aborted(r.error));
  EXPECT_EQ(cancelled, 10);
}

// CPython: test_taskgroup_18. A body that answers its awaiter's cancellation with another
// exception fails the scope with it.
TEST(TaskGroupScope, ABodyThatTurnsTheCancellationIntoAnErrorFailsTheScope) {
  asio::io_context io;
  int cancelled = 0;
  bool body_waiting = false;
  auto body = [&](ferry::task_group&) -> ferry::task<void> {
    body_waiting = true;
    try {
      co_await count_cancellation(cancelled, 10);
    } catch (const boost::system::system_error&) {
      throw std::runtime_error("MyExc");
    }
  };
  auto r = cancel_the_awaiter(
      io, ferry::task_group::scope(io.get_executor(), body), [&] { return body_waiting; });
  ASSERT_TRUE(r.completed);
  std::optional<ferry::exception_group> group = group_in(r.error);
  ASSERT_TRUE(group);
  EXPECT_EQ(messages_of(*group), std::vector<std::string>{"MyExc"});
  EXPECT_EQ(cancelled, 10);
}

// CPython: test_taskgroup_09 (the body fails after a suspension) and test_taskgroup_10 (before
// any). The body's failure cancels the children and is the group's one exception.
TEST(TaskGroupScope, ABodysFailureCancelsTheChildren) {
  for (bool suspend_first : {true, false}) {
    asio::io_context io;
    probe a, b;
    auto body = [&](ferry::task_group& tg) -> ferry::task<void> {
      tg.spawn(wait_forever(a));
      tg.spawn(wait_forever(b));
      if (suspend_first) co_await ferry::sleep(0ms);
      throw std::runtime_error("body");
    };
    auto r = run(io, ferry::task_group::scope(io.get_executor(), body));
    std::optional<ferry::exception_group> group =
        r.has_value() ? std::nullopt : group_in(r.error());
    ASSERT_TRUE(group);
    EXPECT_EQ(messages_of(*group), std::vector<std::string>{"body"});
    EXPECT_TRUE(a.finished && b.finished);
    // Children cancelled before their first step never run (like asyncio tasks cancelled before
    // they started); those that ran saw the cancellation.
    EXPECT_EQ(a.started, a.aborted);
    EXPECT_EQ(b.started, b.aborted);
  }
}

// CPython: test_taskgroup_19. The children's failures come first, then the body's own (the body
// raised it while handling the cancellation the child's failure caused).
TEST(TaskGroupScope, TheBodysExceptionIsListedAfterTheChildrens) {
  asio::io_context io;
  ferry::event go;
  auto body = [&](ferry::task_group& tg) -> ferry::task<void> {
    tg.spawn(fail_when(go, "ZeroDivisionError"));
    go.set();
    try {
      co_await ferry::sleep(1h);
    } catch (...) {
    }
    throw std::runtime_error("MyExc");  // asyncio's `finally: raise MyExc`
  };
  auto r = run(io, ferry::task_group::scope(io.get_executor(), body));
  std::optional<ferry::exception_group> group = r.has_value() ? std::nullopt : group_in(r.error());
  ASSERT_TRUE(group);
  EXPECT_EQ(messages_of(*group), (std::vector<std::string>{"ZeroDivisionError", "MyExc"}));
}

// CPython: test_taskgroup_13. An outer child's failure cancels the outer body, which is
// awaiting an inner scope: the inner body and child are cancelled at once, not when the inner
// child would have finished.
TEST(TaskGroupScope, AnOuterFailureCancelsAnInnerScope) {
  asio::io_context io;
  ferry::event inner_started;
  probe inner_child;
  bool inner_scope_aborted = false;
  auto crash_when_inner_started = [&]() -> ferry::task<void> {
    co_await inner_started.wait();
    throw std::runtime_error("ValueError 0.1");
  };
  auto inner = [&](ferry::task_group& g2) -> ferry::task<void> {
    g2.spawn(wait_forever(inner_child));  // asyncio's crash_after(10): never gets that far
    inner_started.set();
    co_return;
  };
  auto outer = [&](ferry::task_group& g1) -> ferry::task<void> {
    g1.spawn(crash_when_inner_started());
    try {
      co_await ferry::task_group::scope(inner);
    } catch (const boost::system::system_error& e) {
      inner_scope_aborted = e.code() == asio::error::operation_aborted;
      throw;
    }
  };
  auto r = run(io, ferry::task_group::scope(io.get_executor(), outer));
  std::optional<ferry::exception_group> group = r.has_value() ? std::nullopt : group_in(r.error());
  ASSERT_TRUE(group);
  EXPECT_EQ(messages_of(*group), std::vector<std::string>{"ValueError 0.1"});
  EXPECT_TRUE(inner_child.finished && inner_child.aborted);
  EXPECT_TRUE(inner_scope_aborted);
}

// CPython: test_taskgroup_14. An inner child's failure surfaces from the inner scope as a group,
// which fails the outer body and so cancels the outer children: a group inside a group.
TEST(TaskGroupScope, AnInnerFailureFailsTheOuterScopeAsANestedGroup) {
  asio::io_context io;
  probe outer_child;
  auto inner = [&](ferry::task_group& g2) -> ferry::task<void> {
    g2.spawn(fail_soon<void>("ValueError 0.1"));
    co_return;
  };
  auto outer = [&](ferry::task_group& g1) -> ferry::task<void> {
    g1.spawn(wait_forever(outer_child));  // asyncio's crash_after(10)
    co_await ferry::task_group::scope(inner);
  };
  auto r = run(io, ferry::task_group::scope(io.get_executor(), outer));
  std::optional<ferry::exception_group> group = r.has_value() ? std::nullopt : group_in(r.error());
  ASSERT_TRUE(group);
  ASSERT_EQ(group->exceptions().size(), 1u);
  std::optional<ferry::exception_group> nested = group_in(group->exceptions().front());
  ASSERT_TRUE(nested);
  EXPECT_EQ(messages_of(*nested), std::vector<std::string>{"ValueError 0.1"});
  EXPECT_TRUE(outer_child.finished && outer_child.aborted);
}

// CPython: test_taskgroup_11 and test_taskgroup_12. Cancelling the awaiter of nested scopes
// reaches the inner body and children, and the outer children.
TEST(TaskGroupScope, CancellingTheAwaiterReachesNestedScopes) {
  asio::io_context io;
  probe outer_child, inner_body;
  int inner_children_cancelled = 0;
  auto inner = [&](ferry::task_group& g2) -> ferry::task<void> {
    for (int i = 0; i < 5; ++i) g2.spawn(count_cancellation(inner_children_cancelled));
    co_await wait_forever(inner_body);
  };
  auto outer = [&](ferry::task_group& g1) -> ferry::task<void> {
    g1.spawn(wait_forever(outer_child));  // asyncio's g1.create_task(asyncio.sleep(10))
    co_await ferry::task_group::scope(inner);
  };
  auto r = cancel_the_awaiter(io, ferry::task_group::scope(io.get_executor(), outer), [&] {
    return inner_body.started && outer_child.started;
  });
  EXPECT_TRUE(r.started_before_cancel);
  ASSERT_TRUE(r.completed);
  EXPECT_TRUE(is_operation_aborted(r.error));
  EXPECT_TRUE(outer_child.finished && outer_child.aborted);
  EXPECT_TRUE(inner_body.finished && inner_body.aborted);
  EXPECT_EQ(inner_children_cancelled, 5);
}

// The hazard of a task_group destroyed without join(): the frame that made it ends (here: an
// exception between spawn and join), and a child still running writes into that frame's locals.
// A scope's exit awaits the child on every path, so the frame that awaits the scope is still
// there for the child's clean-up. Under ASan, a scope that returned before its children would
// show here as a use after free (the awaiting coroutine's frame is freed as its exception leaves
// it).
TEST(TaskGroupScope, EveryExitAwaitsTheChildrenSoTheyMayBorrowTheAwaitersLocals) {
  asio::io_context io;
  bool frame_alive = false;
  bool cleanup_saw_the_frame = false;
  bool cleanup_done = false;
  auto borrower =
      [](std::string& borrowed, bool& frame, bool& saw, bool& done) -> ferry::task<void> {
    try {
      co_await ferry::sleep(1h);
    } catch (const boost::system::system_error&) {
    }
    co_await asio::this_coro::reset_cancellation_state();
    co_await ferry::sleep(0ms);  // an asynchronous clean-up after the cancellation
    saw = frame;
    borrowed += " and cleaned up";
    done = true;
  };
  auto user = [&]() -> ferry::task<void> {
    std::string borrowed = "borrowed";
    struct alive {
      bool& flag;
      explicit alive(bool& f) : flag(f) { flag = true; }
      ~alive() { flag = false; }
    } mark{frame_alive};
    auto body = [&](ferry::task_group& tg) -> ferry::task<void> {
      tg.spawn(borrower(borrowed, frame_alive, cleanup_saw_the_frame, cleanup_done));
      co_await ferry::sleep(0ms);  // the child is running
      throw std::runtime_error("between spawn and join");
    };
    co_await ferry::task_group::scope(body);
  };
  auto r = run(io, user());
  std::optional<ferry::exception_group> group = r.has_value() ? std::nullopt : group_in(r.error());
  ASSERT_TRUE(group);
  EXPECT_EQ(messages_of(*group), std::vector<std::string>{"between spawn and join"});
  EXPECT_TRUE(cleanup_done);
  EXPECT_TRUE(cleanup_saw_the_frame);
  EXPECT_FALSE(frame_alive);
}

// trio's `nursery.cancel_scope.cancel()`: tg.cancel() cancels the body with the children; the
// scope then reports the body's cancellation.
TEST(TaskGroupScope, CancelCancelsTheBodyToo) {
  asio::io_context io;
  probe child, body_probe;
  auto body = [&](ferry::task_group& tg) -> ferry::task<int> {
    tg.spawn(wait_forever(child));
    co_await ferry::sleep(0ms);
    tg.cancel();
    co_await wait_forever(body_probe);
    co_return 1;
  };
  auto r = run(io, ferry::task_group::scope(io.get_executor(), body));
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(is_operation_aborted(r.error()));
  EXPECT_TRUE(child.finished && child.aborted);
  EXPECT_TRUE(body_probe.finished && body_probe.aborted);
}

TEST(TaskGroupScope, TheBodyMayNotJoinItsOwnGroup) {
  asio::io_context io;
  auto body = [&](ferry::task_group& tg) -> ferry::task<void> { co_await tg.join(); };
  auto r = run(io, ferry::task_group::scope(io.get_executor(), body));
  std::optional<ferry::exception_group> group = r.has_value() ? std::nullopt : group_in(r.error());
  ASSERT_TRUE(group);
  ASSERT_EQ(group->exceptions().size(), 1u);
  EXPECT_THROW(std::rethrow_exception(group->exceptions().front()), std::logic_error);
}

TEST(TaskGroupScope, ChildrenSpawnedAfterTheBodyReturnedAreAwaited) {
  asio::io_context io;
  ferry::semaphore gate(0);
  int late = 0;
  bool scope_returned = false;
  auto late_child = [&]() -> ferry::task<void> { late = co_await value_after(gate, 5); };
  auto spawner = [&](ferry::task_group& tg) -> ferry::task<void> {
    co_await ferry::sleep(0ms);
    tg.spawn(late_child());  // the body has returned by now
  };
  auto body = [&](ferry::task_group& tg) -> ferry::task<void> {
    tg.spawn(spawner(tg));
    co_return;
  };
  auto coro = spawn_checked(io, [&]() -> ferry::task<void> {
    co_await ferry::task_group::scope(body);
    scope_returned = true;
  });
  io.poll();
  EXPECT_FALSE(scope_returned);
  gate.release();
  io.run();
  EXPECT_TRUE(scope_returned);
  EXPECT_EQ(late, 5);
}

TEST(TaskGroupScope, TheBodyRunsOnTheAwaitersStrand) {
  asio::io_context io;
  auto strand = asio::make_strand(io);
  bool body_on_strand = false;
  bool resumed_on_strand = false;
  auto body = [&](ferry::task_group&) -> ferry::task<void> {
    co_await ferry::sleep(0ms);
    body_on_strand = strand.running_in_this_thread();
  };
  auto coro = spawn_checked(strand, [&]() -> ferry::task<void> {
    co_await ferry::task_group::scope(body);
    resumed_on_strand = strand.running_in_this_thread();
  });
  io.run();
  EXPECT_TRUE(body_on_strand);
  EXPECT_TRUE(resumed_on_strand);
}

TEST(TaskGroupScope, EmptyExecutorIsRejected) {
  auto body = [](ferry::task_group&) -> ferry::task<void> { co_return; };
  EXPECT_THROW((void)ferry::task_group::scope(ferry::task_group::executor_type(), body),
               std::invalid_argument);
}

// On an executor that runs children in parallel (a thread pool), a failing child still cancels
// the body and its siblings, and the scope throws only after every one of them has finished.
TEST(TaskGroupScope, AFailureCancelsTheBodyAndSiblingsRunningOnOtherThreads) {
  for (int round = 0; round < 20; ++round) {
    asio::thread_pool pool(2);
    std::atomic<int> started{0};
    std::atomic<int> finished{0};
    std::atomic<bool> body_cancelled{false};
    ferry::event all_started;
    int finished_at_throw = -1;
    std::vector<std::string> messages;
    auto sibling = [&]() -> ferry::task<void> {
      if (++started == 6) all_started.set();
      try {
        co_await ferry::sleep(1h);
      } catch (...) {
        ++finished;
        throw;
      }
    };
    auto failing = [&]() -> ferry::task<void> {
      co_await all_started.wait();  // the siblings are running, on both threads
      ++finished;
      throw std::runtime_error("boom");
    };
    auto body = [&](ferry::task_group& tg) -> ferry::task<void> {
      for (int i = 0; i < 6; ++i) tg.spawn(sibling());
      tg.spawn(failing());
      try {
        co_await ferry::sleep(1h);
      } catch (const boost::system::system_error&) {
        body_cancelled = true;
        throw;
      }
    };
    auto r = run_on(pool, [&]() -> ferry::task<void> {
      try {
        co_await ferry::task_group::scope(body);
      } catch (const ferry::exception_group& e) {
        finished_at_throw = finished.load();
        messages = messages_of(e);
      }
    });
    EXPECT_TRUE(r) << "round " << round;
    EXPECT_EQ(finished_at_throw, 7);
    EXPECT_TRUE(body_cancelled.load());
    EXPECT_EQ(messages, std::vector<std::string>{"boom"});
  }
}
