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
#include <cstdio>
#include <ctime>
#include <optional>
#include <string_view>
#include <utility>
#include <variant>

namespace ferry_server {
namespace wire {
namespace {

bool is_tchar(char ch) {
  const auto c = static_cast<unsigned char>(ch);
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(ch) != std::string_view::npos;
}

bool is_hex(char ch) {
  const auto c = static_cast<unsigned char>(ch);
  return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// How the Transfer-Encoding codings (every field line's, in order) frame the body.
enum class te_verdict { chunked, not_final, unsupported };

te_verdict transfer_codings(const request_parser& parser) {
  // The codings in order, across every Transfer-Encoding field line; a list may hold empty
  // elements (RFC 9110 §5.6.1), which count for nothing.
  std::size_t codings = 0;
  bool chunked_last = false;
  bool chunked_before = false;
  bool other = false;
  const auto& fields = parser.get();
  for (auto [it, end] = fields.equal_range(http::field::transfer_encoding); it != end; ++it) {
    std::string_view list = it->value();
    for (;;) {
      const std::size_t comma = list.find(',');
      const std::string_view element = trim_ows(list.substr(0, comma));
      if (!element.empty()) {
        ++codings;
        if (chunked_last) chunked_before = true;  // something (chunked included) after chunked
        // A coding's name is a token; parameters (";q=...") belong to codings other than
        // chunked.
        const std::string_view name = trim_ows(element.substr(0, element.find(';')));
        bool token = !name.empty();
        for (const char ch : name) token = token && is_tchar(ch);
        chunked_last = token && name == element && boost::beast::iequals(name, "chunked");
        if (!chunked_last) other = true;
      }
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  if (codings == 0 || !chunked_last || chunked_before) return te_verdict::not_final;
  return other ? te_verdict::unsupported : te_verdict::chunked;
}

/// Where the first line of `pending` ends (after its LF), or npos.
std::size_t line_end(std::string_view pending) {
  const std::size_t lf = pending.find('\n');
  return lf == std::string_view::npos ? lf : lf + 1;
}

}  // namespace

void configure(request_parser& parser, const parser_limits& limits) {
  // Beast measures the header limit in bytes (request line included) as a uint32.
  parser.header_limit(
      static_cast<std::uint32_t>(std::min<std::size_t>(limits.max_header, UINT32_MAX)));
  parser.body_limit(limits.max_body);
}

std::size_t read_buffer_limit(const parser_limits& limits) {
  return std::max<std::size_t>(limits.max_header, 4096);
}

bool valid_host(std::string_view host) {
  if (host.empty()) return true;
  std::string_view name = host;
  std::string_view port;
  if (host.front() == '[') {
    // IP-literal: an IPv6 address (or IPvFuture) in brackets.
    const std::size_t close = host.find(']');
    if (close == std::string_view::npos || close < 2) return false;
    for (const char ch : host.substr(1, close - 1)) {
      if (!is_hex(ch) && ch != ':' && ch != '.' && ch != 'v' && ch != 'V') return false;
    }
    const std::string_view rest = host.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return false;
    if (!rest.empty()) port = rest.substr(1);
    name = {};
  } else if (const std::size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    name = host.substr(0, colon);
    port = host.substr(colon + 1);
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char ch = name[i];
    const auto c = static_cast<unsigned char>(ch);
    const bool unreserved = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
                            ch == '-' || ch == '.' || ch == '_' || ch == '~';
    const bool sub_delim = std::string_view("!$&'()*+,;=").find(ch) != std::string_view::npos;
    if (ch == '%') {
      if (i + 2 >= name.size() || !is_hex(name[i + 1]) || !is_hex(name[i + 2])) return false;
      i += 2;
      continue;
    }
    if (!unreserved && !sub_delim) return false;
  }
  if (port.size() > 5) return false;
  for (const char ch : port) {
    if (ch < '0' || ch > '9') return false;
  }
  return true;
}

std::optional<response> check_header(const request_parser& parser) {
  const auto& fields = parser.get();
  if (fields.count(http::field::transfer_encoding) > 0) {
    if (fields.version() < 11) {
      return http_handler::read_error(400, "bad request: Transfer-Encoding in an HTTP/1.0 request");
    }
    if (fields.count(http::field::content_length) > 0) {
      return http_handler::read_error(400,
                                      "bad request: both Transfer-Encoding and Content-Length");
    }
    switch (transfer_codings(parser)) {
      case te_verdict::chunked:
        break;
      case te_verdict::not_final:
        return http_handler::read_error(
            400, "bad request: the final transfer coding is not chunked (body length unknown)");
      case te_verdict::unsupported:
        return http_handler::read_error(501,
                                        "not implemented: a transfer coding other than chunked");
    }
  }
  const std::size_t hosts = fields.count(http::field::host);
  if (hosts > 1) return http_handler::read_error(400, "bad request: more than one Host");
  if (hosts == 0 && fields.version() >= 11) {
    return http_handler::read_error(400, "bad request: no Host in an HTTP/1.1 request");
  }
  if (hosts == 1 && !valid_host(fields[http::field::host])) {
    return http_handler::read_error(400, "bad request: an invalid Host");
  }
  return std::nullopt;
}

read_failure classify(const boost::beast::error_code& ec,
                      bool started,
                      const request_parser& parser,
                      std::string_view pending) {
  namespace error = boost::asio::error;
  read_failure f;
  const bool too_long = ec == http::error::header_limit || ec == http::error::buffer_overflow;
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
  } else if (too_long && !parser.is_header_done()) {
    // The header did not fit. The parser takes the request line as soon as it has all of it:
    // no target yet means the line itself did not end within the limit.
    f.what = read_failure::kind::rejected;
    f.answer = parser.get().target().empty()
                   ? http_handler::read_error(414, "request target too long")
                   : http_handler::read_error(431, "request header fields too large");
  } else if (too_long) {
    // In a chunked body: the read buffer filled with a chunk line the parser could not end
    // (its extensions), or with the trailer section after the last chunk.
    f.what = read_failure::kind::rejected;
    std::string_view rest = pending;
    if (rest.substr(0, 2) == "\r\n") rest.remove_prefix(2);  // the end of the previous chunk
    f.answer = line_end(rest) == std::string_view::npos
                   ? http_handler::read_error(400, "bad request: chunk line too long")
                   : http_handler::read_error(431, "request trailer fields too large");
  } else if (ec == http::error::body_limit) {
    f.what = read_failure::kind::rejected;
    f.answer = http_handler::read_error(413, "request body too large");
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
  if (fields.version() < 11) return false;
  const auto it = fields.find(http::field::expect);
  return it != fields.end() && boost::beast::iequals(it->value(), "100-continue");
}

bool is_head(const request_parser& parser) {
  return parser.is_header_done() && parser.get().method() == http::verb::head;
}

request take_request(request_parser& parser) {
  http::request<http::string_body>& msg = parser.get();
  request r;
  r.method = std::string(msg.method_string());
  r.target = std::string(msg.target());
  r.version = msg.version();
  r.keep_alive = msg.keep_alive();
  r.body = std::move(msg.body());
  // Bounded by the header's limit (--max-header), as every field is.
  const auto [first, last] = msg.equal_range("Request-Timeout");
  for (auto field = first; field != last; ++field) r.request_timeouts.emplace_back(field->value());
  return r;
}

std::string_view http_date() {
  thread_local std::time_t formatted = -1;
  thread_local char text[32] = {};
  const std::time_t now = std::time(nullptr);
  if (now != formatted) {
    static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* months[] = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::tm t{};
    ::gmtime_r(&now, &t);
    std::snprintf(text,
                  sizeof text,
                  "%s, %02d %s %04d %02d:%02d:%02d GMT",
                  days[t.tm_wday % 7],
                  t.tm_mday,
                  months[t.tm_mon % 12],
                  t.tm_year + 1900,
                  t.tm_hour,
                  t.tm_min,
                  t.tm_sec);
    formatted = now;
  }
  return text;
}

std::string serialize(const response& r, bool keep_alive, bool head) {
  const std::string_view reason = http::obsolete_reason(static_cast<http::status>(r.status));
  std::string out;
  out.reserve(192 + (head ? 0 : r.body.size()));
  out += "HTTP/1.1 ";
  out += std::to_string(r.status);
  out += ' ';
  out += reason.empty() ? std::string_view("Unknown") : reason;
  out += "\r\nServer: ferry_server\r\nDate: ";
  out += http_date();
  out += "\r\nContent-Type: ";
  out += r.content_type;
  out += "\r\nContent-Length: ";
  out += std::to_string(r.body.size());
  if (!r.allow.empty()) {
    out += "\r\nAllow: ";
    out += r.allow;
  }
  if (r.retry_after) out += "\r\nRetry-After: 1";
  out += keep_alive ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\nConnection: close\r\n\r\n";
  if (!head) out += r.body;
  return out;
}

std::string refusal_response(bool per_client) {
  response r = http_handler::read_error(
      503,
      per_client ? "overloaded: too many open connections from your address"
                 : "overloaded: too many open connections");
  r.retry_after = true;
  return serialize(r, false);
}

}  // namespace wire

std::string respond_to_bytes(const http_handler& h,
                             std::string_view input,
                             parser_limits limits,
                             std::vector<bool>* head_answers,
                             bool admin) {
  server_counters& counters = h.counters();
  const std::size_t window = wire::read_buffer_limit(limits);
  std::string out;
  while (!input.empty()) {
    wire::request_parser parser;
    wire::configure(parser, limits);
    boost::beast::error_code ec;
    bool continued = false;
    bool checked = false;
    std::optional<response> rejected;
    const std::size_t before = input.size();
    while (!parser.is_done() && !ec) {
      // The server would wait for the rest of the request (until its read timeout).
      if (input.empty()) return out;
      // The server's read buffer holds at most `window` bytes the parser has not consumed.
      const std::size_t offered = std::min(input.size(), window);
      const std::size_t used = parser.put(boost::asio::buffer(input.data(), offered), ec);
      input.remove_prefix(used);
      if (ec == wire::http::error::need_more) {
        if (used == 0) {
          // put() saw every byte left: incomplete. Or the window is full: the server's read
          // buffer would overflow.
          if (offered == input.size()) return out;
          ec = wire::http::error::buffer_overflow;
          break;
        }
        ec = {};
      } else if (!ec && used == 0) {
        return out;  // no progress (never expected): stop rather than spin
      }
      if (!ec && !checked && parser.is_header_done()) {
        checked = true;
        rejected = wire::check_header(parser);
        if (rejected) break;
      }
      if (!ec && !continued && wire::expects_continue(parser)) {
        out += wire::continue_response;
        continued = true;
      }
    }
    if (!ec && !checked) rejected = wire::check_header(parser);
    counters.bytes_read.fetch_add(before - input.size(), std::memory_order_relaxed);
    const bool head = wire::is_head(parser);
    if (ec || rejected) {
      if (!rejected) {
        const wire::read_failure f = wire::classify(
            ec, true, parser, std::string_view(input.data(), std::min(input.size(), window)));
        rejected = f.answer;
      }
      if (rejected) {
        counters.count_response(rejected->counted_as, rejected->status);
        out += wire::serialize(*rejected, false, head);
        if (head_answers != nullptr) head_answers->push_back(head);
      }
      return out;
    }
    request req = wire::take_request(parser);
    req.admin = admin;
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
    std::string bytes = wire::serialize(res, keep, head);
    counters.bytes_written.fetch_add(bytes.size(), std::memory_order_relaxed);
    out += bytes;
    if (head_answers != nullptr) head_answers->push_back(head);
    if (!keep) break;
  }
  return out;
}

}  // namespace ferry_server
