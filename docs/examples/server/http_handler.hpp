// docs/examples/server/http_handler.hpp — what ferry_server answers: routing, the endpoints and
// the counters, with no socket and no Beast type in sight (the CPU kernels: kernels.hpp; the
// /stats, /metrics and error bodies: render.cpp).
//
// The connection code (server.cpp) parses a request with Beast, hands it to `http_handler::route`
// and gets either a finished `response` (ping, stats, metrics, 4xx) or a `job` — the CPU or
// blocking part of a heavy endpoint — which it runs where the server's mode says (offloaded to the
// work-stealing pool, inline on the loop, or on the connection's own thread) through
// `http_handler::run`. `respond_to_bytes` strings the same pieces together over a byte buffer,
// for the fuzzer: the bytes a client sends on one connection in, the bytes the server writes out.
//
// The endpoints (the server contract, docs/examples/server/README.md):
//   GET  /ping                 200 "pong"
//   GET  /health               200 "serving" while serving, 503 "draining" once the shutdown
//                              has begun (a load balancer's health check)
//   GET  /stats                200 JSON: the server's counters and the runtime's
//   GET  /metrics              200 Prometheus text format 0.0.4
//   GET  /debug/tasks          200 text: runtime::dump_tasks(), every task and what it awaits
//                              (a job: off the loop), without addresses, at most 64 KiB
//   (these three on the admin listener only, request::admin; 404 on the public port)
//   GET  /work?us=N            ~N µs of CPU (xorshift64, calibrated), 1 <= N <= max_work_us
//   POST /hash?rounds=N        hex digest of the body hashed N rounds, 1 <= N <= max_hash_rounds;
//                              bodies >= parallel_hash_threshold are hashed in chunks (with a
//                              nested tbb::parallel_for when run offloaded)
//   GET  /blocking?ms=N        a blocking wait of N ms on the blocking pool, 0 <= N <=
//                              max_blocking_ms
// A parameter over its bound (max_work_us, max_hash_rounds, max_blocking_ms) is 400 naming the
// bound and its flag. /work, /hash and /blocking run under a deadline: `request_timeout`, or the
// shorter `Request-Timeout: <ms>` of the request (a longer one is clamped; a malformed one 400);
// the server answers 504 when it passes (job::timeout).
// HEAD is answered as GET without the body; anything else 404, a known path with a method it
// does not take 405 (with Allow), a method outside RFC 9110's 501, `OPTIONS *` 200 (Allow).
//
// Thread safety: a handler is immutable after construction except for its counters, which are
// atomics: `route`, `run` and the renderers may be called from any thread concurrently.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "kernels.hpp"

namespace ferry {
class runtime;
}

namespace ferry_server {

/// Where the CPU work of the heavy endpoints runs (`--mode`).
enum class execution_mode {
  offload,  ///< `co_await ferry::offload(...)` onto the work-stealing pool
  inline_,  ///< on the I/O loop thread itself (the anti-pattern, for contrast)
  thread,   ///< one std::thread per connection, blocking I/O, work on that thread
};

/// "offload", "inline", "thread".
std::string_view to_string(execution_mode mode) noexcept;

/// The endpoints, as counted in the stats. `other` is every request that reached no endpoint:
/// unknown paths (404), requests that could not be read (400, 413, 431), refused connections.
enum class endpoint : std::uint8_t {
  ping,
  stats,
  metrics,
  work,
  hash,
  blocking,
  health,
  debug_tasks,
  other
};
inline constexpr std::size_t endpoint_count = 9;
std::string_view to_string(endpoint e) noexcept;

/// The statuses the server sends, as counted in the stats (any other one counts as 500).
inline constexpr std::array<unsigned, 11> counted_statuses = {
    200, 400, 404, 405, 413, 414, 431, 500, 501, 503, 504};

/// Limits and knobs of the endpoints (the connection limits live in server_config).
struct handler_config {
  execution_mode mode = execution_mode::offload;
  std::uint64_t max_work_us = 1'000'000;
  std::uint64_t max_hash_rounds = 1'000;
  std::uint64_t max_blocking_ms = 10'000;
  /// /blocking requests queued or running at once; more are answered 503 at once (--max-blocking).
  std::size_t max_blocking = 128;
  /// The deadline of /work, /hash and /blocking, from the end of their header; 0 = none. A
  /// request's `Request-Timeout` header may shorten it (--request-timeout-ms).
  std::chrono::milliseconds request_timeout{10'000};
  /// Bodies at least this long are hashed in chunks (in parallel when offloaded).
  std::size_t parallel_hash_threshold = 256 * 1024;
  /// Iterations of the xorshift64 kernel per microsecond; 0 = calibrate in the constructor.
  double iterations_per_us = 0;
  /// The fixed offload bound, reported by /stats (the runtime's pool enforces it:
  /// ferry::try_offload); 0 = the runtime's adaptive admission.
  std::size_t max_offloads = 0;
};

/// How a counter is exported. `counter`: only ever grows (/metrics: `<name>_total`); `gauge`: a
/// value now, up and down; `peak`: a gauge's high-water mark (in /stats only).
enum class counter_kind : std::uint8_t { counter, gauge, peak };

/// Every scalar counter of the server, defined once: X(member, kind, /stats group, /stats key,
/// help). The member is `server_counters::member`; /stats renders it as
/// `"server": {"<group>": {"<key>": n}}` and /metrics (unless a peak) as `ferry_server_<member>`
/// with `_total` for a counter, `help` as its HELP line. Add a counter here and both show it.
#define FERRY_SERVER_COUNTERS(X)                                                                 \
  X(connections_open, gauge, "connections", "open", "Connections open now.")                     \
  X(connections_peak, peak, "connections", "peak", "The most connections open at once.")         \
  X(connections_accepted, counter, "connections", "accepted", "Connections accepted.")           \
  X(connections_refused,                                                                         \
    counter,                                                                                     \
    "connections",                                                                               \
    "refused",                                                                                   \
    "Connections closed at once: --max-connections were open.")                                  \
  X(connections_refused_per_client,                                                              \
    counter,                                                                                     \
    "connections",                                                                               \
    "refused_per_client",                                                                        \
    "Connections closed at once: --max-connections-per-client were open from their address.")    \
  X(requests_in_flight, gauge, "requests", "in_flight", "Requests read and not answered yet.")   \
  X(requests_cancelled,                                                                          \
    counter,                                                                                     \
    "requests",                                                                                  \
    "cancelled",                                                                                 \
    "Requests abandoned before their response: client gone, or shutdown.")                       \
  X(requests_truncated,                                                                          \
    counter,                                                                                     \
    "requests",                                                                                  \
    "truncated",                                                                                 \
    "Connections closed by the client in the middle of a request.")                              \
  X(read_timeouts,                                                                               \
    counter,                                                                                     \
    "requests",                                                                                  \
    "read_timeouts",                                                                             \
    "Connections closed because a request did not arrive within the read timeout.")              \
  X(idle_timeouts,                                                                               \
    counter,                                                                                     \
    "requests",                                                                                  \
    "idle_timeouts",                                                                             \
    "Keep-alive connections closed after the idle timeout.")                                     \
  X(write_timeouts,                                                                              \
    counter,                                                                                     \
    "requests",                                                                                  \
    "write_timeouts",                                                                            \
    "Connections closed because a write of a response made no progress within the write "        \
    "timeout.")                                                                                  \
  X(deadlines_passed,                                                                            \
    counter,                                                                                     \
    "requests",                                                                                  \
    "deadlines_passed",                                                                          \
    "Requests answered 504: their deadline passed before their work was done.")                  \
  X(offloads_in_flight,                                                                          \
    gauge,                                                                                       \
    "offloads",                                                                                  \
    "in_flight",                                                                                 \
    "Heavy requests offloaded and running on the pool.")                                         \
  X(offloads_peak, peak, "offloads", "peak", "The most heavy requests offloaded at once.")       \
  X(offloads_rejected,                                                                           \
    counter,                                                                                     \
    "offloads",                                                                                  \
    "rejected",                                                                                  \
    "Heavy requests answered 503: the offload bound was full.")                                  \
  X(blocking_in_flight, gauge, "blocking", "in_flight", "/blocking requests queued or running.") \
  X(blocking_rejected,                                                                           \
    counter,                                                                                     \
    "blocking",                                                                                  \
    "rejected",                                                                                  \
    "/blocking requests answered 503: --max-blocking were queued or running.")                   \
  X(bytes_read, counter, "bytes", "read", "Request bytes parsed.")                               \
  X(bytes_written, counter, "bytes", "written", "Response bytes written.")

/// One row of FERRY_SERVER_COUNTERS, with the counter's value now.
struct counter_row {
  std::string_view member;  ///< "connections_open"
  counter_kind kind;
  std::string_view group;  ///< the /stats object it is in: "connections"
  std::string_view key;    ///< its key there: "open"
  std::string_view help;
  std::uint64_t value;
};

/// The server's own counters, shared by every connection (relaxed atomics: monitoring only).
struct server_counters {
#define FERRY_SERVER_COUNTER_MEMBER(member, kind, group, key, help) \
  std::atomic<std::uint64_t> member{0};
  FERRY_SERVER_COUNTERS(FERRY_SERVER_COUNTER_MEMBER)
#undef FERRY_SERVER_COUNTER_MEMBER
  /// The shutdown has begun (the drain): /health answers 503, responses close the connection.
  std::atomic<bool> draining{false};
  /// Responses by endpoint and status (the index of the status in counted_statuses).
  std::array<std::array<std::atomic<std::uint64_t>, counted_statuses.size()>, endpoint_count>
      responses{};

  /// Counts one response.
  void count_response(endpoint e, unsigned status) noexcept;
  /// Total responses with `status` (any endpoint), or for one endpoint.
  std::uint64_t responses_with(unsigned status) const noexcept;
  std::uint64_t responses_with(endpoint e, unsigned status) const noexcept;
  /// Raises `peak` to `value` if it is higher.
  static void raise_peak(std::atomic<std::uint64_t>& peak, std::uint64_t value) noexcept;

  /// Calls `visit(const counter_row&)` for each row of FERRY_SERVER_COUNTERS, in its order (the
  /// rows of one /stats group are adjacent).
  template <class Visitor>
  void for_each_counter(Visitor&& visit) const {
#define FERRY_SERVER_COUNTER_VISIT(member, kind, group, key, help) \
  visit(counter_row{                                               \
      #member, counter_kind::kind, group, key, help, member.load(std::memory_order_relaxed)});
    FERRY_SERVER_COUNTERS(FERRY_SERVER_COUNTER_VISIT)
#undef FERRY_SERVER_COUNTER_VISIT
  }
};

/// A parsed request, as the router sees it.
struct request {
  std::string method;  ///< "GET", "POST", ... as sent
  std::string target;  ///< as sent: origin-form "/work?us=10", absolute-form, or "*"
  std::string body;
  unsigned version = 11;  ///< 10 for HTTP/1.0, 11 for HTTP/1.1 (the parser accepts no other)
  bool keep_alive = true;
  /// Came to the admin listener (--admin-port): /stats, /metrics and /debug/tasks are served
  /// there only (404 on the public port).
  bool admin = false;
  /// The values of the request's Request-Timeout fields, as sent (bounded by --max-header); the
  /// router checks them (request_timeout_field).
  std::vector<std::string> request_timeouts{};
};

/// A response, before it is serialised (see serialize in http_wire.hpp).
struct response {
  unsigned status = 200;
  endpoint counted_as = endpoint::other;
  std::string_view content_type = "text/plain; charset=utf-8";
  std::string body;
  std::string_view allow;    ///< the Allow header of a 405
  bool retry_after = false;  ///< "Retry-After: 1" (503)
  bool close = false;        ///< the connection is closed after this response
};

/// The part of a heavy endpoint that runs where the mode says.
struct job {
  /// `tasks`: /debug/tasks — runtime::dump_tasks() walks every task, so it runs off the loop
  /// (the blocking pool, or the connection's thread), one at a time.
  enum class kind : std::uint8_t { work, hash, blocking, tasks };
  kind what = kind::work;
  std::uint64_t amount = 0;  ///< µs of work, hash rounds, or ms of blocking wait
  std::string body;          ///< what /hash hashes
  /// The request's deadline, from the end of its header (handler_config::request_timeout or the
  /// shorter Request-Timeout); 0 = none.
  std::chrono::milliseconds timeout{0};
  bool is_cpu() const noexcept { return what == kind::work || what == kind::hash; }
  endpoint counted_as() const noexcept;
};

/// The endpoints. See the file comment.
class http_handler {
 public:
  /// Calibrates the work kernel unless `config.iterations_per_us` is set. `rt` (may be null)
  /// is the runtime whose counters /stats and /metrics report; `counters` must outlive the handler.
  http_handler(handler_config config, server_counters& counters, ferry::runtime* rt);

  const handler_config& config() const noexcept { return config_; }
  double iterations_per_us() const noexcept { return iterations_per_us_; }
  std::chrono::steady_clock::time_point started() const noexcept { return started_; }
  /// The runtime /stats and /metrics report (may be null).
  ferry::runtime* runtime() const noexcept { return runtime_; }
  server_counters& counters() const noexcept { return counters_; }

  /// The answer to `req`, or the job to run for it (the body is moved into the job). HEAD is
  /// routed as GET (the caller leaves the body out: serialize's `head`); a method outside RFC
  /// 9110's gets 501, a known one a route does not take 405 with Allow; `OPTIONS *` 200 with
  /// Allow; an absolute-form target is routed by its path.
  std::variant<response, job> route(request& req) const;

  /// Runs `j` on the calling thread and returns its response. `parallel`: a large /hash body is
  /// split with tbb::parallel_for (call it on a cpu_pool worker: the chunks stay in its arena).
  /// Polls `stop` and throws system_error(operation_aborted) once it is requested.
  response run(const job& j, std::stop_token stop, bool parallel) const;

  /// The 503 of a full offload bound, counted under `e`.
  static response overloaded(endpoint e);

  /// The 503 of /blocking when --max-blocking requests are queued or running.
  static response blocking_overloaded();

  /// The 504 of a request whose deadline (`timeout`) passed, counted under `e`.
  static response deadline_passed(endpoint e, std::chrono::milliseconds timeout);

  /// The response for a request that could not be read: `status` 400, 413 or 431 (closes).
  static response read_error(unsigned status, std::string_view why);

  /// A 500 for a job that failed (closes).
  static response internal_error(std::string_view what);

  /// The bodies of /stats and /metrics (render.cpp).
  std::string stats_json() const;
  std::string metrics_text() const;

  /// The body of /debug/tasks: runtime::dump_tasks() without addresses or directories
  /// (scrub_addresses), at most max_task_dump bytes (render.cpp).
  std::string tasks_text() const;

 private:
  handler_config config_;
  server_counters& counters_;
  ferry::runtime* runtime_;
  double iterations_per_us_;
  std::chrono::steady_clock::time_point started_;
  /// A /debug/tasks dump is running: another one gets 503 meanwhile.
  mutable std::atomic<bool> dumping_tasks_{false};
};

/// The most bytes of /debug/tasks (the rest is cut at a line, with a note).
inline constexpr std::size_t max_task_dump = 64 * 1024;

/// `text` with every raw address ("0x7f3a..." not after a '+') replaced by "<addr>" and every
/// absolute path with a directory cut to its file name: what a stack trace or a task dump may show
/// a client (symbol+offset, object+offset, file:line) without the layout of the process.
std::string scrub_addresses(std::string_view text);

/// The origin-form ("/path?query") of a request target in origin-form or absolute-form
/// ("http://host:port/path?query"); nullopt for any other form.
std::optional<std::string> origin_form(std::string_view target);

/// Limits of the request parser (server_config's --max-header and --max-body).
struct parser_limits {
  std::size_t max_header = 8 * 1024;
  std::size_t max_body = 1024 * 1024;
};

/// The request path without sockets, for the fuzzer: parses `input` as the bytes a client sends
/// on one connection, answers each request as the server does in inline mode (CPU and blocking
/// jobs on the calling thread; the body of a 100-continue request follows its interim response),
/// and returns the bytes the server writes. Stops at the first response that closes the
/// connection; input that ends inside a request gets no answer (the server would wait for the
/// rest until its read timeout). Counts responses in `h`'s counters. `admin`: the requests come
/// to the admin listener (see request::admin). `head_answers` (unless
/// null) gets one entry per final response: true for the answer to a HEAD (a header whose
/// Content-Length no body follows).
std::string respond_to_bytes(const http_handler& h,
                             std::string_view input,
                             parser_limits limits,
                             std::vector<bool>* head_answers = nullptr,
                             bool admin = false);

}  // namespace ferry_server
