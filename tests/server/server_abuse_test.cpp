// tests/server/server_abuse_test.cpp — ferry_server against bad input, slow and vanishing
// clients, and too many connections, in each of its three modes. After every abuse the server
// still answers a /ping on a fresh connection.
#include <gtest/gtest.h>

#include <ferry/ferry.hpp>
#include <string>
#include <vector>

#include "http_handler.hpp"
#include "server_fixture.hpp"

namespace {

using namespace server_test;
using ferry_server::endpoint;

class ServerAbuse : public ::testing::TestWithParam<execution_mode> {};

FERRY_SERVER_TEST_IN_EVERY_MODE(ServerAbuse);

/// Sends `bytes` on a fresh connection; expects one response with `status`, then the close.
void expect_rejected(std::uint16_t port, const std::string& bytes, unsigned status) {
  raw_client c(port);
  ASSERT_TRUE(c.send(bytes));
  const std::optional<reply> r = c.read_reply();
  ASSERT_TRUE(r) << "no response to " << testing::PrintToString(bytes.substr(0, 80));
  EXPECT_EQ(r->status, status) << testing::PrintToString(bytes.substr(0, 80)) << " -> " << r->body;
  EXPECT_TRUE(r->says_close());
  EXPECT_TRUE(c.wait_closed()) << "the connection stayed open after a " << status;
}

TEST_P(ServerAbuse, MalformedRequestLinesGet400AndClose) {
  test_server s(config_for(GetParam()));
  const std::vector<std::string> requests = {
      "NOT AN HTTP REQUEST\r\n\r\n",
      "GET /ping HTTP/1.1 trailing\r\n\r\n",
      "GET /ping HTTTP/1.1\r\n\r\n",
      "GET /ping HTTP/x.y\r\n\r\n",
      "G@T /ping HTTP/1.1\r\n\r\n",
      " GET /ping HTTP/1.1\r\n\r\n",
      "GET\r\n\r\n",
      "GET /ping\rHTTP/1.1\r\n\r\n",
      std::string("GET /pi\0ng HTTP/1.1\r\n\r\n", 24),
      std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + std::string(64, '\x7f') +
          "\r\n\r\n",  // a TLS ClientHello's first bytes
  };
  for (const std::string& bytes : requests) expect_rejected(s.port(), bytes, 400);
  EXPECT_EQ(s.counters().responses_with(endpoint::other, 400), requests.size());
  EXPECT_TRUE(still_serves(s.port()));
}

TEST_P(ServerAbuse, MalformedHeadersGet400AndClose) {
  test_server s(config_for(GetParam()));
  const std::vector<std::string> requests = {
      "GET /ping HTTP/1.1\r\nNo colon here\r\n\r\n",
      "GET /ping HTTP/1.1\r\nBad Name: x\r\n\r\n",
      "GET /ping HTTP/1.1\r\n: empty name\r\n\r\n",
      "POST /hash?rounds=1 HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
      "POST /hash?rounds=1 HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
      "POST /hash?rounds=1 HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
      "POST /hash?rounds=1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
      "POST /hash?rounds=1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n",
      "GET /ping HTTP/1.1\r\nX: a\x01z\r\n\r\n",
      "GET /ping HTTP/1.1\nHost: lf-only\n\n",
  };
  for (const std::string& bytes : requests) expect_rejected(s.port(), bytes, 400);
  EXPECT_TRUE(still_serves(s.port()));
}

TEST_P(ServerAbuse, TargetInNoAcceptedFormGets400) {
  test_server s(config_for(GetParam()));
  expect_rejected(s.port(), "GET ftp://example.com/ping HTTP/1.1\r\nHost: test\r\n\r\n", 400);
  expect_rejected(s.port(), "GET example.com:80 HTTP/1.1\r\nHost: test\r\n\r\n", 400);
  expect_rejected(s.port(), "GET * HTTP/1.1\r\nHost: test\r\n\r\n", 400);
  EXPECT_TRUE(still_serves(s.port()));
}

TEST_P(ServerAbuse, OtherHttpVersionsGet400) {
  test_server s(config_for(GetParam()));
  expect_rejected(s.port(), "GET /ping HTTP/1.2\r\n\r\n", 400);
  expect_rejected(s.port(), "GET /ping HTTP/2.0\r\n\r\n", 400);
  expect_rejected(s.port(), "GET /ping HTTP/0.9\r\n\r\n", 400);
  EXPECT_TRUE(still_serves(s.port()));
}

TEST_P(ServerAbuse, OversizedHeaderGets431) {
  ferry_server::server_config config = config_for(GetParam());
  config.limits.max_header = 1024;
  test_server s(config);
  expect_rejected(s.port(), get("/ping", "X-Big: " + std::string(4096, 'a') + "\r\n"), 431);
  // Many small fields add up the same way.
  std::string fields;
  for (int i = 0; i < 200; ++i) fields += "X-" + std::to_string(i) + ": v\r\n";
  expect_rejected(s.port(), get("/ping", fields), 431);
  // A request line longer than the limit is a target too long.
  expect_rejected(s.port(), get("/ping?" + std::string(2048, 'q')), 414);
  // Just under the limit is fine.
  raw_client c(s.port());
  const std::optional<reply> r =
      c.exchange(get("/ping", "X-Fits: " + std::string(800, 'a') + "\r\n"));
  ASSERT_TRUE(has_status(r, 200));
  EXPECT_EQ(s.counters().responses_with(endpoint::other, 431), 2u);
  EXPECT_EQ(s.counters().responses_with(endpoint::other, 414), 1u);
  EXPECT_TRUE(still_serves(s.port()));
}

TEST_P(ServerAbuse, OversizedBodyGets413) {
  ferry_server::server_config config = config_for(GetParam());
  config.limits.max_body = 1000;
  test_server s(config);
  // Announced by Content-Length: refused from the header, before the body is sent.
  {
    raw_client c(s.port());
    ASSERT_TRUE(
        c.send("POST /hash?rounds=1 HTTP/1.1\r\nHost: test\r\nContent-Length: 50000\r\n\r\n"));
    const std::optional<reply> r = c.read_reply();
    ASSERT_TRUE(has_status(r, 413));
    EXPECT_TRUE(c.wait_closed());
  }
  // Sent whole anyway.
  expect_rejected(s.port(), post("/hash?rounds=1", std::string(5000, 'b')), 413);
  // Chunked: discovered while reading the chunks.
  std::string chunked =
      "POST /hash?rounds=1 HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 5; ++i) chunked += "190\r\n" + std::string(400, 'c') + "\r\n";
  chunked += "0\r\n\r\n";
  expect_rejected(s.port(), chunked, 413);
  // At the limit is fine.
  raw_client c(s.port());
  const std::optional<reply> r = c.exchange(post("/hash?rounds=1", std::string(1000, 'd')));
  ASSERT_TRUE(has_status(r, 200));
  EXPECT_EQ(s.counters().responses_with(endpoint::other, 413), 3u);
  EXPECT_TRUE(still_serves(s.port()));
}

TEST_P(ServerAbuse, TruncatedRequestThenCloseGetsNoAnswer) {
  test_server s(config_for(GetParam()));
  {
    raw_client c(s.port());
    ASSERT_TRUE(c.send("GET /pi"));
    c.shutdown_write();
    EXPECT_TRUE(c.wait_closed());
    EXPECT_TRUE(c.unparsed().empty());
  }
  {
    raw_client c(s.port());
    ASSERT_TRUE(c.send(
        "POST /hash?rounds=1 HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\nonly part"));
    c.shutdown_write();
    EXPECT_TRUE(c.wait_closed());
  }
  EXPECT_TRUE(eventually([&] { return s.counters().requests_truncated.load() == 2; }));
  EXPECT_TRUE(still_serves(s.port()));
}

TEST_P(ServerAbuse, ClientResetInTheMiddleOfARequest) {
  test_server s(config_for(GetParam()));
  for (int i = 0; i < 5; ++i) {
    raw_client c(s.port());
    ASSERT_TRUE(
        c.send("POST /hash?rounds=1 HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\nabc"));
    ASSERT_TRUE(eventually([&] { return s.counters().connections_open.load() == 1; }));
    c.reset();
    ASSERT_TRUE(eventually([&] { return s.counters().connections_open.load() == 0; }));
  }
  EXPECT_EQ(s.counters().requests_in_flight.load(), 0u);
  EXPECT_TRUE(still_serves(s.port()));
}

TEST_P(ServerAbuse, SlowlorisIsCutOffByTheReadTimeout) {
  ferry_server::server_config config = config_for(GetParam());
  config.read_timeout = std::chrono::milliseconds(300);
  test_server s(config);
  raw_client c(s.port());
  ASSERT_TRUE(c.send("GET /ping HTTP/1.1\r\nHost: test\r\nX-Slow: "));
  // One byte every 20 ms, for as long as the connection stays open (the guard bounds it): the
  // header never ends, and each byte arrives well within any per-read timeout.
  bool closed = false;
  const auto deadline = clock_type::now() + guard;
  while (!closed && clock_type::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    closed = !c.send("a") || c.closed_now();
  }
  EXPECT_TRUE(closed) << "the slow request was never cut off";
  EXPECT_TRUE(eventually([&] { return s.counters().read_timeouts.load() == 1; }));
  EXPECT_EQ(s.counters().responses_with(endpoint::ping, 200), 0u);
  EXPECT_TRUE(still_serves(s.port()));
}

TEST_P(ServerAbuse, SlowBodyIsCutOffByTheReadTimeout) {
  ferry_server::server_config config = config_for(GetParam());
  config.read_timeout = std::chrono::milliseconds(300);
  test_server s(config);
  raw_client c(s.port());
  ASSERT_TRUE(
      c.send("POST /hash?rounds=1 HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n"));
  bool closed = false;
  const auto deadline = clock_type::now() + guard;
  while (!closed && clock_type::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    closed = !c.send("b") || c.closed_now();
  }
  EXPECT_TRUE(closed);
  EXPECT_TRUE(eventually([&] { return s.counters().read_timeouts.load() == 1; }));
  EXPECT_TRUE(still_serves(s.port()));
}

TEST_P(ServerAbuse, SilentConnectionIsClosedAfterTheReadTimeout) {
  ferry_server::server_config config = config_for(GetParam());
  config.read_timeout = std::chrono::milliseconds(200);
  test_server s(config);
  raw_client c(s.port());
  EXPECT_TRUE(c.wait_closed());
  EXPECT_TRUE(c.unparsed().empty());
  EXPECT_TRUE(eventually([&] { return s.counters().read_timeouts.load() == 1; }));
  EXPECT_TRUE(still_serves(s.port()));
}

TEST_P(ServerAbuse, IdleKeepAliveConnectionIsClosedAfterTheIdleTimeout) {
  ferry_server::server_config config = config_for(GetParam());
  config.idle_timeout = std::chrono::milliseconds(200);
  test_server s(config);
  raw_client c(s.port());
  const std::optional<reply> r = c.exchange(get("/ping"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header("connection"), "keep-alive");
  EXPECT_TRUE(c.wait_closed());
  EXPECT_TRUE(eventually([&] { return s.counters().idle_timeouts.load() == 1; }));
  EXPECT_EQ(s.counters().read_timeouts.load(), 0u);
  EXPECT_TRUE(still_serves(s.port()));
}

TEST_P(ServerAbuse, KeepAliveConnectionOutlivesItsFirstReadDeadline) {
  // The first request's read deadline is shorter than the idle timeout: the deadline of the wait
  // for the second request is later, and passing the first one closes nothing.
  ferry_server::server_config config = config_for(GetParam());
  config.read_timeout = std::chrono::milliseconds(100);
  config.idle_timeout = std::chrono::milliseconds(600'000);
  test_server s(config);
  raw_client c(s.port());
  ASSERT_TRUE(c.exchange(get("/ping")));
  std::this_thread::sleep_for(3 * config.read_timeout);
  const std::optional<reply> r = c.exchange(get("/ping"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200u);
  EXPECT_EQ(s.counters().idle_timeouts.load(), 0u);
  EXPECT_EQ(s.counters().read_timeouts.load(), 0u);
}

TEST_P(ServerAbuse, ClientGoneDuringHeavyRequest) {
  test_server s(config_for(GetParam()));
  {
    raw_client c(s.port());
    ASSERT_TRUE(in_flight_after_sending(s, c, get("/work?us=200000")));
    c.close();
  }
  // The request ends one way or the other, and nothing is left behind.
  ASSERT_TRUE(eventually([&] {
    return s.counters().requests_in_flight.load() == 0 &&
           s.counters().connections_open.load() == 0 && s.counters().offloads_in_flight.load() == 0;
  }));
  const std::uint64_t cancelled = s.counters().requests_cancelled.load();
  const std::uint64_t answered = s.counters().responses_with(endpoint::work, 200);
  EXPECT_EQ(cancelled + answered, 1u);
  if (GetParam() == execution_mode::offload) {
    // Offloaded, the work is cancelled as soon as the client hangs up.
    EXPECT_EQ(cancelled, 1u);
  }
  EXPECT_TRUE(still_serves(s.port()));
  raw_client c(s.port());
  const std::optional<reply> r = c.exchange(get("/work?us=1000"));
  ASSERT_TRUE(has_status(r, 200));
}

TEST_P(ServerAbuse, ClientResetDuringBlockingRequest) {
  test_server s(config_for(GetParam()));
  {
    raw_client c(s.port());
    ASSERT_TRUE(in_flight_after_sending(s, c, get("/blocking?ms=300")));
    c.reset();
  }
  ASSERT_TRUE(eventually([&] {
    return s.counters().requests_in_flight.load() == 0 && s.counters().connections_open.load() == 0;
  }));
  EXPECT_EQ(
      s.counters().requests_cancelled.load() + s.counters().responses_with(endpoint::blocking, 200),
      1u);
  if (GetParam() != execution_mode::thread) {
    // The wait runs on the blocking pool while the loop watches the socket: cancelled.
    EXPECT_EQ(s.counters().requests_cancelled.load(), 1u);
  }
  EXPECT_TRUE(still_serves(s.port()));
}

TEST_P(ServerAbuse, PipelinedRequestBehindAHeavyOneIsNotMistakenForAHangUp) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  ASSERT_TRUE(in_flight_after_sending(s, c, get("/work?us=50000")));
  ASSERT_TRUE(c.send(get("/ping")));
  std::optional<reply> r = c.read_reply();
  ASSERT_TRUE(has_status(r, 200));
  r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "pong");
  EXPECT_EQ(s.counters().requests_cancelled.load(), 0u);
}

TEST_P(ServerAbuse, ConnectionsOverTheLimitAreRefusedAtOnce) {
  ferry_server::server_config config = config_for(GetParam());
  config.max_connections = 2;
  test_server s(config);
  raw_client a(s.port());
  raw_client b(s.port());
  ASSERT_TRUE(a.exchange(get("/ping")));
  ASSERT_TRUE(b.exchange(get("/ping")));
  ASSERT_EQ(s.counters().connections_open.load(), 2u);
  for (int i = 0; i < 3; ++i) expect_connection_refused(s.port());
  EXPECT_EQ(s.counters().connections_refused.load(), 3u);
  // The two admitted connections still work; once one closes, a new one is admitted.
  const std::optional<reply> r = a.exchange(get("/ping"));
  ASSERT_TRUE(has_status(r, 200));
  b.close();
  ASSERT_TRUE(eventually([&] { return s.counters().connections_open.load() == 1; }));
  EXPECT_TRUE(still_serves(s.port()));
}

TEST_P(ServerAbuse, GarbageBurstFromManyConnections) {
  test_server s(config_for(GetParam()));
  std::string garbage;
  for (int i = 0; i < 300; ++i) garbage += static_cast<char>((i * 7919) % 251 + 1);
  const std::vector<unsigned> statuses = concurrent_requests(s.port(), 50, garbage + "\r\n\r\n");
  for (unsigned status : statuses) EXPECT_TRUE(status == 400 || status == 0) << status;
  EXPECT_TRUE(eventually([&] { return s.counters().connections_open.load() == 0; }));
  EXPECT_TRUE(still_serves(s.port()));
}

}  // namespace
