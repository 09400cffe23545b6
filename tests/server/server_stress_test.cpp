// tests/server/server_stress_test.cpp — ferry_server under load: a thousand connections at once,
// the offload bound under a burst of heavy requests, and a mix of abuse while it serves.
#include <gtest/gtest.h>

#include <atomic>
#include <ferry/ferry.hpp>
#include <string>
#include <thread>
#include <vector>

#include "ferry_test.hpp"
#include "http_handler.hpp"
#include "server_fixture.hpp"

namespace {

using namespace server_test;
using ferry_server::endpoint;

constexpr std::size_t thousand = 1000;

class ServerStress : public ::testing::TestWithParam<execution_mode> {};

FERRY_SERVER_TEST_IN_EVERY_MODE(ServerStress);

TEST_P(ServerStress, AThousandConcurrentConnections) {
  // Both ends of every connection live in this process, plus the runtime's own descriptors.
  const rlim_t wanted = 2 * thousand + 256;
  if (const rlim_t limit = raise_fd_limit(wanted); limit < wanted) {
    GTEST_SKIP() << "needs " << wanted << " open descriptors; RLIMIT_NOFILE allows " << limit
                 << " and its hard limit cannot be raised (ulimit -Hn)";
  }
  ferry_server::server_config config = config_for(GetParam());
  config.max_connections_per_client = 0;  // every client is 127.0.0.1
  // A fixed bound above the burst: the test is about the connections, and every request is
  // admitted (the adaptive default would shed the part of the burst beyond its target).
  config.max_offloads = 1024;
  test_server s(config);
  std::vector<std::string> bodies;
  const std::vector<unsigned> statuses =
      concurrent_requests(s.port(), thousand, get("/work?us=200"), &bodies);
  std::size_t ok = 0;
  for (std::size_t i = 0; i < thousand; ++i) {
    if (statuses[i] == 200 && bodies[i].size() == 17) ++ok;
  }
  EXPECT_EQ(ok, thousand);
  // Every connection was kept open until all had their answer: the server held them all.
  EXPECT_EQ(s.counters().connections_peak.load(), thousand);
  EXPECT_EQ(s.counters().connections_refused.load(), 0u);
  EXPECT_EQ(s.counters().responses_with(endpoint::work, 200), thousand);
  EXPECT_TRUE(eventually([&] { return s.counters().connections_open.load() == 0; }));
  EXPECT_TRUE(still_serves(s.port()));
}

TEST(ServerStressOffload, BoundFullAnswers503WithRetryAfter) {
  ferry_server::server_config config = config_for(execution_mode::offload);
  config.max_offloads = 2;
  test_server s(config);
  constexpr std::size_t burst = 20;
  std::vector<std::map<std::string, std::string>> headers;
  const std::vector<unsigned> statuses =
      concurrent_requests(s.port(), burst, get("/work?us=500000"), nullptr, &headers);
  std::size_t ok = 0;
  std::size_t overloaded = 0;
  for (std::size_t i = 0; i < burst; ++i) {
    if (statuses[i] == 200) ++ok;
    if (statuses[i] == 503) {
      ++overloaded;
      EXPECT_EQ(headers[i]["retry-after"], "1");
    }
  }
  EXPECT_EQ(ok + overloaded, burst) << "every request gets an answer, 200 or 503";
  EXPECT_GE(ok, 1u);
  EXPECT_GE(overloaded, 1u);
  // Never more than the bound in flight: memory stays bounded however many arrive.
  EXPECT_LE(s.counters().offloads_peak.load(), 2u);
  EXPECT_EQ(s.counters().offloads_rejected.load(), overloaded);
  EXPECT_EQ(s.counters().responses_with(endpoint::work, 503), overloaded);
  EXPECT_TRUE(eventually([&] { return s.counters().offloads_in_flight.load() == 0; }));
  // Light requests were never subject to the bound.
  EXPECT_TRUE(still_serves(s.port()));
}

TEST(ServerStressOffload, LightRequestsAreServedWhileHeavyOnesSaturateThePool) {
  ferry_server::server_config config = config_for(execution_mode::offload);
  config.max_offloads = 4;
  test_server s(config);
  // A jthread: an ASSERT that returns early still stops and joins it.
  std::jthread heavy([&](const std::stop_token& stop) {
    while (!stop.stop_requested()) concurrent_requests(s.port(), 8, get("/work?us=20000"));
  });
  // The state the test is about: heavy requests hold the pool (not: some time has passed).
  const auto pool_busy = [&] { return s.counters().offloads_in_flight.load() >= 2; };
  ASSERT_TRUE(ferry::test::wait_until(pool_busy));
  raw_client c(s.port());
  for (int i = 0; i < 50; ++i) {
    const std::optional<reply> r = c.exchange(get("/ping"));
    ASSERT_TRUE(has_status(r, 200));
  }
  // Heavy requests are answered too (however long 50 pings took on a busy machine).
  ASSERT_TRUE(ferry::test::wait_until(
      [&] { return s.counters().responses_with(endpoint::work, 200) >= 1; }));
  heavy.request_stop();
  heavy.join();
  EXPECT_LE(s.counters().offloads_peak.load(), 4u);
}

TEST_P(ServerStress, AbuseMixWhileServing) {
  ferry_server::server_config config = config_for(GetParam());
  config.read_timeout = std::chrono::milliseconds(500);
  config.limits.max_header = 2048;
  config.limits.max_body = 4096;
  config.max_connections = 200;
  test_server s(config);
  const std::vector<std::string> abuse = {
      "\x01\x02\x03 garbage\r\n\r\n",
      get("/ping", "X: " + std::string(4000, 'h') + "\r\n"),
      post("/hash?rounds=1", std::string(8000, 'b')),
      "GET /ping HTTP/1.1\r\nHost: trunc",
      get("/work?us=abc"),
      get("/nowhere"),
  };
  // The client under test is admitted before the abuse begins: abusers that reset their
  // connections can keep --max-connections full on a slow machine, and a connection refused at
  // accept is the server doing its job, not the failure this test is about.
  raw_client c(s.port());
  {
    const std::optional<reply> first = c.exchange(get("/ping"));
    ASSERT_TRUE(first);
    ASSERT_EQ(first->status, 200u);
  }
  {
    // jthreads: an ASSERT that returns early still stops and joins them (before `s` goes).
    std::vector<std::jthread> abusers;
    for (std::size_t t = 0; t < abuse.size(); ++t) {
      abusers.emplace_back([&, t](const std::stop_token& stop) {
        while (!stop.stop_requested()) {
          try {
            raw_client a(s.port());
            a.send(abuse[t]);
            if (t == 3) {
              a.reset();
            } else {
              a.wait_closed(2s);
            }
          } catch (const std::runtime_error&) {
            // Refused over max-connections: fine.
          }
        }
      });
    }
    for (int i = 0; i < 100; ++i) {
      const std::optional<reply> r = c.exchange(i % 10 == 0 ? get("/work?us=1000") : get("/ping"));
      ASSERT_TRUE(has_status(r, 200)) << "request " << i;
    }
  }
  c.close();
  EXPECT_TRUE(eventually([&] { return s.counters().connections_open.load() == 0; }));
  EXPECT_EQ(s.counters().requests_in_flight.load(), 0u);
  EXPECT_TRUE(still_serves(s.port()));
}

}  // namespace
