// tests/server/server_conformance_test.cpp — ferry_server held to RFC 9110/9112 on a raw socket,
// one connection per case, in each of its three modes: message framing (Transfer-Encoding,
// Content-Length, request smuggling), Host, the request-target forms, methods, HEAD, Date and
// 100-continue. A request the server rejects is answered once and the connection closed: no
// byte the client sent after the rejected header is ever read as a request.
#include <gtest/gtest.h>

#include <ferry/ferry.hpp>
#include <regex>
#include <string>
#include <vector>

#include "http_handler.hpp"
#include "server_fixture.hpp"

namespace {

using namespace server_test;
using ferry_server::endpoint;

class ServerConformance : public ::testing::TestWithParam<execution_mode> {};

FERRY_SERVER_TEST_IN_EVERY_MODE(ServerConformance);

/// A request another one hides in its body: answered 404 if it were ever read as a request.
const std::string smuggled = "GET /smuggled HTTP/1.1\r\nHost: test\r\n\r\n";

/// Sends `bytes` on a fresh connection; expects exactly one response with `status`, saying
/// close, and then the close itself with no other response.
void expect_one_answer_then_close(std::uint16_t port, const std::string& bytes, unsigned status) {
  raw_client c(port);
  ASSERT_TRUE(c.send(bytes));
  const std::optional<reply> r = c.read_reply();
  ASSERT_TRUE(r) << "no response to " << testing::PrintToString(bytes.substr(0, 120));
  EXPECT_EQ(r->status, status) << testing::PrintToString(bytes.substr(0, 120)) << " -> " << r->body;
  EXPECT_TRUE(r->says_close()) << testing::PrintToString(bytes.substr(0, 120));
  const std::optional<reply> next = c.read_reply();
  EXPECT_FALSE(next) << "a second response (" << next->status << ") to "
                     << testing::PrintToString(bytes.substr(0, 120));
  EXPECT_TRUE(c.closed_now() || c.wait_closed());
}

/// "POST /hash?rounds=1" with `headers` (each line ending in \r\n) and `body`.
std::string hash_request(const std::string& headers, const std::string& body) {
  return "POST /hash?rounds=1 HTTP/1.1\r\nHost: test\r\n" + headers + "\r\n" + body;
}

TEST_P(ServerConformance, TransferEncodingWhoseFinalCodingIsNotChunkedIs400AndCloses) {
  test_server s(config_for(GetParam()));
  const std::vector<std::string> codings = {
      "gzip",
      "identity",
      "xchunked",
      "chunked, identity",
      "chunked, chunked",
      "chunked;foo=bar",
      "",
      "unknown-coding",
  };
  for (const std::string& te : codings) {
    expect_one_answer_then_close(
        s.port(), hash_request("Transfer-Encoding: " + te + "\r\n", smuggled), 400);
  }
  // Two field lines: the last coding of the last line is the final one.
  expect_one_answer_then_close(
      s.port(),
      hash_request("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", smuggled),
      400);
  EXPECT_EQ(s.counters().responses_with(404), 0u) << "a request hidden in a body was served";
  EXPECT_EQ(s.counters().responses_with(endpoint::hash, 200), 0u);
  EXPECT_TRUE(still_serves(s.port()));
}

TEST_P(ServerConformance, ChunkedAfterAnotherCodingIs501AndCloses) {
  test_server s(config_for(GetParam()));
  expect_one_answer_then_close(
      s.port(),
      hash_request("Transfer-Encoding: gzip, chunked\r\n", "3\r\nabc\r\n0\r\n\r\n" + smuggled),
      501);
  expect_one_answer_then_close(
      s.port(),
      hash_request("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                   "3\r\nabc\r\n0\r\n\r\n" + smuggled),
      501);
  EXPECT_EQ(s.counters().responses_with(404), 0u);
  EXPECT_TRUE(still_serves(s.port()));
}

TEST_P(ServerConformance, TransferEncodingWithContentLengthIs400AndCloses) {
  test_server s(config_for(GetParam()));
  const std::string chunked_body = "3\r\nabc\r\n0\r\n\r\n";
  expect_one_answer_then_close(
      s.port(),
      hash_request("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", chunked_body + smuggled),
      400);
  expect_one_answer_then_close(
      s.port(),
      hash_request("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", chunked_body + smuggled),
      400);
  // A non-final coding before a Content-Length: neither frames the body.
  expect_one_answer_then_close(
      s.port(),
      hash_request("Transfer-Encoding: gzip\r\nContent-Length: 3\r\n", "abc" + smuggled),
      400);
  expect_one_answer_then_close(
      s.port(),
      hash_request("Content-Length: 3\r\nTransfer-Encoding: gzip\r\n", "abc" + smuggled),
      400);
  EXPECT_EQ(s.counters().responses_with(404), 0u);
  EXPECT_TRUE(still_serves(s.port()));
}

TEST_P(ServerConformance, Http10RequestWithTransferEncodingIsRejectedAndClosed) {
  test_server s(config_for(GetParam()));
  expect_one_answer_then_close(s.port(),
                               "POST /hash?rounds=1 HTTP/1.0\r\nHost: test\r\nConnection: "
                               "keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "3\r\nabc\r\n0\r\n\r\n" +
                                   smuggled,
                               400);
  EXPECT_EQ(s.counters().responses_with(404), 0u);
  // The same request without Transfer-Encoding is kept alive: what was refused is the coding.
  raw_client c(s.port());
  const std::optional<reply> r = c.exchange(
      "POST /hash?rounds=1 HTTP/1.0\r\nHost: test\r\nConnection: keep-alive\r\n"
      "Content-Length: 3\r\n\r\nabc");
  ASSERT_TRUE(has_status(r, 200));
  EXPECT_EQ(r->header("connection"), "keep-alive");
}

TEST_P(ServerConformance, ChunkedBodyIsReadAsOneRequest) {
  // The control case: a chunked body is framed by its chunks, and what follows it is the next
  // request on the connection.
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  ASSERT_TRUE(c.send(hash_request("Transfer-Encoding: chunked\r\n", "3\r\nabc\r\n0\r\n\r\n") +
                     get("/ping")));
  const std::optional<reply> hashed = c.read_reply();
  ASSERT_TRUE(has_status(hashed, 200));
  EXPECT_EQ(hashed->body, ferry_server::hash_digest("abc", 1, 256 * 1024, false) + "\n");
  const std::optional<reply> pong = c.read_reply();
  ASSERT_TRUE(has_status(pong, 200));
  EXPECT_EQ(pong->body, "pong");
}

TEST_P(ServerConformance, HostIsRequiredOnceAndValid) {
  test_server s(config_for(GetParam()));
  expect_one_answer_then_close(s.port(), "GET /ping HTTP/1.1\r\n\r\n", 400);
  expect_one_answer_then_close(
      s.port(), "GET /ping HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", 400);
  for (const std::string host :
       {"a b", "user@host", "host/path", "[::1", "host:port", "host:123456", "%zz", "[::1]x"}) {
    expect_one_answer_then_close(s.port(), "GET /ping HTTP/1.1\r\nHost: " + host + "\r\n\r\n", 400);
  }
  EXPECT_EQ(s.counters().responses_with(endpoint::ping, 200), 0u);
  for (const std::string host :
       {"", "example.com", "example.com:8080", "127.0.0.1:80", "[::1]:8080", "[::1]", "a%20b"}) {
    raw_client c(s.port());
    const std::optional<reply> r = c.exchange("GET /ping HTTP/1.1\r\nHost: " + host + "\r\n\r\n");
    EXPECT_TRUE(has_status(r, 200)) << "Host: " << host;
  }
  // HTTP/1.0 needs no Host.
  raw_client c(s.port());
  EXPECT_TRUE(has_status(c.exchange("GET /ping HTTP/1.0\r\n\r\n"), 200));
}

TEST_P(ServerConformance, AbsoluteFormTargetsAreAccepted) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  std::optional<reply> r = c.exchange("GET http://test/ping HTTP/1.1\r\nHost: test\r\n\r\n");
  ASSERT_TRUE(has_status(r, 200));
  EXPECT_EQ(r->body, "pong");
  r = c.exchange("GET HTTP://test:8080/work?us=10 HTTP/1.1\r\nHost: test:8080\r\n\r\n");
  ASSERT_TRUE(has_status(r, 200));
  r = c.exchange("GET http://test HTTP/1.1\r\nHost: test\r\n\r\n");
  ASSERT_TRUE(has_status(r, 404));  // the path "/"
  EXPECT_FALSE(r->says_close());
  expect_one_answer_then_close(s.port(), "GET ftp://test/ping HTTP/1.1\r\nHost: test\r\n\r\n", 400);
  expect_one_answer_then_close(s.port(), "GET http:///ping HTTP/1.1\r\nHost: test\r\n\r\n", 400);
}

TEST_P(ServerConformance, OptionsAsteriskListsTheMethods) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  const std::optional<reply> r = c.exchange("OPTIONS * HTTP/1.1\r\nHost: test\r\n\r\n");
  ASSERT_TRUE(has_status(r, 200));
  EXPECT_EQ(r->header("allow"), "GET, HEAD, POST, OPTIONS");
  EXPECT_EQ(r->header("content-length"), "0");
  expect_one_answer_then_close(s.port(), "GET * HTTP/1.1\r\nHost: test\r\n\r\n", 400);
}

TEST_P(ServerConformance, UnknownMethodsGet501KnownOnesTheWrongRoute405) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  std::optional<reply> r = c.exchange("BREW /ping HTTP/1.1\r\nHost: test\r\n\r\n");
  ASSERT_TRUE(has_status(r, 501));
  EXPECT_FALSE(r->says_close());
  r = c.exchange("CONNECT /ping HTTP/1.1\r\nHost: test\r\n\r\n");
  ASSERT_TRUE(has_status(r, 501));
  r = c.exchange("DELETE /ping HTTP/1.1\r\nHost: test\r\n\r\n");
  ASSERT_TRUE(has_status(r, 405));
  EXPECT_EQ(r->header("allow"), "GET, HEAD");
  r = c.exchange(get("/hash?rounds=1"));
  ASSERT_TRUE(has_status(r, 405));
  EXPECT_EQ(r->header("allow"), "POST");
  // The connection was kept through all of them.
  r = c.exchange(get("/ping"));
  ASSERT_TRUE(has_status(r, 200));
}

TEST_P(ServerConformance, HeadIsGetWithoutTheBodyOnEveryRoute) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  // Answers with a body of the same length to GET and to HEAD, errors included.
  for (const std::string target :
       {"/ping", "/health", "/work?us=10", "/blocking?ms=0", "/nowhere", "/work?us=0", "/hash"}) {
    const std::optional<reply> got = c.exchange(get(target));
    ASSERT_TRUE(got) << target;
    ASSERT_FALSE(got->says_close()) << target;
    ASSERT_TRUE(c.send("HEAD " + target + " HTTP/1.1\r\nHost: test\r\n\r\n"));
    const std::optional<reply> head = c.read_head_reply();
    ASSERT_TRUE(head) << target;
    EXPECT_EQ(head->status, got->status) << target;
    EXPECT_EQ(head->header("content-length"), std::to_string(got->body.size())) << target;
    EXPECT_EQ(head->header("content-type"), got->header("content-type")) << target;
  }
  // No byte of a body followed any HEAD answer: the next response parses from its first byte.
  const std::optional<reply> r = c.exchange(get("/ping"));
  ASSERT_TRUE(has_status(r, 200));
  EXPECT_EQ(r->body, "pong");
  EXPECT_TRUE(c.unparsed().empty());
}

TEST_P(ServerConformance, HeadRejectedForItsFramingHasNoBody) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  ASSERT_TRUE(c.send("HEAD /ping HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"));
  const std::optional<reply> r = c.read_head_reply();
  ASSERT_TRUE(has_status(r, 400));
  EXPECT_NE(r->header("content-length"), "0");
  EXPECT_FALSE(c.read_reply());  // the close, and nothing before it
  EXPECT_TRUE(c.unparsed().empty()) << "a body followed the answer to a HEAD";
}

TEST_P(ServerConformance, EveryResponseHasADate) {
  ferry_server::server_config config = config_for(GetParam());
  config.limits.max_header = 1024;
  test_server s(config);
  const std::regex imf_fixdate(
      R"((Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT)");
  const std::vector<std::string> requests = {
      get("/ping"),
      get("/nowhere"),
      get("/work?us=0"),
      post("/hash?rounds=1", "abc"),
      "BREW / HTTP/1.1\r\nHost: test\r\n\r\n",
      "NOT HTTP\r\n\r\n",
      get("/ping", "X: " + std::string(2000, 'x') + "\r\n"),
      get("/" + std::string(2000, 'x')),
  };
  for (const std::string& request : requests) {
    raw_client c(s.port());
    const std::optional<reply> r = c.exchange(request);
    ASSERT_TRUE(r) << request.substr(0, 40);
    EXPECT_TRUE(std::regex_match(r->header("date"), imf_fixdate))
        << r->status << " '" << r->header("date") << "'";
  }
}

TEST_P(ServerConformance, ContinueOnlyForHttp11) {
  test_server s(config_for(GetParam()));
  {
    raw_client c(s.port());
    const std::optional<reply> r = c.exchange(
        "POST /hash?rounds=1 HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\n"
        "Content-Length: 3\r\n\r\nabc");
    ASSERT_TRUE(has_status(r, 200));
    EXPECT_EQ(c.interim_replies(), 1);
  }
  {
    raw_client c(s.port());
    const std::optional<reply> r = c.exchange(
        "POST /hash?rounds=1 HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc");
    ASSERT_TRUE(has_status(r, 200));
    EXPECT_EQ(c.interim_replies(), 0) << "100 Continue sent to an HTTP/1.0 client";
  }
}

TEST_P(ServerConformance, LongRequestTargetIs414LongHeaderIs431) {
  ferry_server::server_config config = config_for(GetParam());
  config.limits.max_header = 1024;
  test_server s(config);
  expect_one_answer_then_close(s.port(), get("/ping?" + std::string(4096, 'q')), 414);
  // Longer than the read buffer too: the line never ends.
  expect_one_answer_then_close(s.port(), get("/ping?" + std::string(100'000, 'q')), 414);
  expect_one_answer_then_close(
      s.port(), get("/ping", "X: " + std::string(4096, 'x') + "\r\n"), 431);
  EXPECT_EQ(s.counters().responses_with(endpoint::other, 414), 2u);
  EXPECT_EQ(s.counters().responses_with(endpoint::other, 431), 1u);
  EXPECT_TRUE(still_serves(s.port()));
}

}  // namespace
