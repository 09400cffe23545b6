// tests/server/server_limits_test.cpp — every input of ferry_server has a bound, checked as the
// bytes arrive, in each of its three modes: chunk extensions and trailers (what the parser keeps
// whole, bounded by the connection's read buffer), a chunk extension streamed without end, and
// the connections of one client address.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <ferry/ferry.hpp>
#include <fstream>
#include <string>

#include "http_handler.hpp"
#include "server_fixture.hpp"

namespace {

using namespace server_test;
using ferry_server::endpoint;

class ServerLimits : public ::testing::TestWithParam<execution_mode> {};

FERRY_SERVER_TEST_IN_EVERY_MODE(ServerLimits);

const std::string chunked_head =
    "POST /hash?rounds=1 HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n";

/// Sends `bytes` on a fresh connection; expects one response with `status`, then the close.
void expect_rejected(std::uint16_t port, const std::string& bytes, unsigned status) {
  raw_client c(port);
  ASSERT_TRUE(c.send(bytes));
  const std::optional<reply> r = c.read_reply();
  ASSERT_TRUE(r) << "no response";
  EXPECT_EQ(r->status, status) << r->body;
  EXPECT_TRUE(r->says_close());
  EXPECT_TRUE(c.wait_closed());
}

TEST_P(ServerLimits, ChunkExtensionsAndTrailersThatFitAreAccepted) {
  test_server s(config_for(GetParam()));
  raw_client c(s.port());
  const std::optional<reply> r =
      c.exchange(chunked_head + "3;name=value;flag\r\nabc\r\n0;last=1\r\nX-Trailer: t\r\n\r\n");
  ASSERT_TRUE(has_status(r, 200));
  EXPECT_EQ(r->body, ferry_server::hash_digest("abc", 1, 256 * 1024, false) + "\n");
}

TEST_P(ServerLimits, ChunkLineLongerThanTheReadBufferIs400) {
  ferry_server::server_config config = config_for(GetParam());
  config.limits.max_header = 1024;  // the read buffer: max(1024, 4096) bytes
  test_server s(config);
  expect_rejected(
      s.port(), chunked_head + "1;ext=" + std::string(8192, 'e') + "\r\na\r\n0\r\n\r\n", 400);
  // The same after a first chunk (the line then starts with the CRLF that ends that chunk).
  expect_rejected(
      s.port(), chunked_head + "1\r\na\r\n1;" + std::string(8192, 'e') + "\r\na\r\n0\r\n\r\n", 400);
  EXPECT_EQ(s.counters().responses_with(endpoint::other, 400), 2u);
  EXPECT_EQ(s.counters().responses_with(endpoint::hash, 200), 0u);
  EXPECT_TRUE(still_serves(s.port()));
}

TEST_P(ServerLimits, TrailerSectionLargerThanTheReadBufferIs431) {
  ferry_server::server_config config = config_for(GetParam());
  config.limits.max_header = 1024;
  test_server s(config);
  expect_rejected(
      s.port(), chunked_head + "1\r\na\r\n0\r\nX-Big: " + std::string(8192, 't') + "\r\n\r\n", 431);
  std::string many;
  for (int i = 0; i < 1000; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  expect_rejected(s.port(), chunked_head + "1\r\na\r\n0\r\n" + many + "\r\n", 431);
  EXPECT_EQ(s.counters().responses_with(endpoint::other, 431), 2u);
  EXPECT_TRUE(still_serves(s.port()));
}

/// The process's peak resident set since the last reset_peak_rss(), in bytes (0: unknown).
std::size_t peak_rss() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

/// Resets the peak resident set to the current one (false when the kernel does not allow it).
bool reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return clear.good();
}

TEST_P(ServerLimits, EndlessChunkExtensionIsCutOffWithBoundedMemory) {
  // A chunk line of 256 MiB: "1;" then extension bytes that never end. The server may hold
  // its read buffer of it (8 KiB at the default --max-header), answers 400 and closes; the
  // client never gets to send it all, and the process's peak memory barely moves.
  test_server s(config_for(GetParam()));
  constexpr std::size_t total = std::size_t{256} << 20;
  constexpr std::size_t memory_bound = std::size_t{32} << 20;
  const bool peak_reset = reset_peak_rss();
  const std::size_t peak_before = peak_rss();

  raw_client c(s.port());
  ASSERT_TRUE(c.send(chunked_head + "1;"));
  // Stream until the server answers (or closes), never blocking on a full socket.
  const std::string block(64 * 1024, 'e');
  std::size_t sent = 0;
  const auto deadline = clock_type::now() + guard;
  bool answered = false;
  while (sent < total && clock_type::now() < deadline) {
    pollfd p{c.fd(), POLLIN | POLLOUT, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    if ((p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      answered = true;
      break;
    }
    const ssize_t n = ::send(
        c.fd(), block.data(), std::min(block.size(), total - sent), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (errno != EAGAIN && errno != EINTR) {
      answered = true;  // the server closed: its answer is in our receive buffer
      break;
    }
  }
  ASSERT_TRUE(answered) << "the server took " << sent << " bytes of one chunk line";
  EXPECT_LT(sent, total);
  const std::optional<reply> r = c.read_reply();
  ASSERT_TRUE(has_status(r, 400));
  EXPECT_TRUE(r->says_close());
  c.close();
  EXPECT_TRUE(still_serves(s.port()));
  EXPECT_TRUE(eventually([&] { return s.counters().connections_open.load() == 0; }));
  if (peak_reset && peak_before > 0) {
    EXPECT_LT(peak_rss() - peak_before, memory_bound)
        << "peak RSS grew from " << peak_before << " to " << peak_rss() << " bytes";
  }
}

TEST_P(ServerLimits, ConnectionsOverThePerClientLimitAreRefusedAtOnce) {
  ferry_server::server_config config = config_for(GetParam());
  config.max_connections_per_client = 2;
  test_server s(config);
  raw_client a(s.port());
  raw_client b(s.port());
  ASSERT_TRUE(has_status(a.exchange(get("/ping")), 200));
  ASSERT_TRUE(has_status(b.exchange(get("/ping")), 200));
  for (int i = 0; i < 3; ++i) expect_connection_refused(s.port());
  EXPECT_EQ(s.counters().connections_refused_per_client.load(), 3u);
  EXPECT_EQ(s.counters().connections_refused.load(), 0u);
  // Once one of the two closes, the address may open another.
  b.close();
  ASSERT_TRUE(eventually([&] { return s.counters().connections_open.load() == 1; }));
  EXPECT_TRUE(still_serves(s.port()));
  EXPECT_TRUE(has_status(a.exchange(get("/ping")), 200));
}

TEST_P(ServerLimits, NoPerClientLimitWhenZero) {
  // More connections from one address than the default limit (256) allows.
  constexpr std::size_t n = 300;
  const rlim_t wanted = 2 * n + 256;
  if (const rlim_t limit = raise_fd_limit(wanted); limit < wanted) {
    GTEST_SKIP() << "needs " << wanted << " open descriptors; RLIMIT_NOFILE allows " << limit;
  }
  ferry_server::server_config config = config_for(GetParam());
  ASSERT_LT(config.max_connections_per_client, n);
  config.max_connections_per_client = 0;
  test_server s(config);
  const std::vector<unsigned> statuses = concurrent_requests(s.port(), n, get("/ping"));
  for (const unsigned status : statuses) EXPECT_EQ(status, 200u);
  EXPECT_EQ(s.counters().connections_refused_per_client.load(), 0u);
}

}  // namespace
