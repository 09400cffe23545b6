// tests/server/server_overload_test.cpp — ferry_server's overload protection: the runtime's
// adaptive admission by default (a fixed bound with --max-offloads), the request deadline
// (--request-timeout-ms and the Request-Timeout header: 504, queued work never runs, running
// work sees its stop token), the CPU caps of /work and /hash, and --max-blocking.
//
// Every wait is for a state of the server (a request queued, a worker held, a gauge at a value),
// never for time: the pool's workers are held by functions waiting at a gate, posted to the pool
// outside its admission, so a heavy request stays queued for as long as the test needs.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <cstddef>
#include <ferry/ferry.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http_handler.hpp"
#include "server_fixture.hpp"

namespace {

using namespace server_test;
using ferry_server::endpoint;

/// Occupies `n` workers of `rt`'s cpu pool with functions that wait at a gate until release()
/// (or destruction): heavy requests offloaded meanwhile stay queued behind them. The functions
/// are posted to the pool's executor, outside its admission: they take no admission slot, but
/// the runtime counts them among its offloads (offload_stats).
class held_workers {
 public:
  held_workers(ferry::runtime& rt, int n) : n_(n) {
    for (int i = 0; i < n; ++i) {
      boost::asio::post(rt.cpu().get_executor(), [state = state_] {
        state->started.fetch_add(1);
        state->door.wait();
      });
    }
  }
  ~held_workers() { release(); }
  held_workers(const held_workers&) = delete;
  held_workers& operator=(const held_workers&) = delete;

  /// True once every function holds its worker.
  bool holding() const {
    return eventually([&] { return state_->started.load() == n_; });
  }
  void release() { state_->door.open(); }

 private:
  struct state {
    std::atomic<int> started{0};
    ferry::test::gate door;
  };
  int n_;
  std::shared_ptr<state> state_ = std::make_shared<state>();
};

/// The test server's two workers, held: how many offloads the runtime counts for them.
constexpr std::size_t held_offloads = 2;

ferry::offload_stats offloads(test_server& s) { return s.runtime().stats().offloads; }

/// The body of GET /stats from the admin listener.
std::string stats_of(test_server& s) {
  raw_client admin(s.admin_port());
  const std::optional<reply> r = admin.exchange(get("/stats"));
  return r && r->status == 200 ? r->body : std::string();
}

TEST(ServerOverload, AdaptiveAdmissionIsTheDefaultAndMaxOffloadsFixesTheBound) {
  {
    test_server s(config_for(execution_mode::offload));
    const ferry::admission_policy& a = s.runtime().cpu().admission();
    EXPECT_EQ(a.kind, ferry::admission_policy::mode::adaptive);
    EXPECT_EQ(a.target, std::chrono::milliseconds(5));
    raw_client c(s.port());
    ASSERT_TRUE(has_status(c.exchange(get("/work?us=100")), 200));
    EXPECT_NE(stats_of(s).find("\"admission\":\"adaptive\""), std::string::npos) << stats_of(s);
  }
  {
    ferry_server::server_config config = config_for(execution_mode::offload);
    config.admission_target = std::chrono::milliseconds(20);
    test_server s(config);
    EXPECT_EQ(s.runtime().cpu().admission().target, std::chrono::milliseconds(20));
  }
  {
    ferry_server::server_config config = config_for(execution_mode::offload);
    config.max_offloads = 3;
    test_server s(config);
    EXPECT_EQ(s.runtime().cpu().admission().kind, ferry::admission_policy::mode::fixed);
    EXPECT_EQ(s.runtime().cpu().max_in_flight(), 3u);
    const std::string stats = stats_of(s);
    EXPECT_NE(stats.find("\"admission\":\"fixed\",\"limit\":3"), std::string::npos) << stats;
  }
}

TEST(ServerOverload, TheDefaultAdmissionRefusesWhatItCannotStartAt503InsteadOfQueueing) {
  test_server s(config_for(execution_mode::offload));
  held_workers hold(s.runtime(), 2);
  ASSERT_TRUE(hold.holding());
  // Heavy requests one at a time, each waited for until it is queued behind the held workers
  // or refused: the adaptive limit admits a few (never fewer than the workers), then refuses.
  std::vector<std::unique_ptr<raw_client>> queued;
  std::optional<reply> refused;
  for (int i = 0; i < 256 && !refused; ++i) {
    auto c = std::make_unique<raw_client>(s.port());
    const std::uint64_t submitted = offloads(s).submitted;
    const std::uint64_t rejected = s.counters().offloads_rejected.load();
    ASSERT_TRUE(c->send(get("/work?us=10")));
    ASSERT_TRUE(eventually([&] {
      return offloads(s).submitted > submitted || s.counters().offloads_rejected.load() > rejected;
    }));
    if (s.counters().offloads_rejected.load() > rejected) {
      refused = c->read_reply();
    } else {
      queued.push_back(std::move(c));
    }
  }
  ASSERT_TRUE(has_status(refused, 503)) << "the default admission never refused";
  EXPECT_EQ(refused->header("retry-after"), "1");
  EXPECT_GE(queued.size(), 2u);
  EXPECT_EQ(s.counters().responses_with(endpoint::work, 503), 1u);
  // Refused at once, never queued: nothing ran meanwhile, and the queued ones all run once the
  // workers are free.
  EXPECT_EQ(offloads(s).ran, 0u);
  EXPECT_EQ(offloads(s).in_flight, held_offloads + queued.size());
  hold.release();
  for (auto& c : queued) ASSERT_TRUE(has_status(c->read_reply(), 200));
  EXPECT_EQ(s.counters().responses_with(endpoint::work, 200), queued.size());
}

TEST(ServerOverload, AFullFixedBoundAnswers503WithRetryAfterAtOnce) {
  ferry_server::server_config config = config_for(execution_mode::offload);
  config.max_offloads = 1;
  test_server s(config);
  held_workers hold(s.runtime(), 2);
  ASSERT_TRUE(hold.holding());
  raw_client first(s.port());
  ASSERT_TRUE(first.send(get("/work?us=10")));
  ASSERT_TRUE(eventually([&] { return offloads(s).in_flight == held_offloads + 1; }));
  raw_client second(s.port());
  const std::optional<reply> r = second.exchange(get("/work?us=10"));
  ASSERT_TRUE(has_status(r, 503));
  EXPECT_EQ(r->header("retry-after"), "1");
  EXPECT_EQ(s.counters().offloads_rejected.load(), 1u);
  hold.release();
  ASSERT_TRUE(has_status(first.read_reply(), 200));
  ASSERT_TRUE(has_status(second.exchange(get("/work?us=10")), 200));
}

/// A /work request queued behind the held workers until its deadline passes: 504, and its work
/// never runs. `server_timeout` is the server's --request-timeout-ms; `header` the request's
/// Request-Timeout ("" for none); `expected` the deadline the 504 names.
void expect_504_while_queued(std::chrono::milliseconds server_timeout,
                             const std::string& header,
                             std::chrono::milliseconds expected) {
  ferry_server::server_config config = config_for(execution_mode::offload);
  config.handler.request_timeout = server_timeout;
  test_server s(config);
  held_workers hold(s.runtime(), 2);
  ASSERT_TRUE(hold.holding());
  raw_client c(s.port());
  const std::string extra = header.empty() ? "" : "Request-Timeout: " + header + "\r\n";
  ASSERT_TRUE(c.send(get("/work?us=10", extra)));
  // Queued: offloaded and admitted, waiting for a worker (monotonic: it stays counted).
  ASSERT_TRUE(eventually([&] { return offloads(s).submitted == held_offloads + 1; }));
  const std::optional<reply> r = c.read_reply();
  ASSERT_TRUE(has_status(r, 504));
  EXPECT_NE(r->body.find("deadline (" + std::to_string(expected.count()) + " ms)"),
            std::string::npos)
      << r->body;
  EXPECT_FALSE(r->says_close());
  EXPECT_EQ(s.counters().deadlines_passed.load(), 1u);
  EXPECT_EQ(s.counters().responses_with(endpoint::work, 504), 1u);
  // The 504 came while the workers were still held: the offload was withdrawn, not run.
  hold.release();
  ASSERT_TRUE(eventually([&] { return offloads(s).in_flight == 0; }));
  const ferry::offload_stats o = offloads(s);
  EXPECT_EQ(o.skipped, 1u);
  EXPECT_EQ(o.ran, held_offloads) << "the holders ran, the request's work did not";
  EXPECT_EQ(s.counters().offloads_peak.load(), 0u) << "the work function started";
  EXPECT_EQ(s.counters().responses_with(endpoint::work, 200), 0u);
  // The connection is kept, and the next request runs.
  ASSERT_TRUE(has_status(c.exchange(get("/work?us=10")), 200));
  raw_client admin(s.admin_port());
  const std::optional<reply> m = admin.exchange(get("/metrics"));
  ASSERT_TRUE(has_status(m, 200));
  EXPECT_NE(m->body.find("ferry_server_deadlines_passed_total 1\n"), std::string::npos);
}

TEST(ServerOverload, TheServersRequestTimeoutAnswers504AndQueuedWorkNeverRuns) {
  expect_504_while_queued(std::chrono::milliseconds(30), "", std::chrono::milliseconds(30));
}

TEST(ServerOverload, ARequestTimeoutHeaderShortensTheDeadline) {
  expect_504_while_queued(std::chrono::milliseconds(10'000), "30", std::chrono::milliseconds(30));
}

TEST(ServerOverload, ARequestTimeoutHeaderAboveTheServersIsClamped) {
  expect_504_while_queued(std::chrono::milliseconds(30), "600000", std::chrono::milliseconds(30));
}

TEST(ServerOverload, ARequestTimeoutHeaderGivesADeadlineWhenTheServerHasNone) {
  expect_504_while_queued(std::chrono::milliseconds(0), "30", std::chrono::milliseconds(30));
}

TEST(ServerOverload, RunningWorkSeesItsStopTokenWhenTheDeadlinePasses) {
  ferry_server::server_config config = config_for(execution_mode::offload);
  config.handler.max_work_us = 600'000'000;  // 10 minutes of work: only a stop ends it in time
  test_server s(config);
  raw_client c(s.port());
  ASSERT_TRUE(c.send(get("/work?us=600000000", "Request-Timeout: 20\r\n")));
  // A 504 comes only once the work function has ended (ferry::timeout awaits it) by throwing
  // the cancellation: one that ran its 10 minutes would return a value, answered 200.
  const std::optional<reply> r = c.read_reply();
  ASSERT_TRUE(has_status(r, 504));
  ASSERT_TRUE(eventually([&] { return offloads(s).in_flight == 0; }));
  const ferry::offload_stats o = offloads(s);
  EXPECT_EQ(o.ran, 1u) << "the work function started";
  EXPECT_EQ(o.failed, 1u) << "the work function ended by its stop token";
  EXPECT_EQ(s.counters().offloads_peak.load(), 1u);
  EXPECT_EQ(s.counters().offloads_in_flight.load(), 0u);
  EXPECT_EQ(s.counters().deadlines_passed.load(), 1u);
}

TEST(ServerOverload, BlockingUnderADeadlineIs504AndStops) {
  test_server s(config_for(execution_mode::offload));
  raw_client c(s.port());
  const std::optional<reply> r = c.exchange(get("/blocking?ms=10000", "Request-Timeout: 20\r\n"));
  ASSERT_TRUE(has_status(r, 504));
  EXPECT_EQ(s.counters().responses_with(endpoint::blocking, 504), 1u);
  // to_thread returned only once the sleeping function had seen its stop token.
  EXPECT_EQ(s.counters().blocking_in_flight.load(), 0u);
  ASSERT_TRUE(has_status(c.exchange(get("/blocking?ms=0")), 200));
}

TEST(ServerOverload, AMalformedRequestTimeoutIs400AndKeepsTheConnection) {
  test_server s(config_for(execution_mode::offload));
  raw_client c(s.port());
  const std::vector<std::string> bad = {"Request-Timeout: abc\r\n",
                                        "Request-Timeout: 0\r\n",
                                        "Request-Timeout: -5\r\n",
                                        "Request-Timeout: 10ms\r\n",
                                        "Request-Timeout: 1.5\r\n",
                                        "Request-Timeout:\r\n",
                                        "Request-Timeout: 1234567890123456789\r\n",
                                        "Request-Timeout: 10\r\nRequest-Timeout: 20\r\n"};
  for (const std::string& header : bad) {
    const std::optional<reply> r = c.exchange(get("/work?us=10", header));
    ASSERT_TRUE(has_status(r, 400)) << header;
    EXPECT_NE(r->body.find("Request-Timeout"), std::string::npos) << header << r->body;
  }
  EXPECT_EQ(s.counters().responses_with(endpoint::work, 400), bad.size());
  EXPECT_EQ(offloads(s).submitted, 0u);
  // Well-formed: the longest accepted, and surrounding spaces (optional whitespace).
  ASSERT_TRUE(
      has_status(c.exchange(get("/work?us=10", "Request-Timeout: 999999999999999999\r\n")), 200));
  ASSERT_TRUE(has_status(c.exchange(get("/work?us=10", "Request-Timeout:   5000  \r\n")), 200));
  EXPECT_EQ(s.counters().responses_with(endpoint::work, 200), 2u);
}

TEST(ServerOverload, CpuCapsAre400NamingTheLimitAndItsFlag) {
  ferry_server::server_config config = config_for(execution_mode::offload);
  config.handler.max_work_us = 500;
  config.handler.max_hash_rounds = 3;
  config.handler.max_blocking_ms = 7;
  test_server s(config);
  raw_client c(s.port());
  struct cap {
    std::string request;
    std::string names;  // what the 400 must say
  };
  const std::vector<cap> over = {
      {get("/work?us=501"), "us=501 is over the server's limit of 500 (--max-work-us)"},
      {post("/hash?rounds=4", "abc"),
       "rounds=4 is over the server's limit of 3 (--max-hash-rounds)"},
      {get("/blocking?ms=8"), "ms=8 is over the server's limit of 7 (--max-blocking-ms)"},
      {get("/work?us=0"), "[1, 500] (the server's --max-work-us)"},
  };
  for (const cap& k : over) {
    const std::optional<reply> r = c.exchange(k.request);
    ASSERT_TRUE(has_status(r, 400)) << k.request;
    EXPECT_NE(r->body.find(k.names), std::string::npos) << r->body;
  }
  ASSERT_TRUE(has_status(c.exchange(get("/work?us=500")), 200));
  ASSERT_TRUE(has_status(c.exchange(post("/hash?rounds=3", "abc")), 200));
  ASSERT_TRUE(has_status(c.exchange(get("/blocking?ms=7")), 200));
}

class ServerBlockingBound : public ::testing::TestWithParam<execution_mode> {};

// Mode thread runs /blocking on the connection's own thread, which a hang-up does not stop: the
// held requests would only end with their sleep.
INSTANTIATE_TEST_SUITE_P(Modes,
                         ServerBlockingBound,
                         ::testing::Values(execution_mode::offload, execution_mode::inline_),
                         mode_param_name);

TEST_P(ServerBlockingBound, BeyondMaxBlockingIs503AtOnceNeverQueued) {
  ferry_server::server_config config = config_for(GetParam());
  config.handler.max_blocking = 2;
  config.handler.request_timeout = std::chrono::milliseconds(0);
  test_server s(config);
  raw_client a(s.port());
  raw_client b(s.port());
  ASSERT_TRUE(a.send(get("/blocking?ms=10000")));
  ASSERT_TRUE(b.send(get("/blocking?ms=10000")));
  ASSERT_TRUE(eventually([&] { return s.counters().blocking_in_flight.load() == 2; }));
  raw_client third(s.port());
  const std::optional<reply> r = third.exchange(get("/blocking?ms=0"));
  ASSERT_TRUE(has_status(r, 503));
  EXPECT_EQ(r->header("retry-after"), "1");
  EXPECT_NE(r->body.find("/blocking"), std::string::npos) << r->body;
  EXPECT_EQ(s.counters().blocking_rejected.load(), 1u);
  EXPECT_EQ(s.counters().responses_with(endpoint::blocking, 503), 1u);
  EXPECT_EQ(s.counters().blocking_in_flight.load(), 2u);
  // Light requests are not subject to it.
  ASSERT_TRUE(has_status(third.exchange(get("/ping")), 200));
  // The holders hang up: their waits are cancelled and their places given back.
  a.close();
  b.close();
  ASSERT_TRUE(eventually([&] { return s.counters().blocking_in_flight.load() == 0; }));
  ASSERT_TRUE(has_status(third.exchange(get("/blocking?ms=0")), 200));
  EXPECT_EQ(s.counters().responses_with(endpoint::blocking, 200), 1u);
}

}  // namespace
