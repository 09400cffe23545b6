// docs/examples/server/http_wire.hpp — the Beast side of one exchange, shared by the socket code
// (server.cpp, both connection kinds) and the fuzzer's entry point (respond_to_bytes): how a
// parser is set up, what a failed read means, how a request becomes a `request` and a `response`
// becomes bytes. Private to the server's .cpp files (Beast's templates stay out of server.hpp).
#pragma once

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "http_handler.hpp"

namespace ferry_server::wire {

namespace http = boost::beast::http;
using request_parser = http::request_parser<http::string_body>;

/// Sets the header and body limits of a fresh parser.
void configure(request_parser& parser, const parser_limits& limits);

/// What a failed read of a request means for the connection.
struct read_failure {
  enum class kind {
    closed,     ///< the client closed between two requests: nothing to answer
    truncated,  ///< the client closed or reset in the middle of a request
    timed_out,  ///< the request (or the next one) did not arrive in time
    cancelled,  ///< the read was cancelled (shutdown)
    rejected,   ///< the bytes are not an acceptable request: answer `answer`, then close
    broken,     ///< any other socket error
  };
  kind what = kind::broken;
  std::optional<response> answer;  ///< for `rejected`: 400, 413 or 431
};

/// Classifies the error of a read (from the parser or from the stream). `started`: some bytes
/// of this request had been received.
read_failure classify(const boost::beast::error_code& ec, bool started);

/// True when the parsed header asks for "100 Continue" before its body is sent.
bool expects_continue(const request_parser& parser);

/// The interim response to an "Expect: 100-continue" header.
inline constexpr std::string_view continue_response = "HTTP/1.1 100 Continue\r\n\r\n";

/// The answer to a connection refused over --max-connections.
inline constexpr std::string_view refusal_response =
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Server: ferry_server\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 38\r\n"
    "Retry-After: 1\r\n"
    "Connection: close\r\n"
    "\r\n"
    "overloaded: too many open connections\n";

/// The request the parser holds (its body moved out); the parser must be done.
request take_request(request_parser& parser);

/// `r` as bytes on the wire (HTTP/1.1, Content-Length, Connection: keep-alive or close).
std::string serialize(const response& r, bool keep_alive);

/// Whether the connection stays open after answering `req` with `r`.
inline bool keeps_alive(const request& req, const response& r, bool draining) {
  return req.keep_alive && !r.close && !draining;
}

}  // namespace ferry_server::wire
