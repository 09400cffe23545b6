// tests/server/server_shutdown_test.cpp — ferry_server's graceful shutdown (what SIGINT/SIGTERM
// do under runtime::run), in each of its three modes: requests in flight finish, idle
// connections close, the deadline cuts off what is left, and run() returns normally.
#include <gtest/gtest.h>

#include <ferry/ferry.hpp>
#include <string>

#include "http_handler.hpp"
#include "server_fixture.hpp"

namespace {

using namespace server_test;
using ferry_server::endpoint;

class ServerShutdown : public ::testing::TestWithParam<execution_mode> {};

// The mode's configuration, with `deadline` for the shutdown's drain.
ferry_server::server_config shutting_down_within(execution_mode mode,
                                                 std::chrono::milliseconds deadline) {
  ferry_server::server_config config = config_for(mode);
  config.shutdown_deadline = deadline;
  return config;
}

FERRY_SERVER_TEST_IN_EVERY_MODE(ServerShutdown);

TEST_P(ServerShutdown, RequestInFlightFinishesThenTheServerStops) {
  test_server s(shutting_down_within(GetParam(), std::chrono::milliseconds(60'000)));
  const std::uint16_t port = s.port();
  raw_client c(port);
  ASSERT_TRUE(in_flight_after_sending(s, c, get("/blocking?ms=300")));
  s.request_stop();
  const std::optional<reply> r = c.read_reply();
  ASSERT_TRUE(has_status(r, 200)) << "the request in flight was not answered";
  EXPECT_EQ(r->body, "slept 300 ms\n");
  EXPECT_TRUE(r->says_close());
  EXPECT_TRUE(c.wait_closed());
  c.close();  // the server lingers until the client closes its side too
  s.stop();
  EXPECT_TRUE(s.finished());
  EXPECT_FALSE(s.error());
  EXPECT_TRUE(refuses_connections(port));
  EXPECT_EQ(s.counters().requests_cancelled.load(), 0u);
  EXPECT_EQ(s.counters().connections_open.load(), 0u);
}

TEST_P(ServerShutdown, HeavyRequestInFlightFinishes) {
  test_server s(shutting_down_within(GetParam(), std::chrono::milliseconds(60'000)));
  raw_client c(s.port());
  ASSERT_TRUE(in_flight_after_sending(s, c, get("/work?us=200000")));
  s.request_stop();
  const std::optional<reply> r = c.read_reply();
  ASSERT_TRUE(has_status(r, 200));
  EXPECT_TRUE(c.wait_closed());
  c.close();
  s.stop();
  EXPECT_FALSE(s.error());
  EXPECT_EQ(s.counters().responses_with(endpoint::work, 200), 1u);
}

TEST_P(ServerShutdown, IdleConnectionsAreClosedAtOnce) {
  ferry_server::server_config config = config_for(GetParam());
  config.idle_timeout = std::chrono::milliseconds(600'000);  // only the shutdown can close them
  config.shutdown_deadline = std::chrono::milliseconds(600'000);
  test_server s(config);
  raw_client a(s.port());
  raw_client b(s.port());
  ASSERT_TRUE(a.exchange(get("/ping")));
  ASSERT_TRUE(b.exchange(get("/ping")));
  raw_client silent(s.port());  // connected, never sent a byte
  ASSERT_TRUE(eventually([&] { return s.counters().connections_open.load() == 3; }));
  s.request_stop();
  EXPECT_TRUE(a.wait_closed());
  EXPECT_TRUE(b.wait_closed());
  EXPECT_TRUE(silent.wait_closed());
  s.stop();
  EXPECT_FALSE(s.error());
  EXPECT_EQ(s.counters().idle_timeouts.load(), 0u);
}

TEST_P(ServerShutdown, DeadlineCutsOffWhatIsLeft) {
  test_server s(shutting_down_within(GetParam(), std::chrono::milliseconds(100)));
  raw_client c(s.port());
  ASSERT_TRUE(in_flight_after_sending(s, c, get("/blocking?ms=10000")));
  s.request_stop();
  // Closed without an answer: the 10 s wait was stopped at the deadline.
  EXPECT_FALSE(c.read_reply());
  s.stop();
  EXPECT_FALSE(s.error());
  EXPECT_EQ(s.counters().requests_cancelled.load(), 1u);
  EXPECT_EQ(s.counters().responses_with(endpoint::blocking, 200), 0u);
  EXPECT_EQ(s.counters().connections_open.load(), 0u);
}

TEST_P(ServerShutdown, SecondStopRequestCutsTheDrainShort) {
  test_server s(shutting_down_within(GetParam(), std::chrono::milliseconds(600'000)));
  raw_client c(s.port());
  ASSERT_TRUE(in_flight_after_sending(s, c, get("/blocking?ms=10000")));
  s.request_stop();
  // The drain has begun once the acceptor is closed.
  ASSERT_TRUE(eventually([&] { return refuses_connections(s.port()); }));
  s.request_stop_again();
  EXPECT_FALSE(c.read_reply());
  s.stop();
  EXPECT_FALSE(s.error());
  EXPECT_EQ(s.counters().requests_cancelled.load(), 1u);
}

TEST_P(ServerShutdown, StopsWithNoConnections) {
  test_server s(config_for(GetParam()));
  EXPECT_TRUE(still_serves(s.port()));
  s.stop();
  EXPECT_TRUE(s.finished());
  EXPECT_FALSE(s.error());
}

}  // namespace
