// tests/server/server_fixture.hpp — a real ferry_server on 127.0.0.1 in this process, and a raw
// TCP client that can send anything (garbage included) and read HTTP responses.
//
//   test_server s(config_for(execution_mode::offload));   // listening when constructed
//   raw_client c(s.port());
//   c.send("GET /ping HTTP/1.1\r\nHost: test\r\n\r\n");
//   std::optional<reply> r = c.read_reply();             // nullopt: closed before a reply
//
// Every wait has a generous guard (a hang fails the test instead of blocking CI); no test
// asserts how long anything took.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <ferry/bridge/runtime.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "ferry_test.hpp"
#include "server.hpp"

namespace ferry_server {
/// Test names and messages print the mode by name ("offload") rather than as bytes.
inline void PrintTo(execution_mode mode, std::ostream* os) { *os << to_string(mode); }
}  // namespace ferry_server

namespace server_test {

using namespace std::chrono_literals;
using ferry_server::execution_mode;
using clock_type = std::chrono::steady_clock;

/// The hang guard of every wait in these tests: the one all of ferry's tests use.
inline constexpr std::chrono::milliseconds guard = ferry::test::hang_guard;

inline std::string mode_name(execution_mode m) { return std::string(ferry_server::to_string(m)); }

inline std::string mode_param_name(const ::testing::TestParamInfo<execution_mode>& info) {
  return mode_name(info.param);
}

/// Runs the TEST_Ps of `suite` (a ::testing::TestWithParam<execution_mode>) in each of the
/// server's three modes, named Modes/<suite>.<test>/<mode>.
#define FERRY_SERVER_TEST_IN_EVERY_MODE(suite)                                        \
  INSTANTIATE_TEST_SUITE_P(Modes,                                                     \
                           suite,                                                     \
                           ::testing::Values(::ferry_server::execution_mode::offload, \
                                             ::ferry_server::execution_mode::inline_, \
                                             ::ferry_server::execution_mode::thread), \
                           ::server_test::mode_param_name)

/// A config for tests: port 0 (the kernel picks), an admin listener on another port the kernel
/// picks (test_server::admin_port), the given mode, the contract's defaults.
/// The work kernel is calibrated at start-up, so /work?us=N stays ~N µs under sanitizers too.
inline ferry_server::server_config config_for(execution_mode mode) {
  ferry_server::server_config c;
  c.port = 0;
  c.admin_port = 0;
  c.handler.mode = mode;
  return c;
}

/// Polls `pred` until it holds; false after the guard.
inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = guard) {
  return ferry::test::wait_until(pred, limit);
}

/// A server running `run()` on its own runtime (`io_threads` io threads, 2 cpu workers, the
/// admission policy of `config`: admission_policy_for) under
/// runtime::run on a thread of the test. `stop()` asks it to shut down (as SIGTERM does) and
/// waits for run() to return.
class test_server {
 public:
  explicit test_server(ferry_server::server_config config, std::size_t io_threads = 1)
      : rt_(ferry::runtime_options{.io_threads = io_threads,
                                   .cpu_threads = 2,
                                   .admission = ferry_server::admission_policy_for(config)}),
        srv_(rt_, std::move(config)),
        thread_([this] {
          try {
            rt_.run(main());
          } catch (...) {
            error_ = std::current_exception();
          }
          finished_.store(true);
        }) {
    // From here on request_stop() reaches run() (before runtime::run starts, it is a no-op).
    if (!eventually([this] { return started_.load() || finished_.load(); })) {
      throw std::runtime_error("the server's runtime::run did not start");
    }
  }

  ~test_server() { stop(); }

  test_server(const test_server&) = delete;
  test_server& operator=(const test_server&) = delete;

  std::uint16_t port() const { return srv_.port(); }
  /// The admin listener's port (/stats, /metrics, /debug/tasks).
  std::uint16_t admin_port() const { return srv_.admin_port(); }
  const ferry_server::server_counters& counters() const { return srv_.counters(); }
  int backlog() const { return srv_.backlog(); }
  ferry::runtime& runtime() { return rt_; }

  /// Asks for the graceful shutdown (like SIGTERM) without waiting for it.
  void request_stop() {
    stop_requested_ = true;
    rt_.request_stop();
  }

  /// True once run() has returned.
  bool finished() const { return finished_.load(); }

  /// Requests the shutdown (unless requested already) and waits for run() to return.
  void stop() {
    if (!thread_.joinable()) return;
    if (!stop_requested_) rt_.request_stop();
    thread_.join();
  }

  /// Asks for the shutdown once more: the drain is cut short (what a second SIGTERM does).
  void request_stop_again() { rt_.request_stop(); }

  /// run()'s exception, if any (after stop()).
  std::exception_ptr error() const { return error_; }

 private:
  ferry::task<void> main() {
    started_.store(true);
    co_await srv_.run();
  }

  ferry::runtime rt_;
  ferry_server::server srv_;
  std::atomic<bool> started_{false};
  std::atomic<bool> finished_{false};
  bool stop_requested_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

/// One parsed response.
struct reply {
  unsigned status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
  bool says_close() const { return header("connection") == "close"; }
};

/// Success when a reply came (`r`) and its status is `status`; otherwise says what came instead.
/// `ASSERT_TRUE(has_status(r, 200))` before reading the rest of `r`.
inline ::testing::AssertionResult has_status(const std::optional<reply>& r, unsigned status) {
  if (!r) return ::testing::AssertionFailure() << "no reply (expected status " << status << ")";
  if (r->status != status) {
    return ::testing::AssertionFailure() << "status " << r->status << ", expected " << status;
  }
  return ::testing::AssertionSuccess();
}

/// A blocking TCP client on a raw socket, with poll-guarded reads.
class raw_client {
 public:
  explicit raw_client(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      const int e = errno;
      ::close(fd_);
      fd_ = -1;
      throw std::runtime_error(std::string("connect: ") + std::strerror(e));
    }
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }

  ~raw_client() { close(); }
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;

  int fd() const { return fd_; }

  /// Sends all of `bytes`; false when the connection is broken (never raises SIGPIPE).
  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  /// The next response (100 Continue skipped), or nullopt when the connection closed (or broke,
  /// or the guard passed) before a whole one arrived.
  std::optional<reply> read_reply(std::chrono::milliseconds limit = guard) {
    return read_reply_to(false, limit);
  }

  /// The next response to a HEAD request: its header only (Content-Length says how long the
  /// GET's body would be; no body follows).
  std::optional<reply> read_head_reply(std::chrono::milliseconds limit = guard) {
    return read_reply_to(true, limit);
  }

  /// How many "100 Continue" interim responses read_reply has skipped on this connection.
  int interim_replies() const { return interim_replies_; }

  /// Sends `request` and reads the response.
  std::optional<reply> exchange(std::string_view request) {
    if (!send(request)) return std::nullopt;
    return read_reply();
  }

  /// True once the peer has closed (EOF or reset), discarding what arrives meanwhile; false
  /// when the guard passes first.
  bool wait_closed(std::chrono::milliseconds limit = guard) {
    const auto deadline = clock_type::now() + limit;
    while (fill(deadline)) {
      received_.clear();
    }
    return !timed_out_;
  }

  /// Whether the peer has closed by now (without waiting); data that arrives is kept.
  bool closed_now() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      received_.append(buf, static_cast<std::size_t>(n));
      return false;
    }
    return n == 0 || (errno != EAGAIN && errno != EINTR);
  }

  /// Everything received and not parsed yet.
  const std::string& unparsed() const { return received_; }

  /// Half-closes: the server reads EOF after what was sent.
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  /// Closes with a reset (SO_LINGER 0): the server's next read fails with ECONNRESET.
  void reset() {
    const linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close();
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  // Reads what is available into received_; false on EOF, error or deadline.
  bool fill(clock_type::time_point deadline) {
    timed_out_ = false;
    for (;;) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock_type::now());
      if (left.count() <= 0) {
        timed_out_ = true;
        return false;
      }
      pollfd p{fd_, POLLIN, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) continue;
      char buf[16384];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      received_.append(buf, static_cast<std::size_t>(n));
      return true;
    }
  }

  std::optional<reply> read_reply_to(bool head, std::chrono::milliseconds limit) {
    const auto deadline = clock_type::now() + limit;
    for (;;) {
      std::optional<reply> r = parse_reply(head);
      if (r && r->status == 100) {
        ++interim_replies_;
        continue;
      }
      if (r) return r;
      if (!fill(deadline)) return std::nullopt;
    }
  }

  // One whole response from received_ (consumed), or nullopt when incomplete.
  // `head_only`: the response to a HEAD, which has no body whatever its Content-Length.
  std::optional<reply> parse_reply(bool head_only) {
    const std::size_t end = received_.find("\r\n\r\n");
    if (end == std::string::npos) return std::nullopt;
    reply r;
    std::string_view head(received_.data(), end);
    const std::size_t eol = head.find("\r\n");
    const std::string_view status_line = head.substr(0, eol);
    if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/") {
      throw std::runtime_error("not an HTTP response: " + std::string(status_line));
    }
    r.status = static_cast<unsigned>(std::stoul(std::string(status_line.substr(9, 3))));
    std::string_view rest =
        eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
    while (!rest.empty()) {
      const std::size_t next = rest.find("\r\n");
      const std::string_view line = rest.substr(0, next);
      rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 2);
      const std::size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      std::string name(line.substr(0, colon));
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char ch) {
        return static_cast<char>(std::tolower(ch));
      });
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      r.headers[name] = std::string(value);
    }
    const std::size_t length =
        r.status == 100 || head_only
            ? 0
            : static_cast<std::size_t>(std::stoull("0" + r.header("content-length")));
    if (received_.size() < end + 4 + length) return std::nullopt;
    r.body = received_.substr(end + 4, length);
    received_.erase(0, end + 4 + length);
    return r;
  }

  int fd_;
  std::string received_;
  bool timed_out_ = false;
  int interim_replies_ = 0;
};

/// Sends `request` on `c` and waits until `s` counts it as its one request in flight; otherwise
/// says which of the two did not happen.
inline ::testing::AssertionResult in_flight_after_sending(test_server& s,
                                                          raw_client& c,
                                                          std::string_view request) {
  if (!c.send(request)) return ::testing::AssertionFailure() << "the request was not sent";
  if (!eventually([&] { return s.counters().requests_in_flight.load() == 1; })) {
    return ::testing::AssertionFailure() << "the request never came to be in flight";
  }
  return ::testing::AssertionSuccess();
}

/// True when nothing accepts connections on `port` any more.
inline bool refuses_connections(std::uint16_t port) {
  try {
    raw_client c(port);
    return false;
  } catch (const std::runtime_error&) {
    return true;
  }
}

/// "GET <target> HTTP/1.1" with a Host header (and `extra` header lines, each ending in \r\n).
inline std::string get(std::string_view target, std::string_view extra = {}) {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra) + "\r\n";
}

inline std::string post(std::string_view target,
                        std::string_view body,
                        std::string_view extra = {}) {
  return "POST " + std::string(target) +
         " HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         std::string(extra) + "\r\n" + std::string(body);
}

/// Opens a connection, sends GET /ping and expects it refused: either the 503 (with
/// `Retry-After: 1`) the server writes before closing, or the close itself (a reset may beat the
/// response when the request was unread), never a 200; and the connection closed.
inline void expect_connection_refused(std::uint16_t port) {
  raw_client extra(port);
  extra.send(get("/ping"));  // may fail: the server may already have closed it
  const std::optional<reply> r = extra.read_reply();
  if (r) {
    EXPECT_EQ(r->status, 503u);
    EXPECT_EQ(r->header("retry-after"), "1");
  }
  EXPECT_TRUE(extra.wait_closed());
}

/// True when a fresh connection gets "pong" from /ping: the server still serves.
inline bool still_serves(std::uint16_t port) {
  raw_client c(port);
  const std::optional<reply> r = c.exchange(get("/ping"));
  return r && r->status == 200 && r->body == "pong";
}

/// Raises the soft limit on open descriptors to at least `wanted` (up to the hard limit);
/// returns the soft limit now in force.
inline rlim_t raise_fd_limit(rlim_t wanted) {
  rlimit l{};
  if (::getrlimit(RLIMIT_NOFILE, &l) != 0) return 0;
  if (l.rlim_cur < wanted) {
    l.rlim_cur = std::min(wanted, l.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &l);
    ::getrlimit(RLIMIT_NOFILE, &l);
  }
  return l.rlim_cur;
}

/// Opens `n` connections at once (non-blocking), sends `request` on each and reads one response
/// per connection, keeping every connection open until all have answered (or the guard passed).
/// Returns one status per connection: 0 when it closed or failed without a response.
inline std::vector<unsigned> concurrent_requests(
    std::uint16_t port,
    std::size_t n,
    const std::string& request,
    std::vector<std::string>* bodies = nullptr,
    std::vector<std::map<std::string, std::string>>* headers = nullptr) {
  struct conn {
    int fd = -1;
    std::size_t sent = 0;
    std::string in;
    bool done = false;
  };
  std::vector<conn> conns(n);
  std::vector<unsigned> statuses(n, 0);
  if (bodies != nullptr) bodies->assign(n, {});
  if (headers != nullptr) headers->assign(n, {});
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (conn& c : conns) {
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) {
      c.done = true;
      continue;
    }
    if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 &&
        errno != EINPROGRESS) {
      c.done = true;
    }
  }
  const auto deadline = clock_type::now() + guard;
  std::vector<pollfd> fds;
  std::vector<std::size_t> index;
  for (;;) {
    fds.clear();
    index.clear();
    for (std::size_t i = 0; i < n; ++i) {
      conn& c = conns[i];
      if (c.done) continue;
      const short events = c.sent < request.size() ? POLLOUT : POLLIN;
      fds.push_back({c.fd, events, 0});
      index.push_back(i);
    }
    if (fds.empty() || clock_type::now() > deadline) break;
    if (::poll(fds.data(), fds.size(), 100) <= 0) continue;
    for (std::size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      const std::size_t i = index[k];
      conn& c = conns[i];
      if (c.sent < request.size()) {
        const ssize_t w =
            ::send(c.fd, request.data() + c.sent, request.size() - c.sent, MSG_NOSIGNAL);
        if (w > 0) {
          c.sent += static_cast<std::size_t>(w);
        } else if (errno != EAGAIN && errno != EINTR) {
          c.done = true;
        }
        continue;
      }
      char buf[8192];
      const ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
      if (r > 0) {
        c.in.append(buf, static_cast<std::size_t>(r));
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        c.done = true;
      }
      const std::size_t end = c.in.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      std::map<std::string, std::string> h;
      std::size_t pos = c.in.find("\r\n") + 2;
      while (pos < end) {
        const std::size_t eol = c.in.find("\r\n", pos);
        const std::string line = c.in.substr(pos, eol - pos);
        pos = eol + 2;
        const std::size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = line.substr(0, colon);
        std::transform(name.begin(), name.end(), name.begin(), [](unsigned char ch) {
          return static_cast<char>(std::tolower(ch));
        });
        h[name] = line.substr(line.find_first_not_of(' ', colon + 1));
      }
      const std::size_t length = h.count("content-length") ? std::stoull(h["content-length"]) : 0;
      if (c.in.size() < end + 4 + length) continue;
      statuses[i] = static_cast<unsigned>(std::stoul(c.in.substr(9, 3)));
      if (bodies != nullptr) (*bodies)[i] = c.in.substr(end + 4, length);
      if (headers != nullptr) (*headers)[i] = std::move(h);
      c.done = true;
    }
  }
  for (conn& c : conns) {
    if (c.fd >= 0) ::close(c.fd);
  }
  return statuses;
}

}  // namespace server_test
