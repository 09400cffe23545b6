// tests/server/server_drain_test.cpp — ferry_server behind a load balancer, in each of its three
// modes: GET /health, the drain of --drain-ms (keeps accepting and serving, /health 503, every
// response closes its connection, a second stop request ends it), the write timeout that cuts
// off a client that stops reading, and the listening backlog.
#include <gtest/gtest.h>

#include <ferry/ferry.hpp>
#include <string>
#include <vector>

#include "http_handler.hpp"
#include "server_fixture.hpp"

namespace {

using namespace server_test;
using ferry_server::endpoint;

class ServerDrain : public ::testing::TestWithParam<execution_mode> {};

FERRY_SERVER_TEST_IN_EVERY_MODE(ServerDrain);

/// A config whose drain lasts until the test ends it (a second stop request).
ferry_server::server_config draining_config(execution_mode mode) {
  ferry_server::server_config config = config_for(mode);
  config.drain = std::chrono::milliseconds(3'600'000);
  config.shutdown_deadline = std::chrono::milliseconds(60'000);
  return config;
}

TEST_P(ServerDrain, HealthAnswers200WhileServing) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  const std::optional<reply> r = c.exchange(get("/health"));
  ASSERT_TRUE(has_status(r, 200));
  EXPECT_EQ(r->body, "serving\n");
  EXPECT_FALSE(r->says_close());
  raw_client admin(s.admin_port());
  const std::optional<reply> stats = admin.exchange(get("/stats"));
  ASSERT_TRUE(stats);
  EXPECT_NE(stats->body.find("\"state\":\"serving\""), std::string::npos) << stats->body;
  EXPECT_EQ(s.counters().responses_with(endpoint::health, 200), 1u);
}

TEST_P(ServerDrain, HealthTakesOnlyGet) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  const std::optional<reply> r = c.exchange(post("/health", ""));
  ASSERT_TRUE(has_status(r, 405));
  EXPECT_EQ(r->header("allow"), "GET, HEAD");
}

TEST_P(ServerDrain, DuringTheDrainNewConnectionsAreServedHealthSays503AndResponsesClose) {
  test_server s(draining_config(GetParam()));
  const std::uint16_t port = s.port();
  raw_client before(port);  // a keep-alive connection opened before the stop request
  ASSERT_TRUE(before.exchange(get("/ping")));
  s.request_stop();
  ASSERT_TRUE(eventually([&] { return s.counters().draining.load(); }));

  raw_client health(port);
  const std::optional<reply> h = health.exchange(get("/health"));
  ASSERT_TRUE(has_status(h, 503)) << "a connection made during the drain was not served";
  EXPECT_EQ(h->body, "draining\n");
  EXPECT_TRUE(h->says_close());
  EXPECT_TRUE(health.wait_closed());

  raw_client fresh(port);
  const std::optional<reply> work = fresh.exchange(get("/work?us=100"));
  ASSERT_TRUE(has_status(work, 200));
  EXPECT_TRUE(work->says_close());

  const std::optional<reply> old = before.exchange(get("/ping"));
  ASSERT_TRUE(has_status(old, 200)) << "a keep-alive connection was closed during the drain";
  EXPECT_TRUE(old->says_close());
  raw_client admin(s.admin_port());  // the admin listener serves through the drain too
  const std::optional<reply> stats = admin.exchange(get("/stats"));
  ASSERT_TRUE(has_status(stats, 200));
  EXPECT_NE(stats->body.find("\"state\":\"draining\""), std::string::npos) << stats->body;
  EXPECT_FALSE(s.finished());

  s.request_stop_again();  // ends the drain
  s.stop();
  EXPECT_TRUE(s.finished());
  EXPECT_FALSE(s.error());
  EXPECT_TRUE(refuses_connections(port));
  EXPECT_EQ(s.counters().responses_with(endpoint::health, 503), 1u);
}

TEST_P(ServerDrain, RequestInFlightAtTheEndOfTheDrainFinishes) {
  test_server s(draining_config(GetParam()));
  s.request_stop();
  ASSERT_TRUE(eventually([&] { return s.counters().draining.load(); }));
  raw_client c(s.port());
  ASSERT_TRUE(in_flight_after_sending(s, c, get("/blocking?ms=200")));
  s.request_stop_again();  // the drain ends; the request in flight is given the deadline
  const std::optional<reply> r = c.read_reply();
  ASSERT_TRUE(has_status(r, 200));
  EXPECT_TRUE(r->says_close());
  EXPECT_TRUE(c.wait_closed());
  c.close();
  s.stop();
  EXPECT_FALSE(s.error());
  EXPECT_EQ(s.counters().requests_cancelled.load(), 0u);
  EXPECT_EQ(s.counters().connections_open.load(), 0u);
}

TEST_P(ServerDrain, TheDrainEndsByItself) {
  ferry_server::server_config config = config_for(GetParam());
  config.drain = std::chrono::milliseconds(50);
  test_server s(config);
  const std::uint16_t port = s.port();
  s.request_stop();
  s.stop();  // returns once the drain has passed and the server has stopped
  EXPECT_FALSE(s.error());
  EXPECT_TRUE(s.counters().draining.load());
  EXPECT_TRUE(refuses_connections(port));
}

TEST_P(ServerDrain, WithoutADrainTheServerStopsAcceptingAtOnce) {
  test_server s(config_for(GetParam()));  // drain 0: today's behaviour
  const std::uint16_t port = s.port();
  s.request_stop();
  s.stop();
  EXPECT_FALSE(s.error());
  EXPECT_TRUE(refuses_connections(port));
}

/// A client with a tiny receive window that sends requests and never reads a byte.
class non_reader {
 public:
  explicit non_reader(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    if (fd_ < 0) throw std::runtime_error("socket");
    const int small = 4096;  // before connect, so that the window it advertises stays small
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      throw std::runtime_error("connect");
    }
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  ~non_reader() { ::close(fd_); }
  non_reader(const non_reader&) = delete;
  non_reader& operator=(const non_reader&) = delete;

  /// Sends as many pipelined requests as the socket takes now (none once it is full or broken).
  void send_more() {
    // A 404 that echoes its 2 KB path: responses large enough to fill the window.
    const std::string request = get("/" + std::string(2000, 'm'));
    for (int i = 0; i < 64; ++i) {
      if (::send(fd_, request.data(), request.size(), MSG_NOSIGNAL | MSG_DONTWAIT) <= 0) return;
    }
  }

 private:
  int fd_;
};

TEST_P(ServerDrain, AClientThatStopsReadingIsCutOffByTheWriteTimeout) {
  ferry_server::server_config config = config_for(GetParam());
  config.write_timeout = std::chrono::milliseconds(100);
  test_server s(config);
  {
    non_reader client(s.port());
    ASSERT_TRUE(eventually([&] {
      client.send_more();
      return s.counters().write_timeouts.load() == 1;
    })) << "the server never gave up writing to a client that does not read";
    // The connection is closed and its buffers freed while the client still holds its socket.
    ASSERT_TRUE(eventually([&] { return s.counters().connections_open.load() == 0; }));
  }
  EXPECT_TRUE(still_serves(s.port()));
  EXPECT_EQ(s.counters().write_timeouts.load(), 1u);
}

TEST(ServerBacklog, IsTheSystemMaximumByDefaultAndTheFlagsValueOtherwise) {
  {
    test_server s(config_for(execution_mode::offload));
    EXPECT_EQ(s.backlog(), ferry_server::system_backlog());
    EXPECT_GT(s.backlog(), 0);
  }
  ferry_server::server_config config = config_for(execution_mode::offload);
  config.backlog = 16;
  test_server s(config);
  EXPECT_EQ(s.backlog(), 16);
}

TEST_P(ServerDrain, ABurstOfConnectionsLargerThanOneAcceptBatchIsServed) {
  raise_fd_limit(4096);
  ferry_server::server_config config = config_for(GetParam());
  config.max_connections_per_client = 0;  // every client is 127.0.0.1
  test_server s(config);
  // Each client sends its request as soon as it is connected, as a real burst does: a connection
  // the server accepted early must not wait for the last of the 600 to be accepted (under TSan,
  // thread mode takes longer than the server's read timeout to start 600 threads).
  std::vector<std::unique_ptr<raw_client>> clients;
  for (int i = 0; i < 600; ++i) {
    clients.push_back(std::make_unique<raw_client>(s.port()));
    ASSERT_TRUE(clients.back()->send(get("/ping")));
  }
  ASSERT_TRUE(eventually([&] { return s.counters().connections_accepted.load() == 600; }));
  for (std::size_t i = 0; i < clients.size(); ++i) {
    const std::optional<reply> r = clients[i]->read_reply();
    ASSERT_TRUE(has_status(r, 200))
        << "connection " << i << "; refused " << s.counters().connections_refused.load()
        << ", open " << s.counters().connections_open.load();
  }
}

}  // namespace
