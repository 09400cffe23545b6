// bench/loadgen/http_connection.cpp — the Beast side of http_connection (see the header).
#include "http_connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/system/system_error.hpp>
#include <optional>
#include <utility>

namespace ferry::loadgen {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

const char* to_string(failure f) noexcept {
  switch (f) {
    case failure::none:
      return "none";
    case failure::connect:
      return "connect";
    case failure::timeout:
      return "timeout";
    case failure::status:
      return "status";
    case failure::io:
      return "io";
    case failure::deadline:
      return "deadline";
  }
  return "unknown";
}

struct http_connection::impl {
  impl(asio::any_io_executor ex,
       std::vector<tcp::endpoint> eps,
       std::string host,
       std::chrono::milliseconds t)
      : stream(std::move(ex)), endpoints(std::move(eps)), timeout(t) {
    request.version(11);
    request.method(http::verb::get);
    request.set(http::field::host, host);
    request.set(http::field::user_agent, "ferry_loadgen");
    request.keep_alive(true);
  }

  void close() noexcept {
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream.close();
    buffer.clear();
    open = false;
  }

  beast::tcp_stream stream;
  std::vector<tcp::endpoint> endpoints;
  std::chrono::milliseconds timeout;
  http::request<http::empty_body> request;
  beast::flat_buffer buffer;
  std::optional<http::response_parser<http::string_body>> parser;
  bool open = false;
};

namespace {

[[noreturn]] void throw_cancelled() {
  throw boost::system::system_error(asio::error::operation_aborted);
}

// The server closed an idle keep-alive connection before this request reached it.
bool is_stale_close(const beast::error_code& ec, bool got_some) {
  if (got_some) return false;
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe;
}

}  // namespace

http_connection::http_connection(asio::any_io_executor ex,
                                 std::vector<tcp::endpoint> endpoints,
                                 std::string host,
                                 std::chrono::milliseconds timeout)
    : impl_(std::make_unique<impl>(std::move(ex), std::move(endpoints), std::move(host), timeout)) {
}

http_connection::~http_connection() = default;

void http_connection::close() noexcept {
  if (impl_->open) impl_->close();
}

bool http_connection::is_open() const noexcept { return impl_->open; }

task<request_result> http_connection::get(
    std::string_view target, std::optional<std::chrono::steady_clock::time_point> deadline) {
  impl& c = *impl_;
  // Each connect and each request is bounded by the timeout from its start and by the deadline;
  // `by_deadline` says which of the two a beast::error::timeout came from.
  bool by_deadline = false;
  const auto arm = [&c, &deadline, &by_deadline] {
    const auto limit = std::chrono::steady_clock::now() + c.timeout;
    by_deadline = deadline && *deadline <= limit;
    c.stream.expires_at(by_deadline ? *deadline : limit);
  };
  c.request.target(target);
  request_result result;

  for (int attempt = 0;; ++attempt) {
    const bool reused = c.open;
    if (!c.open) {
      arm();
      auto [ec, endpoint] =
          co_await c.stream.async_connect(c.endpoints, asio::as_tuple(asio::use_awaitable));
      if (ec == asio::error::operation_aborted) throw_cancelled();
      ++result.connects;
      if (ec) {
        c.close();
        const bool gave_up = ec == beast::error::timeout && by_deadline;
        result.error = gave_up ? failure::deadline : failure::connect;
        result.detail = gave_up ? "not connected before the deadline" : ec.message();
        co_return result;
      }
      c.stream.socket().set_option(tcp::no_delay(true));
      c.open = true;
    }

    arm();
    auto [write_ec, written] =
        co_await http::async_write(c.stream, c.request, asio::as_tuple(asio::use_awaitable));
    beast::error_code ec = write_ec;
    c.parser.emplace();
    if (!ec) {
      auto [read_ec, read] = co_await http::async_read(
          c.stream, c.buffer, *c.parser, asio::as_tuple(asio::use_awaitable));
      ec = read_ec;
    }
    c.stream.expires_never();
    if (ec == asio::error::operation_aborted) {
      c.close();
      throw_cancelled();
    }
    if (ec) {
      const bool got_some = c.parser->got_some();
      c.close();
      if (ec == beast::error::timeout && by_deadline) {
        result.error = failure::deadline;
        result.detail = "no complete response before the deadline";
        co_return result;
      }
      if (ec == beast::error::timeout) {
        result.error = failure::timeout;
      } else if (reused && attempt == 0 && is_stale_close(ec, got_some)) {
        result.stale_retries = 1;
        continue;
      } else {
        result.error = failure::io;
      }
      result.detail = ec.message();
      co_return result;
    }

    const http::response<http::string_body>& response = c.parser->get();
    result.status = response.result_int();
    if (!response.keep_alive()) c.close();
    if (result.status < 200 || result.status >= 300) {
      result.error = failure::status;
      result.detail = "HTTP " + std::to_string(result.status);
    }
    co_return result;
  }
}

}  // namespace ferry::loadgen
