// bench/fanout_bench.cpp — claims 2 and 3 of docs/threads-vs-async.md (scripts/threads-vs-async):
// fan-out to a slow backend and an endpoint aggregating three backend calls, in ferry and with
// one thread per request or per connection. One program, four roles (the first argument):
//
//   fanout_bench backend [--port N]
//       An HTTP/1.1 keep-alive server on ferry: `GET /delay?ms=N` answers `ok` after
//       `co_await ferry::sleep(N ms)`, any other path at once. Prints "listening on
//       127.0.0.1:<port>", serves until SIGTERM.
//   fanout_bench client --port P --mode sequential|gather|semaphore|threads
//                       [--requests 100] [--delay-ms 100] [--limit 10] [--target PATH]
//       GETs /delay?ms=D (or PATH) from the backend `--requests` times: one after the other on one
//       coroutine (sequential), all at once with ferry::gather (gather), with ferry::gather
//       under a ferry::semaphore(--limit) (semaphore), or one std::thread per request with
//       blocking sockets (threads). The coroutines share a keep-alive connection pool (one
//       connection reused when sequential, one per request in flight otherwise, as aiohttp's
//       ClientSession does). Prints one JSON line: wall_ms (first request sent to last answer),
//       ok, vm_hwm_kib (VmHWM of /proc/self/status at the end), threads (Threads at the end).
//   fanout_bench aggregator --backend-port P [--port N]
//       ferry: `GET /agg?calls=C&ms=M&how=sequential|gather` makes C calls to the backend's
//       /delay?ms=M one after the other, or all at once with ferry::gather, then answers `ok`.
//   fanout_bench aggregator-threads --backend-port P [--port N]
//       The same endpoint as a thread-per-connection server with blocking sockets; `how=gather`
//       runs the C calls on C std::threads joined before the answer.
//
// Exits 2 on a bad argument; a client prints ok < requests and exits 1 if a request failed.
#include <sys/resource.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "ferry/ferry.hpp"
#include "ferry/io/gather.hpp"
#include "ferry/io/semaphore.hpp"

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// --- the little HTTP/1.1 both sides speak -----------------------------------------------------

/// The request target of a request head ("GET /x?y HTTP/1.1\r\n..."), or "" if malformed.
std::string target_of(std::string_view head) {
  const std::size_t a = head.find(' ');
  if (a == std::string_view::npos) return {};
  const std::size_t b = head.find(' ', a + 1);
  if (b == std::string_view::npos) return {};
  return std::string(head.substr(a + 1, b - a - 1));
}

/// The value of query parameter `name` in `target`, or "".
std::string query_value(std::string_view target, std::string_view name) {
  const std::size_t q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const std::size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    const std::size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name)
      return eq == std::string_view::npos ? std::string() : std::string(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
  return {};
}

long query_number(std::string_view target, std::string_view name, long fallback) {
  const std::string v = query_value(target, name);
  return v.empty() ? fallback : std::strtol(v.c_str(), nullptr, 10);
}

std::string response(int status, std::string_view body) {
  const char* reason = status == 200 ? "OK" : status == 404 ? "Not Found" : "Bad Gateway";
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + std::string(body);
}

std::string get_request(std::string_view target) {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
}

/// Content-Length of a response head (0 if absent).
std::size_t content_length(std::string_view head) {
  for (std::string_view key : {"Content-Length:", "content-length:"}) {
    const std::size_t at = head.find(key);
    if (at != std::string_view::npos)
      return std::strtoull(std::string(head.substr(at + key.size(), 20)).c_str(), nullptr, 10);
  }
  return 0;
}

bool status_ok(std::string_view head) { return head.substr(0, 12) == "HTTP/1.1 200"; }

// --- ferry client: a keep-alive pool on the loop (one I/O thread, so no lock) -----------------

struct pool {
  tcp::endpoint backend;
  std::vector<tcp::socket> idle;
};

/// GET `target` from the pool's backend; true on a 200. A connection that fails is dropped.
ferry::task<bool> pooled_get(pool& p, std::string target) {
  std::optional<tcp::socket> s;
  if (!p.idle.empty()) {
    s.emplace(std::move(p.idle.back()));
    p.idle.pop_back();
  } else {
    s.emplace(co_await asio::this_coro::executor);
    auto [ec] = co_await s->async_connect(p.backend, use_tuple);
    if (ec) co_return false;
    s->set_option(tcp::no_delay(true));
  }
  const std::string request = get_request(target);
  if (auto [ec, n] = co_await asio::async_write(*s, asio::buffer(request), use_tuple); ec)
    co_return false;
  std::string buf;
  auto [ec, head_size] =
      co_await asio::async_read_until(*s, asio::dynamic_buffer(buf), "\r\n\r\n", use_tuple);
  if (ec) co_return false;
  const std::string_view head(buf.data(), head_size);
  const bool ok = status_ok(head);
  const std::size_t total = head_size + content_length(head);
  if (buf.size() < total) {
    auto [ec2, n2] = co_await asio::async_read(
        *s, asio::dynamic_buffer(buf), asio::transfer_exactly(total - buf.size()), use_tuple);
    if (ec2) co_return false;
  }
  p.idle.push_back(std::move(*s));
  co_return ok;
}

// --- blocking client (threads) ----------------------------------------------------------------

bool blocking_get(tcp::socket& s, const std::string& target) {
  boost::system::error_code ec;
  const std::string request = get_request(target);
  asio::write(s, asio::buffer(request), ec);
  if (ec) return false;
  std::string buf;
  const std::size_t head_size = asio::read_until(s, asio::dynamic_buffer(buf), "\r\n\r\n", ec);
  if (ec) return false;
  const std::string_view head(buf.data(), head_size);
  const bool ok = status_ok(head);
  const std::size_t total = head_size + content_length(head);
  if (buf.size() < total)
    asio::read(s, asio::dynamic_buffer(buf), asio::transfer_exactly(total - buf.size()), ec);
  return ok && !ec;
}

/// One blocking keep-alive connection to the backend, opened on first use.
struct blocking_connection {
  blocking_connection(asio::io_context& io, tcp::endpoint backend, std::nullopt_t)
      : io(io), backend(std::move(backend)) {}

  asio::io_context& io;
  tcp::endpoint backend;
  std::optional<tcp::socket> socket;

  bool get(const std::string& target) {
    for (int attempt = 0; attempt < 2; ++attempt) {  // a stale keep-alive connection: reopen once
      if (!socket) {
        socket.emplace(io);
        boost::system::error_code ec;
        socket->connect(backend, ec);
        if (ec) {
          socket.reset();
          return false;
        }
        socket->set_option(tcp::no_delay(true));
      }
      if (blocking_get(*socket, target)) return true;
      socket.reset();
    }
    return false;
  }
};

// --- servers ----------------------------------------------------------------------------------

/// Serves requests on `s` until the peer closes: `answer(target)` gives each response.
template <class Answer>
ferry::task<void> serve_connection(tcp::socket s, Answer answer) {
  s.set_option(tcp::no_delay(true));
  std::string buf;
  for (;;) {
    auto [ec, n] =
        co_await asio::async_read_until(s, asio::dynamic_buffer(buf), "\r\n\r\n", use_tuple);
    if (ec) co_return;
    const std::string target = target_of(std::string_view(buf.data(), n));
    buf.erase(0, n);
    const std::string out = co_await answer(target);
    if (auto [wec, wn] = co_await asio::async_write(s, asio::buffer(out), use_tuple); wec)
      co_return;
  }
}

tcp::acceptor listen_on(asio::any_io_executor ex, unsigned short port) {
  tcp::acceptor a(ex, tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  a.listen(4096);
  std::printf("listening on 127.0.0.1:%u\n", static_cast<unsigned>(a.local_endpoint().port()));
  std::fflush(stdout);
  return a;
}

template <class Answer>
ferry::task<int> accept_loop(unsigned short port, Answer answer) {
  auto ex = co_await asio::this_coro::executor;
  tcp::acceptor acceptor = listen_on(ex, port);
  for (;;) {
    auto [ec, s] = co_await acceptor.async_accept(use_tuple);
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return 0;
      co_await ferry::sleep(std::chrono::milliseconds(20));  // out of descriptors: back off
      continue;
    }
    asio::co_spawn(ex, serve_connection(std::move(s), answer), asio::detached);
  }
}

ferry::task<std::string> backend_answer(std::string target) {
  if (target.rfind("/delay", 0) == 0)
    co_await ferry::sleep(std::chrono::milliseconds(query_number(target, "ms", 0)));
  co_return response(200, "ok");
}

int run_backend(unsigned short port) {
  return ferry::run(accept_loop(port, [](std::string t) { return backend_answer(std::move(t)); }));
}

ferry::task<std::string> aggregate(std::shared_ptr<pool> p, std::string target) {
  if (target.rfind("/agg", 0) != 0) co_return response(404, "not found");
  const long calls = query_number(target, "calls", 3);
  const std::string call = "/delay?ms=" + std::to_string(query_number(target, "ms", 200));
  bool ok = true;
  if (query_value(target, "how") == "gather") {
    std::vector<ferry::task<bool>> children;
    for (long i = 0; i < calls; ++i) children.push_back(pooled_get(*p, call));
    for (bool r : co_await ferry::gather(std::move(children))) ok = ok && r;
  } else {
    for (long i = 0; i < calls; ++i) ok = (co_await pooled_get(*p, call)) && ok;
  }
  co_return ok ? response(200, "ok") : response(502, "backend failed");
}

// The pool lives in the main task: its idle sockets are closed while the loop still runs (the
// connections' coroutines may hold it longer; they are destroyed with the loop).
ferry::task<int> aggregator_main(unsigned short port, unsigned short backend_port) {
  auto p = std::make_shared<pool>();
  p->backend = tcp::endpoint(asio::ip::make_address("127.0.0.1"), backend_port);
  // A named handler, not a temporary inside the co_await expression (g++ 12 may destroy such a
  // temporary twice).
  auto answer = [p](std::string t) { return aggregate(p, std::move(t)); };
  const int rc = co_await accept_loop(port, answer);
  p->idle.clear();
  co_return rc;
}

int run_aggregator(unsigned short port, unsigned short backend_port) {
  return ferry::run(aggregator_main(port, backend_port));
}

/// Thread per connection, blocking sockets; each connection thread keeps its own backend
/// connections (one per concurrent call).
void serve_blocking(tcp::socket s, tcp::endpoint backend) {
  asio::io_context io;  // for the backend sockets of this thread
  std::vector<std::unique_ptr<blocking_connection>> backends;
  auto connection = [&](std::size_t i) -> blocking_connection& {
    while (backends.size() <= i)
      backends.push_back(std::make_unique<blocking_connection>(io, backend, std::nullopt));
    return *backends[i];
  };
  s.set_option(tcp::no_delay(true));
  std::string buf;
  for (;;) {
    boost::system::error_code ec;
    const std::size_t n = asio::read_until(s, asio::dynamic_buffer(buf), "\r\n\r\n", ec);
    if (ec) return;
    const std::string target = target_of(std::string_view(buf.data(), n));
    buf.erase(0, n);
    std::string out;
    if (target.rfind("/agg", 0) != 0) {
      out = response(404, "not found");
    } else {
      const long calls = query_number(target, "calls", 3);
      const std::string call = "/delay?ms=" + std::to_string(query_number(target, "ms", 200));
      bool ok = true;
      if (query_value(target, "how") == "gather") {
        std::vector<char> results(static_cast<std::size_t>(calls), 0);
        std::vector<std::thread> threads;
        for (long i = 0; i < calls; ++i) {
          blocking_connection& c = connection(static_cast<std::size_t>(i));
          threads.emplace_back([&c, &call, &results, i] { results[i] = c.get(call) ? 1 : 0; });
        }
        for (auto& t : threads) t.join();
        for (char r : results) ok = ok && r != 0;
      } else {
        for (long i = 0; i < calls; ++i) ok = connection(0).get(call) && ok;
      }
      out = ok ? response(200, "ok") : response(502, "backend failed");
    }
    asio::write(s, asio::buffer(out), ec);
    if (ec) return;
  }
}

int run_aggregator_threads(unsigned short port, unsigned short backend_port) {
  asio::io_context io;
  const tcp::endpoint backend(asio::ip::make_address("127.0.0.1"), backend_port);
  tcp::acceptor acceptor = listen_on(io.get_executor(), port);
  for (;;) {
    boost::system::error_code ec;
    tcp::socket s(io);
    acceptor.accept(s, ec);
    if (ec) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    std::thread(serve_blocking, std::move(s), backend).detach();
  }
}

// --- the fan-out client -----------------------------------------------------------------------

std::string status_field(const char* name) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string key = std::string(name) + ":";
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return line.substr(key.size());
  return "0";
}

long status_number(const char* name) {
  return std::strtol(status_field(name).c_str(), nullptr, 10);
}

struct fanout_result {
  double wall_ms = 0;
  long ok = 0;
};

ferry::task<fanout_result> fanout(
    std::string mode, unsigned short port, long requests, std::string target, std::size_t limit) {
  pool p;
  p.backend = tcp::endpoint(asio::ip::make_address("127.0.0.1"), port);
  fanout_result r;
  const auto start = clock_type::now();
  if (mode == "sequential") {
    for (long i = 0; i < requests; ++i) r.ok += (co_await pooled_get(p, target)) ? 1 : 0;
  } else {
    ferry::semaphore sem(mode == "semaphore" ? limit : static_cast<std::size_t>(requests));
    auto one = [&](std::string t) -> ferry::task<bool> {
      auto permit = co_await sem.acquire();
      co_return co_await pooled_get(p, std::move(t));
    };
    std::vector<ferry::task<bool>> children;
    for (long i = 0; i < requests; ++i) children.push_back(one(target));
    for (bool ok : co_await ferry::gather(std::move(children))) r.ok += ok ? 1 : 0;
  }
  r.wall_ms = std::chrono::duration<double, std::milli>(clock_type::now() - start).count();
  co_return r;
}

fanout_result fanout_threads(unsigned short port, long requests, const std::string& target) {
  const tcp::endpoint backend(asio::ip::make_address("127.0.0.1"), port);
  std::atomic<long> ok{0};
  const auto start = clock_type::now();
  std::vector<std::thread> threads;
  for (long i = 0; i < requests; ++i) {
    threads.emplace_back([&] {
      asio::io_context io;
      blocking_connection c{io, backend, std::nullopt};
      if (c.get(target)) ok.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  return {std::chrono::duration<double, std::milli>(clock_type::now() - start).count(), ok.load()};
}

int run_client(const std::string& mode,
               unsigned short port,
               long requests,
               const std::string& target,
               std::size_t limit) {
  fanout_result r;
  if (mode == "threads") {
    r = fanout_threads(port, requests, target);
  } else if (mode == "sequential" || mode == "gather" || mode == "semaphore") {
    const int rc = ferry::run([&]() -> ferry::task<int> {
      r = co_await fanout(mode, port, requests, target, limit);
      co_return 0;
    }());
    if (rc != 0) return rc;
  } else {
    throw usage_error("--mode: expected sequential, gather, semaphore or threads");
  }
  std::printf(
      "{\"mode\": \"%s\", \"requests\": %ld, \"target\": \"%s\", \"limit\": %zu, \"ok\": "
      "%ld, \"wall_ms\": %.3f, \"vm_hwm_kib\": %ld, \"threads_at_end\": %ld}\n",
      mode.c_str(),
      requests,
      target.c_str(),
      limit,
      r.ok,
      r.wall_ms,
      status_number("VmHWM"),
      status_number("Threads"));
  return r.ok == requests ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2)
      throw usage_error("expected a role: backend, client, aggregator, aggregator-threads");
    const std::string role = argv[1];
    std::map<std::string, std::string> flags;
    for (int i = 2; i < argc; i += 2) {
      const std::string flag = argv[i];
      if (flag.rfind("--", 0) != 0 || i + 1 >= argc)
        throw usage_error("expected --flag value, got '" + flag + "'");
      flags[flag.substr(2)] = argv[i + 1];
    }
    auto number = [&](const char* name, long fallback) {
      const auto it = flags.find(name);
      return it == flags.end() ? fallback : std::strtol(it->second.c_str(), nullptr, 10);
    };
    const auto port = static_cast<unsigned short>(number("port", 0));
    if (role == "backend") return run_backend(port);
    if (role == "aggregator")
      return run_aggregator(port, static_cast<unsigned short>(number("backend-port", 0)));
    if (role == "aggregator-threads")
      return run_aggregator_threads(port, static_cast<unsigned short>(number("backend-port", 0)));
    if (role == "client") {
      const std::string target = flags.count("target") != 0
                                     ? flags["target"]
                                     : "/delay?ms=" + std::to_string(number("delay-ms", 100));
      return run_client(flags["mode"],
                        port,
                        number("requests", 100),
                        target,
                        static_cast<std::size_t>(number("limit", 10)));
    }
    throw usage_error("unknown role '" + role + "'");
  } catch (const usage_error& e) {
    std::fprintf(stderr, "fanout_bench: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fanout_bench: %s\n", e.what());
    return 1;
  }
}
