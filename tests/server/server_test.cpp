// tests/server/server_test.cpp — ferry_server's endpoints and keep-alive, in each of its three
// modes, over real TCP connections to 127.0.0.1.
#include <gtest/gtest.h>

#include <ferry/ferry.hpp>
#include <regex>
#include <string>

#include "http_handler.hpp"
#include "server_fixture.hpp"

namespace {

using namespace server_test;
using ferry_server::endpoint;

class Server : public ::testing::TestWithParam<execution_mode> {};

FERRY_SERVER_TEST_IN_EVERY_MODE(Server);

TEST_P(Server, PingAnswersPong) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  const std::optional<reply> r = c.exchange(get("/ping"));
  ASSERT_TRUE(has_status(r, 200));
  EXPECT_EQ(r->body, "pong");
  EXPECT_EQ(r->header("connection"), "keep-alive");
  EXPECT_EQ(r->header("content-length"), "4");
}

TEST_P(Server, WorkAnswersAChecksum) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  const std::optional<reply> r = c.exchange(get("/work?us=2000"));
  ASSERT_TRUE(has_status(r, 200));
  EXPECT_TRUE(std::regex_match(r->body, std::regex("[0-9a-f]{16}\n"))) << r->body;
  EXPECT_EQ(s.counters().responses_with(endpoint::work, 200), 1u);
}

TEST_P(Server, WorkRejectsOutOfRangeOrMalformedParameters) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  for (const char* target : {"/work",
                             "/work?us=0",
                             "/work?us=1000001",
                             "/work?us=-5",
                             "/work?us=12abc",
                             "/work?us=",
                             "/work?us=99999999999999999999999",
                             "/work?us=10&us=20"}) {
    const std::optional<reply> r = c.exchange(get(target));
    ASSERT_TRUE(has_status(r, 400)) << target;
    EXPECT_NE(r->body.find("us"), std::string::npos) << target << ": " << r->body;
  }
  EXPECT_EQ(s.counters().responses_with(endpoint::work, 400), 8u);
  // A 400 about a parameter keeps the connection: the same one still serves.
  const std::optional<reply> r = c.exchange(get("/ping"));
  ASSERT_TRUE(has_status(r, 200));
}

TEST_P(Server, HashDigestsTheBodyLikeTheHandler) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  const std::string small = "the quick brown fox";
  std::optional<reply> r = c.exchange(post("/hash?rounds=7", small));
  ASSERT_TRUE(has_status(r, 200));
  EXPECT_EQ(r->body, ferry_server::hash_digest(small, 7, 256 * 1024, false) + "\n");

  // Large enough to be hashed in chunks (with a nested parallel_for when offloaded): the same
  // digest as the sequential computation.
  std::string large(600 * 1024, '\0');
  for (std::size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>(i * 31 + i / 977);
  r = c.exchange(post("/hash?rounds=3", large));
  ASSERT_TRUE(has_status(r, 200));
  EXPECT_EQ(r->body, ferry_server::hash_digest(large, 3, 256 * 1024, false) + "\n");
}

TEST_P(Server, HashAcceptsAChunkedBody) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  const std::optional<reply> r = c.exchange(
      "POST /hash?rounds=2 HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  ASSERT_TRUE(has_status(r, 200));
  EXPECT_EQ(r->body, ferry_server::hash_digest("hello world", 2, 256 * 1024, false) + "\n");
}

TEST_P(Server, HashAnswersExpectContinue) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  ASSERT_TRUE(
      c.send("POST /hash?rounds=1 HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n"
             "Expect: 100-continue\r\n\r\n"));
  // The interim response comes before the body is sent.
  ASSERT_TRUE(eventually([&] {
    c.closed_now();
    return c.unparsed().find("100 Continue\r\n\r\n") != std::string::npos;
  }));
  ASSERT_TRUE(c.send("abc"));
  const std::optional<reply> r = c.read_reply();
  ASSERT_TRUE(has_status(r, 200));
  EXPECT_EQ(r->body, ferry_server::hash_digest("abc", 1, 256 * 1024, false) + "\n");
}

TEST_P(Server, HashRejectsBadRounds) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  for (const char* target : {"/hash", "/hash?rounds=0", "/hash?rounds=1001", "/hash?rounds=x"}) {
    const std::optional<reply> r = c.exchange(post(target, "body"));
    ASSERT_TRUE(has_status(r, 400)) << target;
  }
}

TEST_P(Server, BlockingAnswersAfterTheWait) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  std::optional<reply> r = c.exchange(get("/blocking?ms=20"));
  ASSERT_TRUE(has_status(r, 200));
  EXPECT_EQ(r->body, "slept 20 ms\n");
  ASSERT_TRUE(has_status(c.exchange(get("/blocking?ms=0")), 200));
  ASSERT_TRUE(has_status(c.exchange(get("/blocking?ms=10001")), 400));
}

TEST_P(Server, UnknownPathIs404AndWrongMethodIs405) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  ASSERT_TRUE(has_status(c.exchange(get("/nowhere")), 404));
  std::optional<reply> r = c.exchange(post("/ping", "x"));
  ASSERT_TRUE(has_status(r, 405));
  EXPECT_EQ(r->header("allow"), "GET, HEAD");
  r = c.exchange(get("/hash?rounds=1"));
  ASSERT_TRUE(has_status(r, 405));
  EXPECT_EQ(r->header("allow"), "POST");
  ASSERT_TRUE(has_status(c.exchange("DELETE /work?us=1 HTTP/1.1\r\nHost: test\r\n\r\n"), 405));
  // None of these closes the connection.
  ASSERT_TRUE(has_status(c.exchange(get("/ping")), 200));
}

TEST_P(Server, StatsMetricsAndTasksAreOnTheAdminListenerOnly) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  raw_client admin(s.admin_port());
  for (const std::string target : {"/stats", "/metrics", "/debug/tasks"}) {
    EXPECT_TRUE(has_status(c.exchange(get(target)), 404)) << target;
    EXPECT_TRUE(has_status(admin.exchange(get(target)), 200)) << target;
  }
  // The admin listener serves the public endpoints too, outside the public counts.
  EXPECT_TRUE(has_status(admin.exchange(get("/ping")), 200));
  EXPECT_EQ(s.counters().connections_open.load(), 1u);
  EXPECT_EQ(s.counters().connections_accepted.load(), 1u);
}

TEST_P(Server, NoAdminListenerUnlessConfigured) {
  ferry_server::server_config config = config_for(GetParam());
  config.admin_port.reset();
  test_server s(config);
  EXPECT_EQ(s.admin_port(), 0);
  raw_client c(s.port());
  EXPECT_TRUE(has_status(c.exchange(get("/stats")), 404));
}

TEST_P(Server, DebugTasksShowsTheConnectionsWhereTheyWereSpawned) {
  test_server s(config_for(GetParam()));
  raw_client c(s.admin_port());
  const std::optional<reply> r = c.exchange(get("/debug/tasks"));
  ASSERT_TRUE(has_status(r, 200));
  EXPECT_EQ(r->header("content-type").rfind("text/plain", 0), 0u) << r->header("content-type");
  // No address of the process, no directory: a task group is named by what it is.
  EXPECT_EQ(r->body.find("0x"), std::string::npos) << r->body;
  EXPECT_EQ(r->body.find(" /"), std::string::npos) << r->body;
  if (GetParam() == execution_mode::thread) return;  // connections are threads, not tasks
  // The server's own task tree: its task_group and the connections spawned in server.cpp.
  EXPECT_NE(r->body.find("task_group"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("server.cpp:"), std::string::npos) << r->body;
}

TEST_P(Server, StatsIsJsonWithServerAndRuntimeCounters) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  ASSERT_TRUE(c.exchange(get("/ping")));
  raw_client admin(s.admin_port());
  const std::optional<reply> r = admin.exchange(get("/stats"));
  ASSERT_TRUE(has_status(r, 200));
  EXPECT_EQ(r->header("content-type"), "application/json");
  const std::string& b = r->body;
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(b.front(), '{');
  for (const char* key : {"\"server\"",
                          "\"mode\":\"",
                          "\"connections\"",
                          "\"requests\"",
                          "\"offloads\"",
                          "\"runtime\"",
                          "\"cpu\"",
                          "\"blocking\"",
                          "\"queue_wait_us\"",
                          "\"loop\"",
                          "\"lag_us\"",
                          "\"recent_stalls\":["}) {
    EXPECT_NE(b.find(key), std::string::npos) << key << " in " << b;
  }
  EXPECT_NE(b.find("\"mode\":\"" + mode_name(GetParam()) + "\""), std::string::npos) << b;
  EXPECT_NE(b.find("\"ping\":{\"200\":1}"), std::string::npos) << b;
  // Balanced braces, no trailing comma: the writer's structure is sound.
  int depth = 0;
  for (char ch : b) depth += ch == '{' ? 1 : ch == '}' ? -1 : 0;
  EXPECT_EQ(depth, 0);
  EXPECT_EQ(b.find(",}"), std::string::npos);
}

TEST_P(Server, MetricsIsPrometheusText) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  ASSERT_TRUE(c.exchange(get("/ping")));
  raw_client admin(s.admin_port());
  const std::optional<reply> r = admin.exchange(get("/metrics"));
  ASSERT_TRUE(has_status(r, 200));
  EXPECT_EQ(r->header("content-type").rfind("text/plain; version=0.0.4", 0), 0u)
      << r->header("content-type");
  EXPECT_NE(r->body.find("# TYPE ferry_server_requests_total counter"), std::string::npos);
  EXPECT_NE(r->body.find("ferry_server_requests_total{endpoint=\"ping\",status=\"200\"} 1\n"),
            std::string::npos)
      << r->body;
  EXPECT_NE(r->body.find("ferry_server_connections_open 1\n"), std::string::npos) << r->body;
  // The runtime's own families follow the server's.
  EXPECT_NE(r->body.find("\nferry_"), std::string::npos);
  EXPECT_NE(r->body.find("_bucket{le=\"+Inf\"}"), std::string::npos) << r->body;
  // Every sample line is "name[{labels}] value".
  const std::regex sample(R"(^[a-z_:][a-z0-9_:]*(\{[^}]*\})? [0-9.e+-]+$)");
  std::size_t pos = 0;
  while (pos < r->body.size()) {
    const std::size_t eol = r->body.find('\n', pos);
    ASSERT_NE(eol, std::string::npos) << "the last line has no newline";
    const std::string line = r->body.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#') continue;
    EXPECT_TRUE(std::regex_match(line, sample)) << line;
  }
}

TEST_P(Server, KeepAliveServesManyRequestsOnOneConnection) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  for (int i = 0; i < 20; ++i) {
    const std::optional<reply> r = c.exchange(i % 2 == 0 ? get("/ping") : get("/work?us=100"));
    ASSERT_TRUE(has_status(r, 200)) << "request " << i;
  }
  EXPECT_EQ(s.counters().connections_accepted.load(), 1u);
}

TEST_P(Server, PipelinedRequestsAreAnsweredInOrder) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  ASSERT_TRUE(c.send(get("/work?us=3000") + get("/ping") + post("/hash?rounds=1", "abc") +
                     get("/nowhere")));
  const unsigned expected[] = {200, 200, 200, 404};
  for (int i = 0; i < 4; ++i) {
    const std::optional<reply> r = c.read_reply();
    ASSERT_TRUE(r) << "response " << i;
    EXPECT_EQ(r->status, expected[i]) << "response " << i;
    if (i == 1) {
      EXPECT_EQ(r->body, "pong");
    }
  }
}

TEST_P(Server, ConnectionCloseIsHonoured) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  const std::optional<reply> r = c.exchange(get("/ping", "Connection: close\r\n"));
  ASSERT_TRUE(has_status(r, 200));
  EXPECT_TRUE(r->says_close());
  EXPECT_TRUE(c.wait_closed());
}

TEST_P(Server, Http10ClosesUnlessKeepAliveIsAsked) {
  test_server s(config_for(GetParam()));
  {
    raw_client c(s.port());
    const std::optional<reply> r = c.exchange("GET /ping HTTP/1.0\r\n\r\n");
    ASSERT_TRUE(has_status(r, 200));
    EXPECT_TRUE(r->says_close());
    EXPECT_TRUE(c.wait_closed());
  }
  raw_client c(s.port());
  for (int i = 0; i < 2; ++i) {
    const std::optional<reply> r =
        c.exchange("GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    ASSERT_TRUE(has_status(r, 200));
    EXPECT_EQ(r->header("connection"), "keep-alive");
  }
}

TEST_P(Server, SeveralIoThreadsServeConcurrentClients) {
  ferry_server::server_config config = config_for(GetParam());
  // A fixed bound above the burst: every request is admitted (the adaptive default sheds a cold
  // burst deeper than its target; server_overload_test.cpp tests that).
  config.max_offloads = 1024;
  test_server s(config, 2);
  const std::vector<unsigned> statuses = concurrent_requests(s.port(), 32, get("/work?us=500"));
  for (unsigned status : statuses) EXPECT_EQ(status, 200u);
  EXPECT_TRUE(still_serves(s.port()));
}

/// The admission policy of config_for (adaptive, the default), which a server in mode offload
/// needs its runtime to have.
ferry::admission_policy default_admission() {
  return ferry_server::admission_policy_for(config_for(execution_mode::offload));
}

TEST(ServerConfig, RejectsBadValues) {
  ferry::runtime rt(
      ferry::runtime_options{.io_threads = 1, .cpu_threads = 1, .admission = default_admission()});
  auto bad = [&](auto change) {
    ferry_server::server_config c = config_for(execution_mode::offload);
    change(c);
    EXPECT_THROW(ferry_server::server(rt, c), std::invalid_argument);
  };
  bad([](ferry_server::server_config& c) { c.address = "not an address"; });
  bad([](ferry_server::server_config& c) { c.max_connections = 0; });
  bad([](ferry_server::server_config& c) { c.admission_target = std::chrono::milliseconds(0); });
  bad([](ferry_server::server_config& c) { c.handler.max_blocking = 0; });
  bad([](ferry_server::server_config& c) {
    c.handler.request_timeout = std::chrono::milliseconds(-1);
  });
  bad([](ferry_server::server_config& c) { c.limits.max_header = 10; });
  bad([](ferry_server::server_config& c) { c.read_timeout = std::chrono::milliseconds(0); });
}

TEST(ServerConfig, RejectsAnOffloadBoundThatIsNotTheRuntimes) {
  // The heavy requests' admission is the runtime pool's (ferry::try_offload): a server whose
  // --max-offloads or --admission-target-ms differs from it would report what it does not enforce.
  ferry::runtime unbounded(ferry::runtime_options{
      .io_threads = 1, .cpu_threads = 1, .admission = ferry::admission_policy::unbounded()});
  EXPECT_THROW(ferry_server::server(unbounded, config_for(execution_mode::offload)),
               std::invalid_argument);
  ferry::runtime adaptive(ferry::runtime_options{.io_threads = 1, .cpu_threads = 1});
  ferry_server::server by_default(adaptive, config_for(execution_mode::offload));
  EXPECT_EQ(by_default.handler().config().max_offloads, 0u);
  ferry_server::server_config other_target = config_for(execution_mode::offload);
  other_target.admission_target = std::chrono::milliseconds(20);
  EXPECT_THROW(ferry_server::server(adaptive, other_target), std::invalid_argument);
  ferry_server::server_config c = config_for(execution_mode::offload);
  c.max_offloads = 3;
  ferry::runtime three(
      ferry::runtime_options{.io_threads = 1, .cpu_threads = 1, .max_offloads_in_flight = 3});
  ferry_server::server srv(three, c);
  EXPECT_EQ(srv.handler().config().max_offloads, 3u);
  // The other modes offload nothing: any runtime will do.
  ferry_server::server threads(unbounded, config_for(execution_mode::thread));
  EXPECT_GT(threads.port(), 0u);
}

TEST(ServerConfig, PortInUseIsReported) {
  test_server first(config_for(execution_mode::offload));
  ferry::runtime rt(
      ferry::runtime_options{.io_threads = 1, .cpu_threads = 1, .admission = default_admission()});
  ferry_server::server_config c = config_for(execution_mode::offload);
  c.port = first.port();
  EXPECT_THROW(ferry_server::server(rt, c), boost::system::system_error);
}

}  // namespace
