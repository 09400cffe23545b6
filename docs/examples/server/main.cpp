// docs/examples/server/main.cpp — ferry_server's command line: parse the flags, raise the
// descriptor limit to its hard maximum, start a ferry::runtime and the server, print
// "listening on <address>:<port>", serve until SIGINT or SIGTERM, drain and shut down gracefully,
// exit 0. A bad flag or value: a message on stderr, exit 2.
#include <sys/resource.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <ferry/bridge/runtime.hpp>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>

#include "server.hpp"

namespace {

constexpr const char* usage_text = R"(usage: ferry_server [flags]

A compute-heavy HTTP/1.1 server on ferry (Boost.Asio loop, oneTBB work-stealing pool).

  --address A                 address to listen on (default 127.0.0.1)
  --port N                    port; 0 = one the kernel picks (default 8080)
  --admin-address A           address of the admin listener (default 127.0.0.1)
  --admin-port N              the admin listener, where GET /stats, /metrics and /debug/tasks
                              are served (404 on the public port); 0 = one the kernel picks,
                              printed on stdout as "admin listening on <address>:<port>"
                              after the public line (default: none)
  --mode offload|inline|thread
                              where the CPU work of /work and /hash runs: offloaded to the
                              work-stealing pool, inline on the I/O loop, or on one thread
                              per connection with blocking I/O (default offload)
  --io-threads N              threads running the I/O loop (default 1)
  --cpu-threads N             workers of the work-stealing pool; 0 = cores (default 0)
  --cpu-nice N                the pool's workers run N nice levels below the loop, so a
                              light request gets a core at once while heavy work saturates
                              them (0..19, default 10)
  --batch-window-us N         while the pool is saturated, completions reach the loop in
                              batches at most N µs apart instead of waking it once each
                              (the runtime's completion_batch_window; 0..10000, default 400)
  --slow-callback-ms N        report on stderr, with the blocked thread's stack, when the loop
                              does not come back within N ms (the runtime's watchdog; the
                              last reports are in the admin listener's /stats); 0 = off
                              (default 100)
  --max-connections N         connections open at once; more are answered 503 and closed
                              (default 10000)
  --max-connections-per-client N
                              connections open at once from one client address; more are
                              answered 503 and closed (as nginx's limit_conn); 0 = no limit.
                              Behind a load balancer or a NAT every client has its address:
                              raise it there (default 256)
  --max-offloads N            a fixed bound: heavy requests (/work, /hash) queued or
                              running before 503. Default: none, the runtime's adaptive
                              admission, which admits what the pool can start within
                              --admission-target-ms and answers the rest 503 at once
  --admission-target-ms T     the adaptive admission's target queueing delay: how long an
                              admitted heavy request may wait for a worker (1..10000,
                              default 5; ignored with --max-offloads)
  --request-timeout-ms N      deadline of /work, /hash and /blocking, from the end of their
                              header: when it passes, the work is cancelled (queued work
                              never runs) and the answer is 504. A request's header
                              "Request-Timeout: <ms>" may shorten it, never lengthen it;
                              0 = none (default 10000; not applied in mode thread)
  --max-work-us N             the largest /work?us= (default 1000000); more is 400
  --max-hash-rounds N         the largest /hash?rounds= (default 1000); more is 400
  --max-blocking-ms N         the largest /blocking?ms= (default 10000); more is 400
  --max-blocking N            /blocking requests queued or running at once; more are
                              answered 503 at once, never queued (default 128: twice the
                              blocking pool's 64 threads)
  --max-body BYTES            request body limit, 413 beyond (default 1048576)
  --max-header BYTES          request header limit, 431 beyond (default 8192)
  --read-timeout-ms N         a whole request must arrive within it (default 10000)
  --idle-timeout-ms N         keep-alive idle timeout (default 30000)
  --write-timeout-ms N        each write of a response must make progress within it, or
                              the connection is closed: a client that stops reading is cut
                              off (default 60000)
  --backlog N                 the listening socket's backlog; 0 = the system's maximum,
                              /proc/sys/net/core/somaxconn (default 0)
  --send-buffer BYTES         SO_SNDBUF of every connection (as nginx's listen sndbuf=);
                              0 = the kernel's autotuning (default 0)
  --drain-ms N                on SIGINT/SIGTERM, first drain for N ms: keep accepting and
                              serving, GET /health answers 503 and every response says
                              "Connection: close", so that a load balancer's health check
                              takes the server out before it stops accepting; a second
                              signal ends the drain at once. 0 = no drain: stop accepting
                              at the signal (default 0)
  --shutdown-deadline-ms N    after the drain, how long requests in flight may take to
                              finish before every connection is closed; one more signal
                              ends it at once (default 5000)
  --help                      this text

Endpoints: GET /ping, GET /health (200 serving, 503 draining), GET /work?us=N,
POST /hash?rounds=N, GET /blocking?ms=N; on the admin listener only: GET /stats (JSON),
GET /metrics (Prometheus), GET /debug/tasks.
Once listening, prints one line on stdout: "listening on <address>:<port>".
)";

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct options {
  ferry_server::server_config server;
  std::size_t io_threads = 1;
  std::size_t cpu_threads = 0;
  int cpu_nice = 10;
  std::chrono::microseconds batch_window{400};
  std::chrono::milliseconds slow_callback{100};
  bool help = false;
};

std::uint64_t parse_number(std::string_view flag,
                           std::string_view text,
                           std::uint64_t low,
                           std::uint64_t high) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < low ||
      value > high) {
    throw usage_error(std::string(flag) + ": expected an integer in [" + std::to_string(low) +
                      ", " + std::to_string(high) + "], got '" + std::string(text) + "'");
  }
  return value;
}

options parse(int argc, char** argv) {
  options o;
  ferry_server::server_config& c = o.server;
  constexpr std::uint64_t max_ms = 24ULL * 3600 * 1000;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      o.help = true;
      continue;
    }
    if (arg.substr(0, 2) != "--")
      throw usage_error("unexpected argument '" + std::string(arg) + "'");
    std::string_view flag = arg;
    std::string_view value;
    if (const std::size_t eq = arg.find('='); eq != std::string_view::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else {
      if (i + 1 >= argc) throw usage_error(std::string(flag) + ": missing value");
      value = argv[++i];
    }
    auto number = [&](std::uint64_t low, std::uint64_t high) {
      return parse_number(flag, value, low, high);
    };
    if (flag == "--address") {
      c.address = std::string(value);
    } else if (flag == "--port") {
      c.port = static_cast<std::uint16_t>(number(0, 65535));
    } else if (flag == "--admin-address") {
      c.admin_address = std::string(value);
    } else if (flag == "--admin-port") {
      c.admin_port = static_cast<std::uint16_t>(number(0, 65535));
    } else if (flag == "--mode") {
      if (value == "offload") {
        c.handler.mode = ferry_server::execution_mode::offload;
      } else if (value == "inline") {
        c.handler.mode = ferry_server::execution_mode::inline_;
      } else if (value == "thread") {
        c.handler.mode = ferry_server::execution_mode::thread;
      } else {
        throw usage_error("--mode: expected offload, inline or thread, got '" + std::string(value) +
                          "'");
      }
    } else if (flag == "--io-threads") {
      o.io_threads = number(1, 1024);
    } else if (flag == "--cpu-threads") {
      o.cpu_threads = number(0, 1024);
    } else if (flag == "--cpu-nice") {
      o.cpu_nice = static_cast<int>(number(0, 19));
    } else if (flag == "--batch-window-us") {
      o.batch_window = std::chrono::microseconds(number(0, 10'000));
    } else if (flag == "--slow-callback-ms") {
      o.slow_callback = std::chrono::milliseconds(number(0, 3'600'000));
    } else if (flag == "--max-connections") {
      c.max_connections = number(1, 10'000'000);
    } else if (flag == "--max-connections-per-client") {
      c.max_connections_per_client = number(0, 10'000'000);
    } else if (flag == "--max-offloads") {
      c.max_offloads = number(1, 10'000'000);
    } else if (flag == "--admission-target-ms") {
      c.admission_target = std::chrono::milliseconds(number(1, 10'000));
    } else if (flag == "--request-timeout-ms") {
      c.handler.request_timeout = std::chrono::milliseconds(number(0, max_ms));
    } else if (flag == "--max-work-us") {
      c.handler.max_work_us = number(1, 3'600'000'000ULL);
    } else if (flag == "--max-hash-rounds") {
      c.handler.max_hash_rounds = number(1, 1'000'000'000);
    } else if (flag == "--max-blocking-ms") {
      c.handler.max_blocking_ms = number(0, max_ms);
    } else if (flag == "--max-blocking") {
      c.handler.max_blocking = number(1, 10'000'000);
    } else if (flag == "--max-body") {
      c.limits.max_body = number(0, std::uint64_t{1} << 40);
    } else if (flag == "--max-header") {
      c.limits.max_header = number(64, std::numeric_limits<std::uint32_t>::max());
    } else if (flag == "--read-timeout-ms") {
      c.read_timeout = std::chrono::milliseconds(number(1, max_ms));
    } else if (flag == "--idle-timeout-ms") {
      c.idle_timeout = std::chrono::milliseconds(number(1, max_ms));
    } else if (flag == "--shutdown-deadline-ms") {
      c.shutdown_deadline = std::chrono::milliseconds(number(0, max_ms));
    } else if (flag == "--drain-ms") {
      c.drain = std::chrono::milliseconds(number(0, max_ms));
    } else if (flag == "--write-timeout-ms") {
      c.write_timeout = std::chrono::milliseconds(number(1, max_ms));
    } else if (flag == "--backlog") {
      c.backlog = static_cast<int>(number(0, std::numeric_limits<int>::max()));
    } else if (flag == "--send-buffer") {
      c.send_buffer = static_cast<int>(number(0, std::numeric_limits<int>::max()));
    } else {
      throw usage_error("unknown flag '" + std::string(flag) + "' (see --help)");
    }
  }
  ferry_server::validate(c);  // std::invalid_argument: the address
  return o;
}

/// Raises the soft limit on open descriptors to the hard one: each connection takes one, and
/// the usual soft limit (1024) is far below --max-connections' default.
void raise_descriptor_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    std::fprintf(stderr, "ferry_server: cannot raise the descriptor limit\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  try {
    o = parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ferry_server: %s\n", e.what());
    return 2;
  }
  if (o.help) {
    std::fputs(usage_text, stdout);
    return 0;
  }
  raise_descriptor_limit();
  try {
    ferry::runtime rt(
        ferry::runtime_options{.io_threads = o.io_threads,
                               .cpu_threads = o.cpu_threads,
                               .admission = ferry_server::admission_policy_for(o.server),
                               .completion_batch_window = o.batch_window,
                               .cpu_nice_increment = o.cpu_nice,
                               .slow_callback_threshold = o.slow_callback});
    ferry_server::server srv(rt, o.server);
    std::fprintf(stderr,
                 "ferry_server: mode %s, %zu io thread(s), %zu cpu worker(s), work kernel "
                 "calibrated at %.1f iterations/us, backlog %d\n",
                 std::string(to_string(o.server.handler.mode)).c_str(),
                 o.io_threads,
                 rt.cpu().concurrency(),
                 srv.handler().iterations_per_us(),
                 srv.backlog());
    std::printf("listening on %s\n", srv.local_endpoint().c_str());
    if (srv.admin_port() != 0) std::printf("admin listening on %s\n", srv.admin_endpoint().c_str());
    std::fflush(stdout);
    rt.run(srv.run());
    std::fprintf(stderr, "ferry_server: shut down\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ferry_server: %s\n", e.what());
    return 1;
  }
}
