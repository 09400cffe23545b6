// docs/examples/server/http_wire.cpp — parser set-up, read errors, serialisation, and the
// socket-free request path the fuzzer drives.
#include "http_wire.hpp"

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>
#include <cstdint>
#include <utility>
#include <variant>

namespace ferry_server {
namespace wire {

void configure(request_parser& parser, const parser_limits& limits) {
  // Beast measures the header limit in bytes (request line included) as a uint32.
  parser.header_limit(
      static_cast<std::uint32_t>(std::min<std::size_t>(limits.max_header, UINT32_MAX)));
  parser.body_limit(limits.max_body);
}

read_failure classify(const boost::beast::error_code& ec, bool started) {
  namespace error = boost::asio::error;
  read_failure f;
  if (ec == http::error::end_of_stream || (!started && ec == error::eof)) {
    f.what = read_failure::kind::closed;
  } else if (ec == http::error::partial_message || ec == error::eof ||
             ec == error::connection_reset || ec == error::broken_pipe ||
             ec == error::connection_aborted) {
    f.what = started ? read_failure::kind::truncated : read_failure::kind::closed;
  } else if (ec == boost::beast::error::timeout) {
    f.what = read_failure::kind::timed_out;
  } else if (ec == error::operation_aborted) {
    f.what = read_failure::kind::cancelled;
  } else if (ec == http::error::header_limit) {
    f.what = read_failure::kind::rejected;
    f.answer = http_handler::read_error(431, "request header fields too large");
  } else if (ec == http::error::body_limit) {
    f.what = read_failure::kind::rejected;
    f.answer = http_handler::read_error(413, "request body too large");
  } else if (ec == http::error::buffer_overflow) {
    f.what = read_failure::kind::rejected;
    f.answer = http_handler::read_error(431, "request header fields too large for the read buffer");
  } else if (ec.category() == make_error_code(http::error::bad_method).category()) {
    // bad_method, bad_target, bad_version, bad_field, bad_value, bad_content_length,
    // bad_transfer_encoding, bad_chunk, bad_line_ending, bad_obs_fold, ...
    f.what = read_failure::kind::rejected;
    f.answer = http_handler::read_error(400, "bad request: malformed (" + ec.message() + ")");
  } else {
    f.what = read_failure::kind::broken;
  }
  return f;
}

bool expects_continue(const request_parser& parser) {
  if (!parser.is_header_done() || parser.is_done()) return false;
  const auto& fields = parser.get();
  const auto it = fields.find(http::field::expect);
  return it != fields.end() && boost::beast::iequals(it->value(), "100-continue");
}

request take_request(request_parser& parser) {
  http::request<http::string_body>& msg = parser.get();
  request r;
  r.method = std::string(msg.method_string());
  r.target = std::string(msg.target());
  r.version = msg.version();
  r.keep_alive = msg.keep_alive();
  r.body = std::move(msg.body());
  return r;
}

std::string serialize(const response& r, bool keep_alive) {
  const std::string_view reason = http::obsolete_reason(static_cast<http::status>(r.status));
  std::string out;
  out.reserve(160 + r.body.size());
  out += "HTTP/1.1 ";
  out += std::to_string(r.status);
  out += ' ';
  out += reason.empty() ? std::string_view("Unknown") : reason;
  out += "\r\nServer: ferry_server\r\nContent-Type: ";
  out += r.content_type;
  out += "\r\nContent-Length: ";
  out += std::to_string(r.body.size());
  if (!r.allow.empty()) {
    out += "\r\nAllow: ";
    out += r.allow;
  }
  if (r.retry_after) out += "\r\nRetry-After: 1";
  out += keep_alive ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\nConnection: close\r\n\r\n";
  out += r.body;
  return out;
}

}  // namespace wire

std::string respond_to_bytes(const http_handler& h, std::string_view input, parser_limits limits) {
  server_counters& counters = h.counters();
  std::string out;
  while (!input.empty()) {
    wire::request_parser parser;
    wire::configure(parser, limits);
    boost::beast::error_code ec;
    bool continued = false;
    const std::size_t before = input.size();
    while (!parser.is_done() && !ec) {
      // The server would wait for the rest of the request (until its read timeout).
      if (input.empty()) return out;
      const std::size_t used = parser.put(boost::asio::buffer(input.data(), input.size()), ec);
      input.remove_prefix(used);
      if (ec == wire::http::error::need_more) {
        // put() sees every byte left: a header that still needs more is incomplete.
        if (used == 0) return out;
        ec = {};
      } else if (!ec && used == 0) {
        return out;  // no progress (never expected): stop rather than spin
      }
      if (!ec && !continued && wire::expects_continue(parser)) {
        out += wire::continue_response;
        continued = true;
      }
    }
    counters.bytes_read.fetch_add(before - input.size(), std::memory_order_relaxed);
    if (ec) {
      const wire::read_failure f = wire::classify(ec, true);
      if (f.answer) {
        counters.count_response(f.answer->counted_as, f.answer->status);
        out += wire::serialize(*f.answer, false);
      }
      return out;
    }
    request req = wire::take_request(parser);
    std::variant<response, job> routed = h.route(req);
    response res;
    if (auto* j = std::get_if<job>(&routed)) {
      try {
        res = h.run(*j, {}, false);
      } catch (const std::exception&) {
        counters.requests_cancelled.fetch_add(1, std::memory_order_relaxed);
        return out;
      }
    } else {
      res = std::move(std::get<response>(routed));
    }
    const bool keep = wire::keeps_alive(req, res, false);
    counters.count_response(res.counted_as, res.status);
    std::string bytes = wire::serialize(res, keep);
    counters.bytes_written.fetch_add(bytes.size(), std::memory_order_relaxed);
    out += bytes;
    if (!keep) break;
  }
  return out;
}

}  // namespace ferry_server
