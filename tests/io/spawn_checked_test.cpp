// tests/io/spawn_checked_test.cpp — ferry::test::spawn_checked (tests/support/ferry_test.hpp), the
// helper every test uses to start a coroutine: it must fail the test when the coroutine throws or
// never runs to its end, or the tests built on it could pass silently.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <ferry/ferry.hpp>
#include <ferry/io/event.hpp>
#include <stdexcept>

#include "ferry_test.hpp"

namespace {

// Each scenario is a function of its own: EXPECT_NONFATAL_FAILURE's statement may not use the
// test's locals.

void a_coroutine_that_throws() {
  asio::io_context io;
  auto coro = ferry::test::spawn_checked(io, []() -> ferry::task<void> {
    co_await ferry::sleep(0ms);
    throw std::runtime_error("boom in a spawned coroutine");
  });
  io.run();
  EXPECT_TRUE(coro.ended());
  EXPECT_FALSE(coro.returned());
}

// The event is destroyed before the io_context: its destructor fails the waiter by posting to
// the waiter's executor, which must still exist.
void a_coroutine_that_never_ends() {
  asio::io_context io;
  ferry::event never;
  auto coro =
      ferry::test::spawn_checked(io, [&never]() -> ferry::task<void> { co_await never.wait(); });
  io.poll();  // it now waits on `never`
  EXPECT_FALSE(coro.ended());
}  // the handle goes first: the test fails, then io destroys the suspended frame

void a_coroutine_that_never_starts() {
  auto coro = [] {
    asio::io_context io;
    return ferry::test::spawn_checked(io, []() -> ferry::task<void> { co_return; });
  }();  // destroyed with its io_context, never run
  EXPECT_FALSE(coro.ended());
}

void a_cancellation_that_escapes() {
  ferry::event never;
  asio::io_context io;
  asio::cancellation_signal signal;
  auto coro = ferry::test::spawn_checked(
      io, [&never]() -> ferry::task<void> { co_await never.wait(); }, signal.slot());
  io.poll();
  signal.emit(asio::cancellation_type::terminal);
  io.run();
  EXPECT_TRUE(coro.ended());
}

TEST(SpawnChecked, AnEscapedExceptionFailsTheTestWithItsMessage) {
  EXPECT_NONFATAL_FAILURE(a_coroutine_that_throws(), "threw: boom in a spawned coroutine");
}

TEST(SpawnChecked, ACoroutineThatNeverRanToItsEndFailsTheTest) {
  EXPECT_NONFATAL_FAILURE(a_coroutine_that_never_ends(), "never ran to its end");
}

TEST(SpawnChecked, ACoroutineDestroyedUnrunFailsTheTest) {
  EXPECT_NONFATAL_FAILURE(a_coroutine_that_never_starts(), "never ran to its end");
}

TEST(SpawnChecked, ACancellationThroughTheBoundSlotThatEscapesFailsTheTest) {
  EXPECT_NONFATAL_FAILURE(a_cancellation_that_escapes(), "threw: ");
}

TEST(SpawnChecked, ACancellationThroughTheBoundSlotThatIsHandledPasses) {
  ferry::event never;
  asio::io_context io;
  asio::cancellation_signal signal;
  bool aborted = false;
  auto coro = ferry::test::spawn_checked(
      io,
      [&]() -> ferry::task<void> {
        try {
          co_await never.wait();
        } catch (const boost::system::system_error& e) {
          aborted = e.code() == asio::error::operation_aborted;
        }
      },
      signal.slot());
  io.poll();
  signal.emit(asio::cancellation_type::terminal);
  io.run();
  EXPECT_TRUE(aborted);
  EXPECT_TRUE(coro.returned());
}

TEST(SpawnChecked, ACoroutineThatReturnedPasses) {
  asio::io_context io;
  bool ran = false;
  auto coro = ferry::test::spawn_checked(io, [&ran]() -> ferry::task<void> {
    co_await ferry::sleep(0ms);
    ran = true;
  });
  io.run();
  EXPECT_TRUE(ran);
  EXPECT_TRUE(coro.returned());
}

TEST(SpawnChecked, MayNotFinishAllowsACoroutineLeftSuspended) {
  asio::io_context io;
  ferry::event never;
  auto coro =
      ferry::test::spawn_checked(io, [&never]() -> ferry::task<void> { co_await never.wait(); });
  coro.may_not_finish();
  io.poll();
  EXPECT_FALSE(coro.ended());
}

}  // namespace
