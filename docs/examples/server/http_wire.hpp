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

/// What the parsed header of a request says about its framing and its Host, per RFC 9112: the
/// answer that rejects it (then the connection closes without reading the body), or nothing.
///  - Transfer-Encoding in an HTTP/1.0 request, or together with Content-Length: 400;
///  - Transfer-Encoding whose final coding is not `chunked` (the body's length cannot be
///    known: `gzip`, `identity`, `chunked, identity`, an unknown name, `chunked` twice): 400;
///  - `chunked` after another coding (`gzip, chunked`: framed, but a coding the server does
///    not decode): 501;
///  - no Host in HTTP/1.1, more than one Host, or a Host that is not `host[:port]`: 400.
std::optional<response> check_header(const request_parser& parser);

/// True when `host` is a valid Host field value: empty, or uri-host (a reg-name or an IP
/// literal in brackets) with an optional `:port`.
bool valid_host(std::string_view host);

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
/// of this request had been received; `parser`: the request's parser, which tells a request
/// line too long (414) from a header too large (431); `pending`: the bytes received and not
/// parsed yet (the read buffer), which tell a chunk line too long (400) from a trailer section
/// too large (431).
read_failure classify(const boost::beast::error_code& ec,
                      bool started,
                      const request_parser& parser,
                      std::string_view pending);

/// The most bytes a connection's read buffer holds: max(--max-header, 4 KiB). What the parser
/// keeps whole before it can parse it — the header, a chunk-size line with its extensions, the
/// trailer section — must fit in it, so each is bounded as it arrives (the read that would
/// overflow it fails with buffer_overflow); the body is moved out of it as it arrives.
std::size_t read_buffer_limit(const parser_limits& limits);

/// True when the parsed header asks for "100 Continue" before its body is sent (HTTP/1.1 only:
/// an HTTP/1.0 client gets no interim response).
bool expects_continue(const request_parser& parser);

/// True when the request the parser has read the header of is a HEAD: its answer has no body.
bool is_head(const request_parser& parser);

/// The interim response to an "Expect: 100-continue" header.
inline constexpr std::string_view continue_response = "HTTP/1.1 100 Continue\r\n\r\n";

/// The answer to a connection refused over --max-connections (`per_client` false) or
/// --max-connections-per-client: 503, Retry-After: 1, Connection: close.
std::string refusal_response(bool per_client);

/// The current time as an HTTP-date (IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT"), for the
/// Date header; formatted once per second per thread.
std::string_view http_date();

/// The request the parser holds (its body moved out); the parser must be done.
request take_request(request_parser& parser);

/// `r` as bytes on the wire (HTTP/1.1, Date, Content-Length, Connection: keep-alive or close).
/// `head`: the answer to a HEAD request — the same header, Content-Length included, no body.
std::string serialize(const response& r, bool keep_alive, bool head = false);

/// Whether the connection stays open after answering `req` with `r`.
inline bool keeps_alive(const request& req, const response& r, bool draining) {
  return req.keep_alive && !r.close && !draining;
}

}  // namespace ferry_server::wire
