// docs/examples/support/page_server.hpp — a small real TCP server for the examples to talk to.
//
// Listens on 127.0.0.1 (a port the kernel picks), one coroutine per connection. Protocol: the
// client sends "GET <n>\n", the server waits `latency` (a slow backend) and answers
// "page <n>: <text>\n" — or "error: no page <n>\n" for n < 0. It counts requests and the peak
// number served at once, so examples can show that their limits hold.
#pragma once

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <ferry/ferry.hpp>
#include <istream>
#include <string>

namespace examples {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class page_server {
 public:
  page_server(asio::any_io_executor ex, std::chrono::milliseconds latency)
      : acceptor_(ex, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)), latency_(latency) {
    asio::co_spawn(ex, accept_loop(), asio::detached);
  }

  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  int requests() const { return requests_.load(); }
  int peak_concurrency() const { return peak_.load(); }

  /// Stops accepting; connections in progress finish on their own.
  void stop() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
  }

 private:
  ferry::task<void> accept_loop() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket socket =
          co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;  // closed by stop()
      asio::co_spawn(acceptor_.get_executor(), serve(std::move(socket)), asio::detached);
    }
  }

  ferry::task<void> serve(tcp::socket socket) {
    try {
      asio::streambuf buffer;
      for (;;) {
        co_await asio::async_read_until(socket, buffer, '\n', asio::use_awaitable);
        std::istream in(&buffer);
        std::string verb;
        long n = 0;
        in >> verb >> n;
        in.ignore(1);  // the '\n'
        const int now = ++in_flight_;
        int peak = peak_.load();
        while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
        }
        ++requests_;
        co_await ferry::sleep(latency_);
        --in_flight_;
        const std::string reply = verb != "GET" ? "error: bad request\n"
                                  : n < 0       ? "error: no page " + std::to_string(n) + "\n"
                                                : "page " + std::to_string(n) + ": " +
                                                std::string(static_cast<std::size_t>(n % 7 + 3),
                                                            static_cast<char>('a' + n % 26)) +
                                                "\n";
        co_await asio::async_write(socket, asio::buffer(reply), asio::use_awaitable);
      }
    } catch (const boost::system::system_error&) {
      // the client hung up (eof) or the loop is shutting down: the connection ends
    }
  }

  tcp::acceptor acceptor_;
  std::chrono::milliseconds latency_;
  std::atomic<int> requests_{0};
  std::atomic<int> in_flight_{0};
  std::atomic<int> peak_{0};
};

/// One request on a fresh connection: returns the server's line, or throws on "error: ...".
inline ferry::task<std::string> fetch_page(unsigned short port, long n) {
  tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                asio::use_awaitable);
  const std::string request = "GET " + std::to_string(n) + "\n";
  co_await asio::async_write(socket, asio::buffer(request), asio::use_awaitable);
  std::string line;
  co_await asio::async_read_until(socket, asio::dynamic_buffer(line), '\n', asio::use_awaitable);
  line.resize(line.find('\n'));
  if (line.rfind("error: ", 0) == 0) throw std::runtime_error(line);
  co_return line;
}

}  // namespace examples
