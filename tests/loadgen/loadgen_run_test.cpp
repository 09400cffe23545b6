// tests/loadgen/loadgen_run_test.cpp — ferry_loadgen run against stub HTTP servers on
// 127.0.0.1 in this process: a server that never answers (every request counts `deadline`), one
// that answers 200 at once (the goodput is every request), one that answers 503 (every request
// is rejected), a schedule's per-segment counts, and invalid schedules (exit 2). Each check is on
// counts the load generator reports in its JSON and the server saw, never on how long anything
// took.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

extern char** environ;

namespace {

// ---- a minimal JSON reader (what ferry_loadgen writes: objects, arrays, numbers, strings,
// true, false, null) ----

struct json {
  std::variant<std::nullptr_t,
               bool,
               double,
               std::string,
               std::vector<json>,
               std::map<std::string, json>>
      v;

  bool is_null() const { return std::holds_alternative<std::nullptr_t>(v); }
  double num() const { return std::get<double>(v); }
  bool boolean() const { return std::get<bool>(v); }
  const std::vector<json>& arr() const { return std::get<std::vector<json>>(v); }
  const json& operator[](const std::string& key) const {
    const auto& o = std::get<std::map<std::string, json>>(v);
    const auto it = o.find(key);
    if (it == o.end()) throw std::runtime_error("no key '" + key + "'");
    return it->second;
  }
  const json& operator[](std::size_t i) const { return arr().at(i); }
};

class json_parser {
 public:
  explicit json_parser(std::string text) : s_(std::move(text)) {}

  json parse() {
    json j = value();
    skip();
    if (i_ != s_.size()) fail("trailing text");
    return j;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error("JSON: " + what + " at " + std::to_string(i_));
  }
  void skip() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r'))
      ++i_;
  }
  bool eat(char c) {
    skip();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(std::string("expected '") + c + "'");
  }
  std::string string() {
    expect('"');
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\') {
        ++i_;
        if (i_ >= s_.size()) fail("bad escape");
        if (s_[i_] == 'u') {
          out += '?';
          i_ += 4;
        } else {
          out += s_[i_];
        }
        ++i_;
      } else {
        out += s_[i_++];
      }
    }
    expect('"');
    return out;
  }
  json value() {
    skip();
    if (i_ >= s_.size()) fail("unexpected end");
    const char c = s_[i_];
    if (c == '{') {
      ++i_;
      std::map<std::string, json> o;
      if (eat('}')) return {o};
      do {
        skip();
        std::string key = string();
        expect(':');
        o.emplace(std::move(key), value());
      } while (eat(','));
      expect('}');
      return {o};
    }
    if (c == '[') {
      ++i_;
      std::vector<json> a;
      if (eat(']')) return {a};
      do {
        a.push_back(value());
      } while (eat(','));
      expect(']');
      return {a};
    }
    if (c == '"') return {string()};
    for (const auto& [word, j] : {std::pair<const char*, json>{"true", {true}},
                                  std::pair<const char*, json>{"false", {false}},
                                  std::pair<const char*, json>{"null", {nullptr}}}) {
      if (s_.compare(i_, std::strlen(word), word) == 0) {
        i_ += std::strlen(word);
        return j;
      }
    }
    char* end = nullptr;
    const double d = std::strtod(s_.c_str() + i_, &end);
    if (end == s_.c_str() + i_) fail("bad value");
    i_ = static_cast<std::size_t>(end - s_.c_str());
    return {d};
  }

  std::string s_;
  std::size_t i_ = 0;
};

// ---- a stub HTTP server ----

// Accepts every connection and reads every request head (up to a blank line); `silent` never
// answers, `ok` answers 200, `unavailable` answers 503, at once and keep-alive. stop() (and the
// destructor) takes what is left — pending connections and unread requests of clients that have
// gone — so that requests() is exact once the client has exited.
class stub_server {
 public:
  enum class mode { silent, ok, unavailable };

  explicit stub_server(mode m) : mode_(m) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener_, 1024) != 0) {
      throw std::runtime_error("stub_server: cannot listen");
    }
    socklen_t len = sizeof addr;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::fcntl(listener_, F_SETFL, O_NONBLOCK);
    thread_ = std::thread([this] { loop(); });
  }

  ~stub_server() { stop(); }

  unsigned port() const { return port_; }

  void stop() {
    if (!thread_.joinable()) return;
    stopping_ = true;
    thread_.join();
    // The rest: connections still in the backlog and requests still unread.
    accept_all();
    for (int fd : conns_) {
      ::fcntl(fd, F_SETFL, 0);  // blocking: the client has gone, so EOF comes
      while (read_some(fd) > 0) {
      }
      ::close(fd);
    }
    conns_.clear();
    ::close(listener_);
  }

  std::size_t requests() const { return requests_; }
  std::size_t connections() const { return accepted_; }

 private:
  void accept_all() {
    for (;;) {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      ++accepted_;
      conns_.push_back(fd);
      buffers_[fd].clear();
    }
  }

  // Reads what is there; counts (and answers) each complete request head. Returns the bytes
  // read, 0 at EOF, -1 when nothing was there (or an error).
  ssize_t read_some(int fd) {
    char data[4096];
    const ssize_t n = ::read(fd, data, sizeof data);
    if (n <= 0) return n;
    std::string& buffer = buffers_[fd];
    buffer.append(data, static_cast<std::size_t>(n));
    for (std::size_t end; (end = buffer.find("\r\n\r\n")) != std::string::npos;) {
      buffer.erase(0, end + 4);
      ++requests_;
      const char* reply = nullptr;
      if (mode_ == mode::ok) reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
      if (mode_ == mode::unavailable) {
        reply = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
      }
      if (reply != nullptr) {
        const std::string_view r(reply);
        (void)!::send(fd, r.data(), r.size(), MSG_NOSIGNAL);
      }
    }
    return n;
  }

  void loop() {
    while (!stopping_) {
      std::vector<pollfd> fds{{listener_, POLLIN, 0}};
      for (int fd : conns_) fds.push_back({fd, POLLIN, 0});
      ::poll(fds.data(), fds.size(), 20);
      if (fds[0].revents != 0) accept_all();
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        const int fd = fds[i].fd;
        if (read_some(fd) == 0) {
          ::close(fd);
          std::erase(conns_, fd);
        }
      }
    }
  }

  mode mode_;
  int listener_ = -1;
  unsigned port_ = 0;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::vector<int> conns_;
  std::map<int, std::string> buffers_;
  std::atomic<std::size_t> requests_{0};
  std::atomic<std::size_t> accepted_{0};
};

// ---- running ferry_loadgen ----

struct run_result {
  int exit_code = -1;
  std::string out;
  std::string err;
  std::string json_text;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs ferry_loadgen with `args` (plus --no-progress and --json), waits for it (killed after
// 120 s: a hang fails instead of blocking), and returns its exit code, output and JSON.
run_result run_loadgen(std::vector<std::string> args) {
  const std::string dir = ::testing::TempDir();
  const std::string stem = dir + "loadgen_run_" + std::to_string(::getpid()) + "_" +
                           ::testing::UnitTest::GetInstance()->current_test_info()->name();
  const std::string json_path = stem + ".json";
  const std::string out_path = stem + ".out";
  const std::string err_path = stem + ".err";
  std::remove(json_path.c_str());
  args.insert(args.begin(), FERRY_LOADGEN_PATH);
  args.push_back("--no-progress");
  args.push_back("--json");
  args.push_back(json_path);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(
      &actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(
      &actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  run_result r;
  if (rc != 0) {
    ADD_FAILURE() << "cannot start " << argv[0] << ": " << std::strerror(rc);
    return r;
  }
  const auto guard = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  int status = 0;
  for (;;) {
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (std::chrono::steady_clock::now() > guard) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ADD_FAILURE() << "ferry_loadgen did not finish within 120 s";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  r.json_text = slurp(json_path);
  return r;
}

json parse_json(const run_result& r) { return json_parser(r.json_text).parse(); }

std::vector<std::string> light_open_loop(unsigned port) {
  return {"--port",
          std::to_string(port),
          "--heavy-connections",
          "0",
          "--light-connections",
          "2",
          "--warmup",
          "0"};
}

TEST(LoadgenRun, ServerThatNeverAnswersMakesEveryRequestADeadlineFailure) {
  stub_server server(stub_server::mode::silent);
  auto args = light_open_loop(server.port());
  for (const char* a : {"--light-rate", "50", "--duration", "1", "--deadline-ms", "200"}) {
    args.emplace_back(a);
  }
  const run_result r = run_loadgen(args);
  server.stop();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = parse_json(r);
  const json& light = j["classes"]["light"];
  EXPECT_EQ(light["deadline_ms"].num(), 200);
  EXPECT_EQ(light["requests"].num(), 50);  // 50/s for 1 s: due at 0, 20, ..., 980 ms
  EXPECT_EQ(light["ok"].num(), 0);
  EXPECT_EQ(light["goodput"]["count"].num(), 0);
  EXPECT_EQ(light["goodput"]["per_s"].num(), 0);
  EXPECT_TRUE(light["goodput"]["p99_ms"].is_null());
  const json& kinds = light["errors_by_kind"];
  // Each request is given up at its deadline (a request still unsent at its own deadline, if the
  // client fell behind, is expired_unsent): none is left to any other kind.
  EXPECT_EQ(kinds["deadline"].num() + kinds["expired_unsent"].num(), 50);
  EXPECT_GT(kinds["deadline"].num(), 0);
  for (const char* other : {"connect", "timeout", "status", "io", "not_sent"}) {
    EXPECT_EQ(kinds[other].num(), 0) << other;
  }
  EXPECT_EQ(light["errors"].num(), 50);
  // A connection given up on is closed: every request counted `deadline` went out on a new
  // connection of its own, which the server accepted.
  EXPECT_EQ(light["connects"].num(), kinds["deadline"].num());
  EXPECT_EQ(server.connections(), static_cast<std::size_t>(kinds["deadline"].num()));
  // The server saw the requests (all of them, unless the client fell so far behind that a
  // deadline passed while its connection was being opened).
  EXPECT_LE(server.requests(), static_cast<std::size_t>(kinds["deadline"].num()));
  // More requests went out than there are connections: each connection was given back at its
  // request's deadline, not after --timeout-ms (10 s, long after the last request was due).
  EXPECT_GT(server.requests(), 2u);
  EXPECT_NE(r.out.find("light (client deadline 200 ms): goodput 0 = 0.0/s"), std::string::npos)
      << r.out;
}

TEST(LoadgenRun, GoodputCountsEveryAnsweredRequest) {
  stub_server server(stub_server::mode::ok);
  auto args = light_open_loop(server.port());
  // No deadline: whatever the machine does to the timing, every request is answered 200.
  for (const char* a :
       {"--light-rate", "50", "--duration", "1", "--deadline-ms", "0", "--capacity", "100"}) {
    args.emplace_back(a);
  }
  const run_result r = run_loadgen(args);
  server.stop();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = parse_json(r);
  EXPECT_EQ(j["capacity_rps"].num(), 100);
  const json& light = j["classes"]["light"];
  EXPECT_TRUE(light["deadline_ms"].is_null());
  EXPECT_EQ(light["requests"].num(), 50);
  EXPECT_EQ(light["errors"].num(), 0) << r.out;
  EXPECT_EQ(light["goodput"]["count"].num(), 50);
  EXPECT_EQ(light["goodput"]["per_s"].num(), 50);
  EXPECT_EQ(light["goodput"]["share_of_capacity"].num(), 0.5);
  EXPECT_FALSE(light["goodput"]["p50_ms"].is_null());
  EXPECT_FALSE(light["goodput"]["p99_ms"].is_null());
  EXPECT_EQ(light["rejected"]["count"].num(), 0);
  EXPECT_TRUE(light["rejected"]["p99_ms"].is_null());
  EXPECT_EQ(server.requests(), 50u);
  EXPECT_NE(r.out.find("goodput 50 = 50.0/s (50.0% of 100/s capacity)"), std::string::npos)
      << r.out;
}

TEST(LoadgenRun, ServiceUnavailableIsRejectedNotGoodput) {
  stub_server server(stub_server::mode::unavailable);
  auto args = light_open_loop(server.port());
  for (const char* a : {"--light-rate", "40", "--duration", "1", "--deadline-ms", "0"}) {
    args.emplace_back(a);
  }
  const run_result r = run_loadgen(args);
  server.stop();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = parse_json(r);
  const json& light = j["classes"]["light"];
  EXPECT_EQ(light["requests"].num(), 40);
  EXPECT_EQ(light["goodput"]["count"].num(), 0);
  EXPECT_EQ(light["rejected"]["count"].num(), 40);
  EXPECT_EQ(light["rejected"]["status_codes"]["503"].num(), 40);
  EXPECT_EQ(light["errors_by_kind"]["status"].num(), 40);
  EXPECT_FALSE(light["rejected"]["p50_ms"].is_null());
  EXPECT_FALSE(light["rejected"]["p99_ms"].is_null());
  EXPECT_TRUE(light["goodput"]["p99_ms"].is_null());
  EXPECT_EQ(server.requests(), 40u);
}

TEST(LoadgenRun, ScheduleReportsEachSegment) {
  stub_server server(stub_server::mode::ok);
  auto args = light_open_loop(server.port());
  for (const char* a : {"--light-schedule", "20@0.5,40@0.5,20@0.5", "--deadline-ms", "0"}) {
    args.emplace_back(a);
  }
  const run_result r = run_loadgen(args);
  server.stop();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = parse_json(r);
  EXPECT_EQ(j["measured_s"].num(), 1.5);
  const json& light = j["classes"]["light"];
  EXPECT_TRUE(light["rate"].is_null());
  EXPECT_EQ(light["requests"].num(), 40);
  EXPECT_EQ(light["goodput"]["count"].num(), 40);
  const json& schedule = light["schedule"];
  const auto& segments = schedule["segments"].arr();
  ASSERT_EQ(segments.size(), 3u);
  const double expected[] = {10, 20, 10};
  const double start[] = {0, 0.5, 1};
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(segments[i]["segment"].num(), static_cast<double>(i + 1));
    EXPECT_EQ(segments[i]["start_s"].num(), start[i]);
    EXPECT_EQ(segments[i]["requests"].num(), expected[i]) << "segment " << i + 1;
    EXPECT_EQ(segments[i]["goodput"]["count"].num(), expected[i]) << "segment " << i + 1;
    EXPECT_EQ(segments[i]["goodput"]["per_s"].num(), expected[i] * 2) << "segment " << i + 1;
    EXPECT_FALSE(segments[i]["goodput"]["p99_ms"].is_null());
    EXPECT_TRUE(segments[i]["offered_share_of_capacity"].is_null());  // no --capacity
  }
  const json& recovery = schedule["recovery"];
  EXPECT_EQ(recovery["peak_segment"].num(), 2);
  EXPECT_EQ(recovery["window_ms"].num(), 250);
  EXPECT_EQ(recovery["windows"].num(), 2);  // 0.5 s after the peak
  EXPECT_FALSE(recovery["baseline_p99_ms"].is_null());
  EXPECT_EQ(recovery["recovered"].boolean(), !recovery["recovery_s"].is_null());
  EXPECT_EQ(server.requests(), 40u);
}

TEST(LoadgenRun, InvalidScheduleExitsWith2) {
  for (const char* spec : {"", "100", "100@0", "-5@1", "10@1,,10@1", "0@1"}) {
    const run_result r =
        run_loadgen({"--port", "9", "--light-connections", "1", "--light-schedule", spec});
    EXPECT_EQ(r.exit_code, 2) << "'" << spec << "': " << r.err;
    EXPECT_NE(r.err.find("--light-schedule: "), std::string::npos) << r.err;
  }
  const run_result both = run_loadgen(
      {"--port", "9", "--light-connections", "1", "--light-rate", "5", "--light-schedule", "5@1"});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.err.find("exclude each other"), std::string::npos) << both.err;
}

}  // namespace
