// docs/examples/server/server.hpp — ferry_server: a compute-heavy HTTP/1.1 server on Boost.Beast
// and ferry, hardened against bad input and overload.
//
//   ferry::runtime rt({.io_threads = 1, .admission = ferry_server::admission_policy_for(config)});
//   ferry_server::server srv(rt, config);          // binds and listens
//   std::printf("listening on %s\n", srv.local_endpoint().c_str());
//   rt.run(srv.run());                             // until SIGINT/SIGTERM or rt.request_stop()
//
// One coroutine per connection, all children of one ferry::task_group (modes offload and inline);
// one std::thread per connection in mode thread. Per connection: keep-alive, pipelining, a Beast
// request_parser with the header and body limits, a read timeout for the whole of each request
// (a slowloris client is cut off) and an idle timeout between requests. Bad input gets an answer
// and the connection closes: 400 malformed (HTTP/1.0 and 1.1 only), 413 body too large, 431
// header too large. Overload is refused, never queued without bound: a connection over
// --max-connections is answered 503 and closed at once, a heavy request the pool's admission
// refuses (adaptive by default, or --max-offloads) gets 503 with Retry-After, and so does a
// /blocking request over --max-blocking. A heavy request whose deadline (--request-timeout-ms,
// or its Request-Timeout header) passes is answered 504 and its work cancelled. In mode offload a
// heavy request whose client goes away is cancelled (the work kernel polls its std::stop_token).
//
// Shutdown (cancelling run(): SIGINT/SIGTERM under runtime::run, or runtime::request_stop), in
// two phases:
//  1. the drain, for `drain` (0: skipped): the server keeps accepting and serving, GET /health
//     answers 503, and every response carries "Connection: close" — a load balancer's health
//     check sees the backend go down and stops sending it new connections while nothing it sent
//     is refused. A second cancellation ends the drain at once.
//  2. the stop: stop accepting, close idle connections, let requests in flight finish and answer
//     them with "Connection: close", and once `shutdown_deadline` has passed (or at one more
//     cancellation) cancel whatever is left (the task group, or the connection threads' stop
//     token and sockets); then run() returns normally.
//
// Writes: a response must make progress: each write of it must complete within `write_timeout`
// (as nginx's send_timeout), or the connection is closed and counted in write_timeouts.
//
// Internals: /stats, /metrics and /debug/tasks are served only on the admin listener
// (`admin_address`, `admin_port`; none unless configured), which is outside the public limits and
// counts. Clients: at most `max_connections_per_client` connections from one address (503).
//
// Accepting: the listening socket's backlog is `backlog` (0: the system's maximum,
// /proc/sys/net/core/somaxconn); each wake-up of the acceptor accepts every connection already
// queued (up to a batch), so a burst of connections does not wait one loop turn each.
//
// Thread safety: `stats()`, `local_endpoint()` and `port()` may be called from any thread; `run()`
// once, on the runtime given to the constructor.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ferry/core/admission.hpp>
#include <ferry/io/task.hpp>
#include <memory>
#include <optional>
#include <string>

#include "http_handler.hpp"

namespace ferry {
class runtime;
}

namespace ferry_server {

struct server_config {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8080;  ///< 0: the kernel picks one (see server::port)
  /// The admin listener, where /stats, /metrics and /debug/tasks are served (and the public
  /// endpoints too); on the public port they are 404. `admin_port` nullopt: no admin
  /// listener; 0: the kernel picks one (see server::admin_port).
  std::string admin_address = "127.0.0.1";
  std::optional<std::uint16_t> admin_port;
  std::size_t max_connections = 10'000;
  /// Connections open at once from one client address; more are answered 503 and closed at
  /// once. 0: no limit.
  std::size_t max_connections_per_client = 256;
  /// Heavy requests queued or running before 503 (mode offload): a fixed admission bound of the
  /// runtime's pool, or 0 (the default) for the runtime's adaptive admission, which admits what
  /// the workers can start within `admission_target`. The runtime must have been given
  /// `admission_policy_for(config)` (checked by the server's constructor).
  std::size_t max_offloads = 0;
  /// The adaptive admission's target queueing delay (`admission_policy::target`): an admitted
  /// offload waits about this long for a worker at most; with `max_offloads` 0 only.
  std::chrono::milliseconds admission_target{5};
  parser_limits limits;                            ///< --max-header, --max-body
  std::chrono::milliseconds read_timeout{10'000};  ///< a whole request, from its first byte
  std::chrono::milliseconds idle_timeout{30'000};  ///< keep-alive, between two requests
  std::chrono::milliseconds shutdown_deadline{5'000};
  std::chrono::milliseconds drain{0};               ///< --drain-ms: phase 1 of the shutdown
  std::chrono::milliseconds write_timeout{60'000};  ///< each write of a response
  int backlog = 0;         ///< listen(2) backlog; 0: the system's maximum (see system_backlog)
  int send_buffer = 0;     ///< SO_SNDBUF of every connection in bytes; 0: the kernel's autotuning
  handler_config handler;  ///< the mode and the endpoints' limits
};

/// Throws std::invalid_argument with the reason when a value is out of range.
void validate(const server_config& config);

/// The admission policy the runtime of a server in mode offload must have:
/// `admission_policy::fixed(max_offloads)`, or `adaptive(admission_target)` when it is 0.
ferry::admission_policy admission_policy_for(const server_config& config);

/// The system's maximum listen(2) backlog: /proc/sys/net/core/somaxconn, or SOMAXCONN when it
/// cannot be read.
int system_backlog();

class server {
 public:
  /// Validates `config`, calibrates the work kernel (unless configured), binds and listens.
  /// Throws std::invalid_argument on a bad config (in mode offload: also when `rt`'s admission
  /// policy is not `admission_policy_for(config)`), boost::system::system_error when the
  /// address cannot be bound. `rt` must outlive the server.
  server(ferry::runtime& rt, server_config config);
  ~server();

  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// The port listened on (the one the kernel picked for port 0).
  std::uint16_t port() const;
  /// "127.0.0.1:8080".
  std::string local_endpoint() const;
  /// The admin listener's port and "address:port" (0 and "" when there is none).
  std::uint16_t admin_port() const;
  std::string admin_endpoint() const;

  const server_config& config() const;
  const http_handler& handler() const;
  /// The live counters (what /stats reports).
  const server_counters& counters() const;
  /// The backlog the listening socket was given (config().backlog, or system_backlog()).
  int backlog() const;

  /// Accepts and serves until cancelled, then shuts down gracefully (see the file comment).
  /// Returns normally after a shutdown; throws only when accepting fails for good.
  ferry::task<void> run();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace ferry_server
