// tests/server/request_path_test.cpp — ferry_server's request path without sockets: routing,
// the kernels, and respond_to_bytes (the fuzzer's entry point) on well-formed and bad input.
#include <gtest/gtest.h>

#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>
#include <ferry/ferry.hpp>
#include <stop_token>
#include <string>
#include <variant>

#include "http_handler.hpp"

namespace {

using namespace ferry_server;

handler_config fast_config() {
  handler_config c;
  c.mode = execution_mode::inline_;
  c.iterations_per_us = 10;  // no calibration: the same on every build
  return c;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t pos = text.find(what); pos != std::string::npos;
       pos = text.find(what, pos + 1)) {
    ++n;
  }
  return n;
}

TEST(RequestPath, RoutesEveryEndpoint) {
  server_counters counters;
  const http_handler h(fast_config(), counters, nullptr);
  auto route = [&](std::string method, std::string target, std::string body = {}) {
    request r{std::move(method), std::move(target), std::move(body), 11, true};
    return h.route(r);
  };
  EXPECT_EQ(std::get<response>(route("GET", "/ping")).body, "pong");
  EXPECT_EQ(std::get<response>(route("GET", "/stats")).status, 404u);  // admin listener only
  auto admin_route = [&](std::string target) {
    request r{"GET", std::move(target), {}, 11, true, true};
    return h.route(r);
  };
  EXPECT_EQ(std::get<response>(admin_route("/stats")).content_type, "application/json");
  EXPECT_EQ(std::get<response>(admin_route("/metrics")).status, 200u);
  std::variant<response, job> tasks = admin_route("/debug/tasks");
  ASSERT_TRUE(std::holds_alternative<job>(tasks));
  EXPECT_FALSE(std::get<job>(tasks).is_cpu());
  EXPECT_EQ(h.run(std::get<job>(tasks), {}, false).body, "no runtime\n");
  EXPECT_EQ(std::get<response>(route("GET", "/ping?ignored=1")).status, 200u);

  std::variant<response, job> w = route("GET", "/work?us=123");
  ASSERT_TRUE(std::holds_alternative<job>(w));
  EXPECT_EQ(std::get<job>(w).what, job::kind::work);
  EXPECT_EQ(std::get<job>(w).amount, 123u);

  std::variant<response, job> hs = route("POST", "/hash?rounds=4", "payload");
  ASSERT_TRUE(std::holds_alternative<job>(hs));
  EXPECT_EQ(std::get<job>(hs).body, "payload");
  EXPECT_EQ(std::get<job>(hs).amount, 4u);

  std::variant<response, job> b = route("GET", "/blocking?ms=0");
  ASSERT_TRUE(std::holds_alternative<job>(b));
  EXPECT_FALSE(std::get<job>(b).is_cpu());

  EXPECT_EQ(std::get<response>(route("GET", "/ping/")).status, 404u);
  EXPECT_EQ(std::get<response>(route("HEAD", "/ping")).body, "pong");  // HEAD routes as GET
  EXPECT_EQ(std::get<response>(route("PUT", "/ping")).status, 405u);
  EXPECT_EQ(std::get<response>(route("PUT", "/ping")).allow, "GET, HEAD");
  EXPECT_EQ(std::get<response>(route("BREW", "/ping")).status, 501u);
  EXPECT_EQ(std::get<response>(route("GET", "http://host:80/ping")).body, "pong");
  EXPECT_EQ(std::get<response>(route("GET", "mailto:x")).status, 400u);
  EXPECT_EQ(std::get<response>(route("OPTIONS", "*")).status, 200u);
  EXPECT_EQ(std::get<response>(route("GET", "/work?us=1000001")).status, 400u);
  EXPECT_EQ(std::get<response>(route("GET", "/work?us=+5")).status, 400u);
  // Unknown parameters are ignored.
  std::variant<response, job> extra = route("GET", "/work?x=1&us=7&y");
  ASSERT_TRUE(std::holds_alternative<job>(extra));
  EXPECT_EQ(std::get<job>(extra).amount, 7u);
}

TEST(RequestPath, RunsJobsInline) {
  server_counters counters;
  const http_handler h(fast_config(), counters, nullptr);
  job w{job::kind::work, 50, {}};
  const response a = h.run(w, {}, false);
  const response b = h.run(w, {}, false);
  EXPECT_EQ(a.status, 200u);
  EXPECT_EQ(a.body, b.body);  // deterministic for a given kernel speed
  job hs{job::kind::hash, 3, "abc"};
  EXPECT_EQ(h.run(hs, {}, false).body, hash_digest("abc", 3, 256 * 1024, false) + "\n");
  job bl{job::kind::blocking, 1, {}};
  EXPECT_EQ(h.run(bl, {}, false).body, "slept 1 ms\n");
}

TEST(RequestPath, JobsStopWhenAsked) {
  server_counters counters;
  const http_handler h(fast_config(), counters, nullptr);
  std::stop_source stop;
  stop.request_stop();
  auto aborted = [&](job j) {
    try {
      h.run(j, stop.get_token(), false);
    } catch (const boost::system::system_error& e) {
      return e.code() == boost::asio::error::operation_aborted;
    }
    return false;
  };
  EXPECT_TRUE(aborted(job{job::kind::work, 1'000'000, {}}));
  EXPECT_TRUE(aborted(job{job::kind::hash, 1000, std::string(1000, 'x')}));
  EXPECT_TRUE(aborted(job{job::kind::hash, 1000, std::string(300 * 1024, 'x')}));
  EXPECT_TRUE(aborted(job{job::kind::blocking, 60'000, {}}));
}

TEST(RequestPath, HashDigestIsTheSameInParallel) {
  std::string body(1536 * 1024 + 77, '\0');
  for (std::size_t i = 0; i < body.size(); ++i)
    body[i] = static_cast<char>((i * 2654435761u) >> 13);
  const std::string sequential = hash_digest(body, 5, 256 * 1024, false);
  ferry::cpu_pool pool(2);
  std::string parallel;
  ferry::run([&]() -> ferry::task<void> {
    parallel =
        co_await ferry::offload(pool, [&] { return hash_digest(body, 5, 256 * 1024, true); });
  }());
  EXPECT_EQ(parallel, sequential);
  EXPECT_EQ(sequential.size(), 16u);
  // Different rounds, different bodies, different digests.
  EXPECT_NE(hash_digest(body, 4, 256 * 1024, false), sequential);
  body[12345] ^= 1;
  EXPECT_NE(hash_digest(body, 5, 256 * 1024, false), sequential);
  EXPECT_NE(hash_digest("a", 1, 256 * 1024, false), hash_digest("b", 1, 256 * 1024, false));
  EXPECT_NE(hash_digest("", 1, 256 * 1024, false), hash_digest("", 2, 256 * 1024, false));
}

TEST(RespondToBytes, AnswersPipelinedRequestsInOrder) {
  server_counters counters;
  const http_handler h(fast_config(), counters, nullptr);
  const std::string out = respond_to_bytes(
      h,
      "GET /ping HTTP/1.1\r\nHost: x\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /hash?rounds=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /work?us=5 "
      "HTTP/1.1\r\nHost: x\r\n\r\n",
      {});
  EXPECT_EQ(count(out, "HTTP/1.1 "), 4u) << out;
  const std::size_t ping = out.find("HTTP/1.1 200 OK");
  const std::size_t missing = out.find("HTTP/1.1 404 Not Found");
  ASSERT_NE(ping, std::string::npos);
  ASSERT_NE(missing, std::string::npos);
  EXPECT_LT(ping, missing);
  EXPECT_NE(out.find(hash_digest("abc", 1, 256 * 1024, false)), std::string::npos);
  EXPECT_EQ(counters.responses_with(200), 3u);
  EXPECT_EQ(counters.responses_with(404), 1u);
}

TEST(RespondToBytes, StopsAtTheFirstError) {
  server_counters counters;
  const http_handler h(fast_config(), counters, nullptr);
  const std::string out = respond_to_bytes(
      h,
      "GET /ping HTTP/1.1\r\nHost: x\r\n\r\nBROKEN\r\n\r\nGET /ping HTTP/1.1\r\nHost: x\r\n\r\n",
      {});
  EXPECT_EQ(count(out, "HTTP/1.1 "), 2u) << out;
  EXPECT_NE(out.find("HTTP/1.1 400 Bad Request"), std::string::npos);
  EXPECT_NE(out.find("Connection: close"), std::string::npos);
}

TEST(RespondToBytes, StopsAfterConnectionClose) {
  server_counters counters;
  const http_handler h(fast_config(), counters, nullptr);
  const std::string out = respond_to_bytes(h,
                                           "GET /ping HTTP/1.1\r\nHost: x\r\nConnection: "
                                           "close\r\n\r\nGET /ping HTTP/1.1\r\nHost: x\r\n\r\n",
                                           {});
  EXPECT_EQ(count(out, "HTTP/1.1 "), 1u) << out;
}

TEST(RespondToBytes, AppliesTheLimits) {
  server_counters counters;
  const http_handler h(fast_config(), counters, nullptr);
  const parser_limits small{.max_header = 128, .max_body = 16};
  EXPECT_NE(
      respond_to_bytes(
          h, "GET /ping HTTP/1.1\r\nHost: x\r\nX: " + std::string(200, 'a') + "\r\n\r\n", small)
          .find("HTTP/1.1 431"),
      std::string::npos);
  EXPECT_NE(respond_to_bytes(
                h, "POST /hash?rounds=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n", small)
                .find("HTTP/1.1 413"),
            std::string::npos);
  EXPECT_NE(respond_to_bytes(
                h,
                "POST /hash?rounds=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                "a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n",
                small)
                .find("HTTP/1.1 413"),
            std::string::npos);
}

TEST(RespondToBytes, IncompleteInputGetsNoAnswer) {
  server_counters counters;
  const http_handler h(fast_config(), counters, nullptr);
  EXPECT_EQ(respond_to_bytes(h, "GET /ping HTTP/1.1\r\nHost: x", {}), "");
  EXPECT_EQ(respond_to_bytes(
                h, "POST /hash?rounds=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", {}),
            "");
  EXPECT_EQ(respond_to_bytes(h, "", {}), "");
}

TEST(RespondToBytes, ExpectContinueGetsTheInterimResponse) {
  server_counters counters;
  const http_handler h(fast_config(), counters, nullptr);
  const std::string out = respond_to_bytes(h,
                                           "POST /hash?rounds=1 HTTP/1.1\r\nHost: x\r\nExpect: "
                                           "100-continue\r\nContent-Length: 3\r\n\r\nabc",
                                           {});
  EXPECT_EQ(out.rfind("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK", 0), 0u) << out;
}

TEST(RespondToBytes, NoRequestHidesInABodyTheFramingCannotDelimit) {
  server_counters counters;
  const http_handler h(fast_config(), counters, nullptr);
  const std::string hidden = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
  for (const std::string te : {"gzip", "identity", "xchunked", "chunked, identity"}) {
    const std::string out = respond_to_bytes(
        h,
        "POST /hash?rounds=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + te + "\r\n\r\n" + hidden,
        {});
    EXPECT_EQ(out.rfind("HTTP/1.1 400 ", 0), 0u) << te << ": " << out;
    EXPECT_EQ(count(out, "HTTP/1.1 "), 1u) << te << ": " << out;
  }
  const std::string out = respond_to_bytes(
      h,
      "POST /hash?rounds=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
      "0\r\n\r\n" +
          hidden,
      {});
  EXPECT_EQ(out.rfind("HTTP/1.1 501 ", 0), 0u) << out;
  EXPECT_EQ(counters.responses_with(404), 0u);
}

TEST(RespondToBytes, HeadHasTheHeaderOfGetAndNoBody) {
  server_counters counters;
  const http_handler h(fast_config(), counters, nullptr);
  const std::string got = respond_to_bytes(h, "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n", {});
  const std::string head = respond_to_bytes(h, "HEAD /ping HTTP/1.1\r\nHost: x\r\n\r\n", {});
  ASSERT_GE(got.size(), 4u);
  EXPECT_EQ(head, got.substr(0, got.size() - 4)) << "HEAD: " << head << "\nGET: " << got;
  EXPECT_NE(head.find("\r\nContent-Length: 4\r\n"), std::string::npos);
}

TEST(RespondToBytes, LongTargetIs414) {
  server_counters counters;
  const http_handler h(fast_config(), counters, nullptr);
  const parser_limits small{.max_header = 128, .max_body = 16};
  EXPECT_EQ(
      respond_to_bytes(h, "GET /" + std::string(300, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", small)
          .rfind("HTTP/1.1 414 ", 0),
      0u);
}

TEST(RequestPath, ScrubAddressesKeepsSymbolsAndOffsetsOnly) {
  EXPECT_EQ(scrub_addresses("#0 0x7f3a1b2c3d4e (/usr/lib/x86_64-linux-gnu/libc.so.6+0x9a1b2)\n"),
            "#0 <addr> (libc.so.6+0x9a1b2)\n");
  EXPECT_EQ(scrub_addresses("#1 spin() at /home/build/app/src/server.cpp:42\n"),
            "#1 spin() at server.cpp:42\n");
  EXPECT_EQ(scrub_addresses("#2 foo+0x1f (/opt/app/bin/ferry_server)\n"),
            "#2 foo+0x1f (ferry_server)\n");
  EXPECT_EQ(scrub_addresses("task_group 0x55d0c0ffee00: 2 unfinished children"),
            "task_group <addr>: 2 unfinished children");
  EXPECT_EQ(scrub_addresses("GET /ping awaits sleep"), "GET /ping awaits sleep");  // not a path
}

TEST(RespondToBytes, ChunkLinesAndTrailersAreBoundedByTheReadBuffer) {
  server_counters counters;
  const http_handler h(fast_config(), counters, nullptr);
  const parser_limits small{.max_header = 128, .max_body = 1 << 20};  // read buffer: 4 KiB
  const std::string head =
      "POST /hash?rounds=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  EXPECT_EQ(respond_to_bytes(h, head + "1;" + std::string(5000, 'e') + "\r\na\r\n0\r\n\r\n", small)
                .rfind("HTTP/1.1 400 ", 0),
            0u);
  EXPECT_EQ(
      respond_to_bytes(h, head + "1\r\na\r\n0\r\nX: " + std::string(5000, 't') + "\r\n\r\n", small)
          .rfind("HTTP/1.1 431 ", 0),
      0u);
  // Within the bound: answered.
  EXPECT_EQ(respond_to_bytes(h, head + "1;" + std::string(3000, 'e') + "\r\na\r\n0\r\n\r\n", small)
                .rfind("HTTP/1.1 200 ", 0),
            0u);
}

}  // namespace
