// tests/io/errors_test.cpp — ferry::is_cancellation and ferry::what (io/errors.hpp).
#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/system/system_error.hpp>
#include <chrono>
#include <exception>
#include <ferry/io/errors.hpp>
#include <ferry/io/sleep.hpp>
#include <ferry/io/timeout.hpp>
#include <stdexcept>
#include <string>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

template <class E>
std::exception_ptr thrown(E e) {
  return std::make_exception_ptr(std::move(e));
}

/// What `aw` ends with when it runs on a fresh loop (cancelled at once if `cancel`).
std::exception_ptr outcome_of(ferry::task<void> aw, bool cancel) {
  asio::io_context io;
  asio::cancellation_signal signal;
  std::exception_ptr result;
  bool done = false;
  asio::co_spawn(
      io, std::move(aw), asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) {
        result = e;
        done = true;
      }));
  io.poll();  // the task reaches its first wait
  if (cancel) signal.emit(asio::cancellation_type::terminal);
  io.run();
  EXPECT_TRUE(done);
  return result;
}

}  // namespace

TEST(IsCancellation, OperationAbortedIsACancellation) {
  EXPECT_TRUE(
      ferry::is_cancellation(thrown(boost::system::system_error(asio::error::operation_aborted))));
}

TEST(IsCancellation, ACancelledSleepEndsWithACancellation) {
  const std::exception_ptr e = outcome_of(ferry::sleep(1h), true);
  ASSERT_TRUE(e);
  EXPECT_TRUE(ferry::is_cancellation(e));
}

TEST(IsCancellation, ATimeoutIsNotACancellation) {
  const std::exception_ptr e = outcome_of(ferry::timeout(0ms, ferry::sleep(1h)), false);
  ASSERT_TRUE(e);
  EXPECT_FALSE(ferry::is_cancellation(e));
  EXPECT_NE(ferry::what(e), "unknown exception");
}

TEST(IsCancellation, OtherErrorsAndNullAreNot) {
  EXPECT_FALSE(ferry::is_cancellation(nullptr));
  EXPECT_FALSE(ferry::is_cancellation(thrown(std::runtime_error("boom"))));
  EXPECT_FALSE(
      ferry::is_cancellation(thrown(boost::system::system_error(asio::error::connection_reset))));
  EXPECT_FALSE(ferry::is_cancellation(thrown(42)));
}

TEST(What, IsTheMessageOfAStdException) {
  EXPECT_EQ(ferry::what(thrown(std::runtime_error("boom"))), "boom");
  EXPECT_EQ(ferry::what(thrown(std::logic_error("bad"))), "bad");
}

TEST(What, NamesAnExceptionOfAnotherTypeAndNull) {
  EXPECT_EQ(ferry::what(thrown(42)), "unknown exception");
  EXPECT_EQ(ferry::what(nullptr), "no exception");
}
