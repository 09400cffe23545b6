// bench/loadgen/http_connection.hpp — one keep-alive HTTP/1.1 client connection for the load
// generator (Boost.Beast, kept out of this header: http_connection.cpp).
//
//   ferry::loadgen::http_connection conn(ex, endpoints, "127.0.0.1:8080", 10s);
//   ferry::loadgen::request_result r = co_await conn.get("/ping");
//   r = co_await conn.get("/ping", intended + 1s);  // a client deadline as well
//
// `get` connects when the connection is not open (the first request, or after an error or a
// response without keep-alive), sends `GET target HTTP/1.1` and reads the whole response. One
// request at a time per connection. With a deadline (a steady_clock time point), the connect
// and the request are cut off at the earlier of the deadline and the timeout: when the deadline
// comes first the connection is closed (the client gave up) and the failure is `deadline`.
//
// A reused keep-alive connection that turns out to be closed by the server (end of stream,
// reset or broken pipe before any byte of the response) is reconnected once and the request
// sent again: a GET is idempotent, and that is what browsers and HTTP client libraries do. The
// retry is counted (`request_result::stale_retries`) and its time is part of the request's
// latency. Any other failure closes the connection and is reported, never retried.
//
// Thread safety: distinct objects: safe. Shared objects: not safe; one coroutine uses a
// connection.
//
// Resumes on: the executor given to the constructor (the caller's).
//
// Cancellation: what the awaiting coroutine lets through (terminal by default) aborts the
// socket operation in progress; `get` then throws system_error(operation_aborted) and the
// connection is closed.
//
// Lifetime: the connection must outlive the `get` in progress; `target` is copied before the
// first suspension.
//
// Errors: none thrown except cancellation; failures are reported in `request_result`.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/io/task.hpp"

namespace ferry::loadgen {

/// How a request failed; `none` for a 2xx response.
enum class failure {
  none,
  connect,   ///< connecting failed or timed out
  timeout,   ///< the request did not complete within the timeout (connection closed)
  status,    ///< a complete response whose status is not 2xx
  io,        ///< the connection failed while writing or reading (reset, truncated, bad response)
  deadline,  ///< the client deadline passed before the response was complete (connection closed)
};

const char* to_string(failure f) noexcept;

struct request_result {
  failure error = failure::none;
  unsigned status = 0;         ///< the response's status code, 0 without a response
  unsigned connects = 0;       ///< TCP connections opened by this request (0, 1 or 2)
  unsigned stale_retries = 0;  ///< 1 when a closed keep-alive connection was reconnected
  std::string detail;          ///< the error message, empty on success
};

class http_connection {
 public:
  /// `host` is sent as the Host header; `timeout` bounds each connect and each request (write +
  /// read of the whole response).
  http_connection(boost::asio::any_io_executor ex,
                  std::vector<boost::asio::ip::tcp::endpoint> endpoints,
                  std::string host,
                  std::chrono::milliseconds timeout);
  ~http_connection();

  http_connection(const http_connection&) = delete;
  http_connection& operator=(const http_connection&) = delete;

  /// Sends `GET target` and reads the response (see the file comment); with `deadline`, gives up
  /// at that time (failure::deadline, the connection closed) if the timeout has not come first.
  task<request_result> get(
      std::string_view target,
      std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);

  /// Closes the socket (no-op when closed). Not while a `get` is in progress.
  void close() noexcept;

  bool is_open() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace ferry::loadgen
