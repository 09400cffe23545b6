// docs/examples/server/server.cpp — the listener, the two kinds of connection (a coroutine in a
// task_group; a blocking thread) and the graceful shutdown.
#include "server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <cerrno>
#include <climits>
#include <coroutine>
#include <cstdint>
#include <cstdio>
#include <ferry/bridge/runtime.hpp>
#include <ferry/bridge/to_thread.hpp>
#include <ferry/bridge/try_offload.hpp>
#include <ferry/io/errors.hpp>
#include <ferry/io/race.hpp>
#include <ferry/io/sleep.hpp>
#include <ferry/io/task_group.hpp>
#include <ferry/io/timeout.hpp>
#include <fstream>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "http_wire.hpp"

namespace ferry_server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::size_t read_chunk = 4096;
/// What an idle keep-alive connection reads into while it waits for its next request (a request
/// line and a few headers; the parser grows the buffer for more). Small, because every idle
/// connection holds it.
constexpr std::size_t idle_read_chunk = 512;
/// After the last response of a connection: how long, and how many bytes, the server keeps
/// reading (and discarding) until the client closes, so that closing with unread request bytes
/// does not reset the connection before the client has read that response.
constexpr auto linger_for = 1000ms;
constexpr std::size_t linger_bytes = 1 << 20;
/// Connections accepted per wake-up of the acceptor before the loop runs other work.
constexpr std::size_t accept_batch = 256;
/// Connections open at once on the admin listener; more are answered 503 and closed.
constexpr std::size_t admin_max_connections = 16;

/// Increments a gauge now and decrements it at scope exit.
class gauge_hold {
 public:
  explicit gauge_hold(std::atomic<std::uint64_t>& g) noexcept : g_(&g) {
    g_->fetch_add(1, std::memory_order_relaxed);
  }
  /// The same, and raises `peak` to the new value if it is higher.
  gauge_hold(std::atomic<std::uint64_t>& g, std::atomic<std::uint64_t>& peak) noexcept : g_(&g) {
    server_counters::raise_peak(peak, g_->fetch_add(1, std::memory_order_relaxed) + 1);
  }
  gauge_hold(const gauge_hold&) = delete;
  gauge_hold& operator=(const gauge_hold&) = delete;
  ~gauge_hold() { g_->fetch_sub(1, std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t>* g_;
};

/// A place in a gauge bounded by `limit`, held until scope exit; `held()` false (and the gauge
/// unchanged) when `limit` places were taken already.
class bounded_hold {
 public:
  bounded_hold(std::atomic<std::uint64_t>& g, std::uint64_t limit) noexcept : g_(&g) {
    std::uint64_t seen = g.load(std::memory_order_relaxed);
    while (seen < limit && !g.compare_exchange_weak(seen, seen + 1, std::memory_order_relaxed)) {
    }
    held_ = seen < limit;
  }
  bounded_hold(const bounded_hold&) = delete;
  bounded_hold& operator=(const bounded_hold&) = delete;
  ~bounded_hold() {
    if (held_) g_->fetch_sub(1, std::memory_order_relaxed);
  }
  bool held() const noexcept { return held_; }

 private:
  std::atomic<std::uint64_t>* g_;
  bool held_ = false;
};

/// What a read of the request loop (`converse`) returns: the bytes parsed and the error.
struct io_result {
  error_code ec;
  std::size_t bytes = 0;
};

/// An operation that has already finished, as an awaitable holding its result: what the
/// blocking transport's operations return (they block the calling thread, then hand the value
/// to the co_await that asked for it without suspending).
template <class T>
struct ready {
  T value;
  bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  T await_resume() { return std::move(value); }
};

template <>
struct ready<void> {
  bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  void await_resume() const noexcept {}
};

/// The coroutine type of the request loop on a connection thread: it starts at once and runs
/// to its end inside the call, since it may only co_await `ready` values (await_transform
/// accepts nothing else), and `get()` then rethrows what it threw.
class blocking_run {
 public:
  struct promise_type {
    std::exception_ptr failure;
    blocking_run get_return_object() noexcept {
      return blocking_run(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_never initial_suspend() const noexcept { return {}; }
    std::suspend_always final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    void unhandled_exception() noexcept { failure = std::current_exception(); }
    template <class T>
    ready<T> await_transform(ready<T> r) const noexcept {
      return r;
    }
    /// A nested loop_task (send_last), already run to its end.
    ready<void> await_transform(blocking_run&& nested) const {
      nested.get();
      return {};
    }
  };

  blocking_run(blocking_run&& other) noexcept : h_(std::exchange(other.h_, nullptr)) {}
  blocking_run(const blocking_run&) = delete;
  blocking_run& operator=(const blocking_run&) = delete;
  blocking_run& operator=(blocking_run&&) = delete;
  ~blocking_run() {
    if (h_) h_.destroy();
  }

  /// Rethrows what the loop threw; it has always finished (it cannot suspend).
  void get() const {
    if (std::exception_ptr e = h_.promise().failure) std::rethrow_exception(e);
  }

 private:
  explicit blocking_run(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  std::coroutine_handle<promise_type> h_;
};

/// Waits until `fd` is ready for `events` (or has failed or hung up), `deadline` passes, or
/// `wake_fd` (when >= 0) becomes readable.
enum class readiness { ready, timed_out, woken };
readiness wait_ready(int fd, short events, clock_type::time_point deadline, int wake_fd) {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock_type::now());
    if (left.count() <= 0) return readiness::timed_out;
    pollfd fds[2] = {{fd, events, 0}, {wake_fd, POLLIN, 0}};
    const int n = ::poll(
        fds, wake_fd >= 0 ? 2 : 1, static_cast<int>(std::min<long long>(left.count(), INT_MAX)));
    if (n < 0 && errno != EINTR) return readiness::ready;  // let the read or write report it
    if (n <= 0) continue;
    if (wake_fd >= 0 && (fds[1].revents & POLLIN) != 0) return readiness::woken;
    return readiness::ready;
  }
}

/// Reads some bytes from a non-blocking `socket` before `deadline` (error beast::error::timeout
/// after it), unless `wake_fd` becomes readable first (error operation_aborted).
template <class MutableBuffers>
std::size_t read_before(tcp::socket& socket,
                        const MutableBuffers& buffers,
                        clock_type::time_point deadline,
                        int wake_fd,
                        error_code& ec) {
  for (;;) {
    switch (wait_ready(socket.native_handle(), POLLIN, deadline, wake_fd)) {
      case readiness::timed_out:
        ec = beast::error::timeout;
        return 0;
      case readiness::woken:
        ec = asio::error::operation_aborted;
        return 0;
      case readiness::ready:
        break;
    }
    const std::size_t n = socket.read_some(buffers, ec);
    if (ec != asio::error::would_block && ec != asio::error::try_again) return n;
  }
}

/// A blocking socket whose reads give up at a deadline (SyncReadStream, for Beast's http::read).
/// A blocking Asio read cannot time out (it polls again on EAGAIN), hence the poll first.
class deadline_stream {
 public:
  deadline_stream(tcp::socket& socket, clock_type::time_point deadline)
      : socket_(socket), deadline_(deadline) {}

  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers, error_code& ec) {
    return read_before(socket_, buffers, deadline_, -1, ec);
  }

  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers) {
    error_code ec;
    const std::size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  tcp::socket& socket_;
  clock_type::time_point deadline_;
};

/// Writes all of `data`, each write within `timeout` of the previous one. false when it could
/// not; `timed_out` tells whether the deadline was the reason.
bool write_all(tcp::socket& socket,
               std::string_view data,
               clock_type::duration timeout,
               bool* timed_out = nullptr) {
  while (!data.empty()) {
    const auto deadline = clock_type::now() + timeout;
    if (wait_ready(socket.native_handle(), POLLOUT, deadline, -1) == readiness::timed_out) {
      if (timed_out != nullptr) *timed_out = true;
      return false;
    }
    error_code ec;
    const std::size_t n = socket.write_some(asio::buffer(data.data(), data.size()), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) continue;
    if (ec) return false;
    data.remove_prefix(n);
  }
  return true;
}

/// One coroutine's connection: the stream, on the coroutine's own strand. Everything but the
/// stream's socket is touched on the strand only.
struct async_connection {
  explicit async_connection(const asio::any_io_executor& ex) : stream(ex), idle_timer(ex) {}
  beast::tcp_stream stream;
  /// The deadline of the wait for a request (read timeout for the first, idle timeout for the
  /// next). The timer is not re-armed per request: it stays armed at a deadline that may have
  /// moved later since, and when it fires it either closes an idle connection whose deadline
  /// has passed or re-arms itself at the current deadline (on_idle_timer).
  asio::steady_timer idle_timer;
  clock_type::time_point idle_deadline{};
  bool idle = false;         // waiting for the first byte of a request
  bool timer_armed = false;  // an idle_timer wait is pending (not cancelled)
  bool timed_out = false;    // the idle timer cancelled the wait for a request
};

/// One thread's connection.
struct thread_connection {
  std::thread thread;
  int fd = -1;  // valid while the socket is open; guarded by the server's mutex
};

/// Watches a connection while its request is processed elsewhere: returns when the client has
/// gone (orderly close or reset), so that the work can be cancelled. A client that already
/// sends its next request (pipelining) is still there: then it waits until cancelled.
ferry::task<void> watch_for_hang_up(tcp::socket& socket) {
  for (;;) {
    // An error is a broken connection (or the race cancelling this watch): either way, done.
    error_code ec;
    co_await socket.async_wait(tcp::socket::wait_read,
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    char byte = 0;
    const ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) co_return;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
    if (n < 0) co_return;
    asio::steady_timer forever(socket.get_executor(), asio::steady_timer::time_point::max());
    co_await forever.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    co_return;
  }
}

}  // namespace

void validate(const server_config& c) {
  auto fail = [](const std::string& what) { throw std::invalid_argument(what); };
  error_code ec;
  asio::ip::make_address(c.address, ec);
  if (ec) fail("bad address '" + c.address + "': " + ec.message());
  if (c.max_connections == 0) fail("max connections must be at least 1");
  if (c.admin_port) {
    asio::ip::make_address(c.admin_address, ec);
    if (ec) fail("bad admin address '" + c.admin_address + "': " + ec.message());
  }
  if (c.admission_target.count() <= 0 || c.admission_target > std::chrono::seconds(10)) {
    fail("admission target must be in [1, 10000] ms");
  }
  if (c.handler.max_blocking == 0) fail("max blocking must be at least 1");
  if (c.handler.request_timeout.count() < 0) fail("request timeout must not be negative");
  if (c.limits.max_header < 64 || c.limits.max_header > UINT32_MAX) {
    fail("max header must be in [64, 4294967295] bytes");
  }
  if (c.read_timeout.count() <= 0) fail("read timeout must be positive");
  if (c.idle_timeout.count() <= 0) fail("idle timeout must be positive");
  if (c.shutdown_deadline.count() < 0) fail("shutdown deadline must not be negative");
  if (c.drain.count() < 0) fail("drain must not be negative");
  if (c.write_timeout.count() <= 0) fail("write timeout must be positive");
  if (c.backlog < 0) fail("backlog must not be negative");
  if (c.send_buffer < 0) fail("send buffer must not be negative");
}

ferry::admission_policy admission_policy_for(const server_config& c) {
  return c.max_offloads > 0 ? ferry::admission_policy::fixed(c.max_offloads)
                            : ferry::admission_policy::adaptive(c.admission_target);
}

int system_backlog() {
  std::ifstream in("/proc/sys/net/core/somaxconn");
  long long n = 0;
  if (in >> n && n > 0) return static_cast<int>(std::min<long long>(n, INT_MAX));
  return SOMAXCONN;
}

struct server::impl {
  impl(ferry::runtime& runtime, server_config c)
      : rt(runtime),
        config((validate(c), std::move(c))),
        handler(with_offload_limit(config), counters, &rt),
        acceptor(rt.get_executor()) {
    // The admission of the heavy requests is the runtime pool's (ferry::try_offload): what
    // /stats reports must be what it enforces.
    if (config.handler.mode == execution_mode::offload) {
      const ferry::admission_policy want = admission_policy_for(config);
      const ferry::admission_policy& has = rt.cpu().admission();
      const bool same =
          want.kind == has.kind &&
          (want.kind != ferry::admission_policy::mode::fixed || want.limit == has.limit) &&
          (want.kind != ferry::admission_policy::mode::adaptive || want.target == has.target);
      if (!same) {
        throw std::invalid_argument(
            "the runtime's admission policy must be the server's (" +
            std::string(config.max_offloads > 0
                            ? "fixed at max offloads " + std::to_string(config.max_offloads)
                            : "adaptive, target " +
                                  std::to_string(config.admission_target.count()) + " ms") +
            "): see admission_policy_for");
      }
    }
    const tcp::endpoint endpoint(asio::ip::make_address(config.address), config.port);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    // Accepted sockets inherit it. A small one bounds the kernel's memory per connection, and
    // makes a client that stops reading block the server's write sooner (the write timeout).
    if (config.send_buffer > 0) {
      acceptor.set_option(asio::socket_base::send_buffer_size(config.send_buffer));
    }
    acceptor.bind(endpoint);
    backlog = config.backlog > 0 ? config.backlog : system_backlog();
    acceptor.listen(backlog);
    acceptor.non_blocking(true);  // accept_loop empties the backlog with non-blocking accepts
    bound = acceptor.local_endpoint();
    if (config.admin_port) {
      const tcp::endpoint admin(asio::ip::make_address(config.admin_address), *config.admin_port);
      admin_acceptor.emplace(rt.get_executor());
      admin_acceptor->open(admin.protocol());
      admin_acceptor->set_option(asio::socket_base::reuse_address(true));
      admin_acceptor->bind(admin);
      admin_acceptor->listen(SOMAXCONN);
      admin_acceptor->non_blocking(true);
      admin_bound = admin_acceptor->local_endpoint();
    }
    if (config.handler.mode == execution_mode::thread) {
      if (::pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        throw std::system_error(errno, std::generic_category(), "pipe2");
      }
    }
  }

  ~impl() {
    // run() joins every connection thread; this covers a run() that was abandoned.
    stop_threads_now();
    join_threads();
    for (int fd : wake_pipe) {
      if (fd >= 0) ::close(fd);
    }
  }

  static handler_config with_offload_limit(const server_config& c) {
    handler_config h = c.handler;
    h.max_offloads = c.max_offloads;
    return h;
  }

  // --- connections per client address (--max-connections-per-client) ---------------------------

  /// One connection's place in its client address's count; gives it back when destroyed.
  class client_slot {
   public:
    client_slot() = default;
    client_slot(impl* s, asio::ip::address address) : s_(s), address_(std::move(address)) {}
    client_slot(client_slot&& other) noexcept
        : s_(std::exchange(other.s_, nullptr)),
          address_(other.address_),
          refused_(other.refused_) {}
    client_slot& operator=(client_slot&&) = delete;
    ~client_slot() { release(); }
    /// Gives the place back now (the destructor does it otherwise).
    void release() {
      if (s_ != nullptr) std::exchange(s_, nullptr)->release_client(address_);
    }
    /// False when the address had --max-connections-per-client open already.
    bool admitted() const noexcept { return !refused_; }
    static client_slot refused() {
      client_slot slot;
      slot.refused_ = true;
      return slot;
    }

   private:
    impl* s_ = nullptr;  // null: nothing to give back (no limit, or refused)
    asio::ip::address address_;
    bool refused_ = false;
  };

  /// A place for one more connection from `socket`'s peer, or a refused slot when that address
  /// has --max-connections-per-client open already (0: no limit).
  client_slot admit_client(const tcp::socket& socket) {
    if (config.max_connections_per_client == 0) return {};
    error_code ec;
    const tcp::endpoint peer = socket.remote_endpoint(ec);
    if (ec) return {};  // gone already: its reads will fail
    std::lock_guard lock(clients_mutex);
    std::size_t& open = per_client[peer.address()];
    if (open >= config.max_connections_per_client) return client_slot::refused();
    ++open;
    return client_slot(this, peer.address());
  }

  void release_client(const asio::ip::address& address) {
    std::lock_guard lock(clients_mutex);
    const auto it = per_client.find(address);
    if (it != per_client.end() && --it->second == 0) per_client.erase(it);
  }

  // --- lifecycle --------------------------------------------------------------------------------

  ferry::task<void> run() {
    ferry::task_group connections(rt.get_executor());
    std::exception_ptr failure;
    try {
      co_await accept_all(connections);
    } catch (...) {
      if (!ferry::is_cancellation(std::current_exception())) failure = std::current_exception();
    }
    // The shutdown request cancelled this coroutine, and a cancelled coroutine throws at every
    // co_await: go on on a fresh cancellation state (a second request then cuts the phase short).
    co_await asio::this_coro::reset_cancellation_state();
    counters.draining.store(true);
    if (!failure && config.drain.count() > 0) {
      // Phase 1: keep accepting and serving (every response closes its connection, /health says
      // 503) until the drain has passed or another shutdown request comes.
      try {
        co_await ferry::timeout(config.drain, accept_all(connections));
      } catch (const ferry::timeout_error&) {
      } catch (...) {
        if (!ferry::is_cancellation(std::current_exception())) failure = std::current_exception();
      }
      co_await asio::this_coro::reset_cancellation_state();
    }
    begin_drain();
    if (config.handler.mode == execution_mode::thread) {
      co_await drain_threads();
    } else {
      try {
        co_await ferry::timeout(config.shutdown_deadline, connections.join());
      } catch (const ferry::timeout_error&) {
        // The deadline passed: the join has cancelled the connections left and waited for them.
      } catch (const boost::system::system_error&) {
        // A second shutdown request: the same, without waiting for the deadline.
      } catch (const ferry::exception_group& e) {
        std::fprintf(stderr, "ferry_server: %s\n", e.what());
      }
    }
    if (failure) std::rethrow_exception(failure);
  }

  /// Accepts on the public listener and, when there is one, the admin listener, until cancelled
  /// (or until one of them fails for good).
  ferry::task<void> accept_all(ferry::task_group& connections) {
    if (!admin_acceptor) {
      co_await accept_loop(connections, acceptor, false);
      co_return;
    }
    ferry::task<void> public_loop = accept_loop(connections, acceptor, false);
    ferry::task<void> admin_loop = accept_loop(connections, *admin_acceptor, true);
    co_await ferry::race(std::move(public_loop), std::move(admin_loop));
  }

  /// Accepts connections on `listener` (`admin`: the admin listener) and starts each one.
  ferry::task<void> accept_loop(ferry::task_group& connections,
                                tcp::acceptor& listener,
                                bool admin) {
    auto last_report = clock_type::time_point();
    std::size_t batch = 0;  // connections accepted since the acceptor last waited
    for (;;) {
      error_code ec;
      // Once woken, take what the backlog holds without waiting again (a burst of connections
      // is accepted in one go), up to a batch, then let the loop run the rest.
      tcp::socket socket(rt.get_executor());
      if (batch > 0 && batch < accept_batch) {
        socket = listener.accept(ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) {
          batch = 0;
          continue;
        }
        ++batch;
      } else {
        if (batch > 0) co_await asio::post(asio::use_awaitable);  // a batch: let others run
        batch = 1;
        socket = co_await listener.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      }
      if (ec == asio::error::operation_aborted) co_return;
      if (ec) {
        const int e = ec.value();
        if (ec.category() != boost::system::system_category())
          throw boost::system::system_error(ec);
        if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
          // Out of descriptors or memory: the connection stays in the backlog; try again a
          // little later rather than spin.
          if (clock_type::now() - last_report > 1s) {
            last_report = clock_type::now();
            std::fprintf(stderr, "ferry_server: accept: %s (backing off)\n", ec.message().c_str());
          }
          batch = 0;
          co_await ferry::sleep(20ms);
          continue;
        }
        // Errors of one pending connection (accept(2): the client gave up, or a network error
        // was reported on it): the next one is fine.
        if (e == ECONNABORTED || e == EPROTO || e == EPERM || e == ENETDOWN || e == ENOPROTOOPT ||
            e == EHOSTDOWN || e == ENONET || e == EHOSTUNREACH || e == EOPNOTSUPP ||
            e == ENETUNREACH || e == ETIMEDOUT || e == EINTR || e == EAGAIN) {
          continue;
        }
        throw boost::system::system_error(ec, "accept");  // the listening socket itself failed
      }
      if (admin) {
        // The operator's own listener: outside the public limits and counts, with a small
        // bound of its own.
        if (admin_open.load() >= admin_max_connections) {
          counters.count_response(endpoint::other, 503);
          write_refusal(socket, false);
          continue;
        }
        admin_open.fetch_add(1);
        if (config.handler.mode == execution_mode::thread) {
          start_thread(std::move(socket), client_slot(), true);
        } else {
          connections.spawn(serve(std::move(socket), client_slot(), true));
        }
        continue;
      }
      counters.connections_accepted.fetch_add(1, std::memory_order_relaxed);
      if (counters.connections_open.load(std::memory_order_relaxed) >= config.max_connections) {
        refuse(socket, false);
        continue;
      }
      client_slot slot = admit_client(socket);
      if (!slot.admitted()) {
        refuse(socket, true);
        continue;
      }
      const std::uint64_t open =
          counters.connections_open.fetch_add(1, std::memory_order_relaxed) + 1;
      server_counters::raise_peak(counters.connections_peak, open);
      if (config.handler.mode == execution_mode::thread) {
        start_thread(std::move(socket), std::move(slot), false);
      } else {
        connections.spawn(serve(std::move(socket), std::move(slot), false));
      }
    }
  }

  /// Over --max-connections (or, `per_client`, --max-connections-per-client): a 503, best
  /// effort (never blocks), and close.
  void refuse(tcp::socket& socket, bool per_client) {
    (per_client ? counters.connections_refused_per_client : counters.connections_refused)
        .fetch_add(1, std::memory_order_relaxed);
    counters.count_response(endpoint::other, 503);
    write_refusal(socket, per_client);
  }

  /// Writes the 503 of a refused connection (best effort, never blocks) and closes it.
  static void write_refusal(tcp::socket& socket, bool per_client) {
    error_code ec;
    socket.non_blocking(true, ec);
    const std::string refusal = wire::refusal_response(per_client);
    socket.write_some(asio::buffer(refusal), ec);
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  /// Stops accepting, closes idle connections, and asks busy ones to close after their response.
  void begin_drain() {
    counters.draining.store(true);
    stopping.store(true);
    error_code ec;
    acceptor.close(ec);
    if (admin_acceptor) admin_acceptor->close(ec);
    std::lock_guard lock(mutex);
    for (const std::weak_ptr<async_connection>& weak : live) {
      if (std::shared_ptr<async_connection> c = weak.lock()) {
        asio::post(c->stream.get_executor(), [weak] {
          if (std::shared_ptr<async_connection> c = weak.lock(); c && c->idle) c->stream.cancel();
        });
      }
    }
    if (wake_pipe[1] >= 0) {
      const char wake = 1;
      [[maybe_unused]] const ssize_t n = ::write(wake_pipe[1], &wake, 1);
    }
  }

  // --- the conversation: one HTTP/1.1 request loop for both kinds of connection -----------------
  //
  // `converse` is the protocol, written once: wait for a request (read or idle timeout), read it
  // within the read timeout (100-continue included), route it, run its job, answer, keep the
  // connection alive or close it gracefully (linger), and count all of it. What it does on the
  // socket is the transport's: `async_transport` (a coroutine on the connection's strand, Beast's
  // tcp_stream and its timer) or `blocking_transport` (a non-blocking socket polled with deadlines
  // on the connection's own thread, for which converse runs as a `blocking_run` that never
  // suspends). Each transport provides:
  //   using loop_task                         converse's own coroutine type
  //   wait_for_request(buffer, timeout)   -> error_code (operation_aborted: the server stops)
  //   begin_request() / end_request()         the whole request's read deadline, set and cleared
  //   read_header(buffer, parser), read_body(buffer, parser) -> io_result
  //   write_interim(bytes)                -> error_code, within the request's deadline
  //   run(job)                            -> optional<response> (nullopt: the client hung up);
  //                                          throws a cancellation when the server cancels it
  //   write(bytes)                        -> bool, each write within the write timeout (counts
  //                                          bytes_written and write_timeouts)
  //   linger()                                half-close, then drain (bounded in time and bytes)

  template <class Transport>
  typename Transport::loop_task converse(Transport& t) {
    // Bounded: what the parser keeps whole (the header, a chunk line, the trailers) fails with
    // buffer_overflow as soon as it outgrows the buffer, before the rest of it is read.
    beast::flat_buffer buffer(wire::read_buffer_limit(config.limits));
    bool first = true;
    for (;;) {
      // Between requests: wait for the first bytes of the next one (or the client's close).
      if (buffer.size() == 0) {
        const error_code ec =
            co_await t.wait_for_request(buffer, first ? config.read_timeout : config.idle_timeout);
        if (ec) {
          if (ec == beast::error::timeout) {
            (first ? counters.read_timeouts : counters.idle_timeouts)
                .fetch_add(1, std::memory_order_relaxed);
          }
          co_return;
        }
      }
      first = false;

      // The request, whole, within the read timeout.
      t.begin_request();
      wire::request_parser parser;
      wire::configure(parser, config.limits);
      io_result read = co_await t.read_header(buffer, parser);
      // A request's deadline (job::timeout) counts from here: the time its body takes counts.
      const clock_type::time_point header_read = clock_type::now();
      // A header whose framing or Host is not acceptable is answered before its body is read.
      std::optional<response> rejected;
      if (!read.ec) rejected = wire::check_header(parser);
      if (!read.ec && !rejected && wire::expects_continue(parser)) {
        read.ec = co_await t.write_interim(wire::continue_response);
      }
      if (!read.ec && !rejected && !parser.is_done()) {
        const io_result body = co_await t.read_body(buffer, parser);
        read.ec = body.ec;
        read.bytes += body.bytes;
      }
      counters.bytes_read.fetch_add(read.bytes, std::memory_order_relaxed);
      const bool head = wire::is_head(parser);
      if (read.ec && !rejected) {
        const auto pending = buffer.data();
        const wire::read_failure f = wire::classify(
            read.ec,
            true,
            parser,
            std::string_view(static_cast<const char*>(pending.data()), pending.size()));
        count_failure(f);
        rejected = f.answer;
        if (!rejected) co_return;
      }
      if (rejected) {
        co_await send_last(t, *rejected, head);
        co_return;
      }
      t.end_request();

      request req = wire::take_request(parser);
      req.admin = t.admin;
      std::optional<gauge_hold> in_flight(std::in_place, counters.requests_in_flight);
      std::optional<response> res;
      std::exception_ptr failure;
      try {
        std::variant<response, job> routed = handler.route(req);
        if (auto* r = std::get_if<response>(&routed)) {
          res = std::move(*r);
        } else if (job& j = std::get<job>(routed); j.what == job::kind::blocking) {
          // --max-blocking: a /blocking request beyond it is refused at once, never queued in
          // front of the blocking pool.
          const bounded_hold blocking(counters.blocking_in_flight, config.handler.max_blocking);
          if (blocking.held()) {
            res = co_await t.run(j, header_read);
          } else {
            counters.blocking_rejected.fetch_add(1, std::memory_order_relaxed);
            res = http_handler::blocking_overloaded();
          }
        } else {
          res = co_await t.run(j, header_read);
        }
      } catch (...) {
        failure = std::current_exception();
      }
      if (failure) {
        if (ferry::is_cancellation(failure)) {
          counters.requests_cancelled.fetch_add(1, std::memory_order_relaxed);
          std::rethrow_exception(failure);
        }
        res = http_handler::internal_error(ferry::what(failure));
      }
      if (!res) {  // the client hung up while its request was processed
        counters.requests_cancelled.fetch_add(1, std::memory_order_relaxed);
        co_return;
      }
      const bool keep = wire::keeps_alive(req, *res, counters.draining.load());
      counters.count_response(res->counted_as, res->status);
      const std::string out = wire::serialize(*res, keep, head);
      const bool written = co_await t.write(out);
      in_flight.reset();
      if (!written) co_return;
      if (!keep) {
        co_await t.linger();
        co_return;
      }
    }
  }

  /// Writes the connection's last response (an error) and closes it gracefully.
  template <class Transport>
  typename Transport::loop_task send_last(Transport& t, const response& r, bool head) {
    counters.count_response(r.counted_as, r.status);
    const std::string out = wire::serialize(r, false, head);
    if (co_await t.write(out)) co_await t.linger();
  }

  void count_failure(const wire::read_failure& f) {
    switch (f.what) {
      case wire::read_failure::kind::truncated:
        counters.requests_truncated.fetch_add(1, std::memory_order_relaxed);
        break;
      case wire::read_failure::kind::timed_out:
        counters.read_timeouts.fetch_add(1, std::memory_order_relaxed);
        break;
      default:
        break;
    }
  }

  // --- a connection as a coroutine (modes offload and inline) ------------------------------------

  /// `admin`: a connection to the admin listener (counted in admin_open, not connections_open).
  ferry::task<void> serve(tcp::socket accepted, client_slot slot, bool admin) {
    auto c = std::make_shared<async_connection>(co_await asio::this_coro::executor);
    std::list<std::weak_ptr<async_connection>>::iterator entry;
    {
      std::lock_guard lock(mutex);
      entry = live.insert(live.end(), c);
    }
    struct leave {
      impl& s;
      std::list<std::weak_ptr<async_connection>>::iterator entry;
      client_slot& slot;
      bool admin;
      ~leave() {
        {
          std::lock_guard lock(s.mutex);
          s.live.erase(entry);
        }
        slot.release();  // before the count: a connection no longer open holds no slot
        (admin ? s.admin_open : s.counters.connections_open)
            .fetch_sub(1, std::memory_order_relaxed);
      }
    } on_exit{*this, entry, slot, admin};

    // The socket was accepted on the io_context; the stream (and its timer) must live on this
    // coroutine's strand, which serialises them with the coroutine when there are io threads.
    error_code ec;
    const tcp protocol = accepted.local_endpoint(ec).protocol();
    if (ec) co_return;
    const int fd = accepted.release(ec);
    if (ec) co_return;
    c->stream.socket().assign(protocol, fd, ec);
    if (ec) {
      ::close(fd);
      co_return;
    }
    // wait_for_request and write read and write what the socket takes without waiting (Asio's
    // async operations are unaffected by the flag).
    c->stream.socket().non_blocking(true, ec);
    if (ec) co_return;
    try {
      async_transport t{*this, *c, c, admin};
      co_await converse(t);
    } catch (...) {
      // No connection may fail the group (that would cancel its siblings).
      report_connection_end(std::current_exception());
    }
    c->idle_timer.cancel();  // its handler holds a weak_ptr: let it go now, not at the deadline
  }

  /// How a connection that ended in an exception is reported: a cancellation (the shutdown
  /// deadline) is the end, not a failure; anything else goes to stderr.
  static void report_connection_end(const std::exception_ptr& e) {
    if (ferry::is_cancellation(e)) return;
    std::fprintf(stderr, "ferry_server: connection failed: %s\n", ferry::what(e).c_str());
  }

  /// converse's socket operations on a Beast tcp_stream, as coroutines on the connection's strand.
  struct async_transport {
    using loop_task = ferry::task<void>;

    impl& s;
    async_connection& c;
    std::weak_ptr<async_connection> self;  // c, for the idle timer's handler
    bool admin;                            // a connection to the admin listener

    /// Waits for the socket to be readable, then reads what it holds without waiting again.
    ///
    /// The wait goes through the reactor (async_wait never completes at once), never a
    /// speculative read: with one io thread serving thousands of busy connections, a read that
    /// finds its request already there completes without epoll and queues the connection again
    /// behind the others, while the connections that did wait are taken from epoll 128 at a time,
    /// once per pass of the loop's queue. Those waited seconds at 10,000 connections
    /// (docs/benchmarks_server.md). Every connection waiting in epoll is served in the order its
    /// request came.
    ferry::task<error_code> wait_for_request(beast::flat_buffer& buffer,
                                             clock_type::duration timeout) {
      // `idle` before `stopping`: begin_drain sets `stopping`, then (on this strand) cancels the
      // connection if it is idle — one of the two sees the other.
      c.idle = true;
      c.timed_out = false;
      if (s.stopping.load()) co_return asio::error::operation_aborted;
      arm_idle_timer(clock_type::now() + timeout);
      if (buffer.capacity() > idle_read_chunk) buffer.shrink_to_fit();  // empty: frees it
      tcp::socket& socket = c.stream.socket();
      error_code ec;
      std::size_t n = 0;
      for (;;) {
        co_await socket.async_wait(tcp::socket::wait_read,
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
        n = socket.read_some(buffer.prepare(idle_read_chunk), ec);  // non-blocking (serve)
        if (ec != asio::error::would_block && ec != asio::error::try_again) break;
      }
      c.idle = false;
      if (ec == asio::error::operation_aborted && c.timed_out) ec = beast::error::timeout;
      if (!ec) buffer.commit(n);
      co_return ec;
    }

    /// Sets the idle deadline; arms the timer only when it is not armed at or before it.
    void arm_idle_timer(clock_type::time_point deadline) {
      c.idle_deadline = deadline;
      if (c.timer_armed && c.idle_timer.expiry() <= deadline) return;
      c.idle_timer.expires_at(deadline);  // cancels a wait armed later than the deadline
      wait_idle_timer(c, self);
    }

    static void wait_idle_timer(async_connection& c, std::weak_ptr<async_connection> self) {
      c.timer_armed = true;
      c.idle_timer.async_wait([self = std::move(self)](error_code ec) mutable {
        if (ec) return;  // re-armed (the new wait is pending), or the connection is gone
        if (std::shared_ptr<async_connection> c = self.lock()) on_idle_timer(*c, std::move(self));
      });
    }

    /// The idle timer fired (on the connection's strand): an idle connection past its deadline
    /// is cancelled; before it, the timer waits again until the deadline. A busy connection
    /// re-arms it when it next waits for a request.
    static void on_idle_timer(async_connection& c, std::weak_ptr<async_connection> self) {
      c.timer_armed = false;
      if (!c.idle) return;
      if (clock_type::now() >= c.idle_deadline) {
        c.timed_out = true;
        error_code ignored;
        c.stream.socket().cancel(ignored);
        return;
      }
      c.idle_timer.expires_at(c.idle_deadline);
      wait_idle_timer(c, std::move(self));
    }

    void begin_request() { c.stream.expires_after(s.config.read_timeout); }
    void end_request() { c.stream.expires_never(); }

    ferry::task<io_result> read_header(beast::flat_buffer& buffer, wire::request_parser& parser) {
      io_result r;
      r.bytes = co_await http::async_read_header(
          c.stream, buffer, parser, asio::redirect_error(asio::use_awaitable, r.ec));
      co_return r;
    }

    ferry::task<io_result> read_body(beast::flat_buffer& buffer, wire::request_parser& parser) {
      io_result r;
      r.bytes = co_await http::async_read(
          c.stream, buffer, parser, asio::redirect_error(asio::use_awaitable, r.ec));
      co_return r;
    }

    ferry::task<error_code> write_interim(std::string_view bytes) {
      error_code ec;
      co_await asio::async_write(c.stream,
                                 asio::buffer(bytes.data(), bytes.size()),
                                 asio::redirect_error(asio::use_awaitable, ec));
      co_return ec;
    }

    /// The job's response, after it ran where the mode says; nullopt when the client hung up
    /// meanwhile (the job was cancelled). A job with a deadline (`j.timeout` from `header_read`)
    /// runs under ferry::timeout: once it passes, the job is withdrawn if it has not started, or
    /// stopped through its stop token, and the answer is a 504.
    ferry::task<std::optional<response>> run(job& j, clock_type::time_point header_read) {
      if (j.is_cpu() && s.config.handler.mode == execution_mode::inline_) {
        co_return s.handler.run(j, {}, false);  // the loop thread does the work: nothing else runs
      }
      const bool cpu = j.is_cpu();
      const endpoint counted_as = j.counted_as();
      const std::chrono::milliseconds timeout = j.timeout;
      server_counters& counters = s.counters;
      std::optional<clock_type::duration> remaining;
      if (timeout.count() > 0) {
        remaining = header_read + timeout - clock_type::now();
        if (*remaining <= clock_type::duration::zero()) {
          counters.deadlines_passed.fetch_add(1, std::memory_order_relaxed);
          co_return http_handler::deadline_passed(counted_as, timeout);
        }
      }
      // Named before the co_await (g++ 12 destroys a non-trivial temporary of a co_await
      // expression twice; see docs/guide.md): the job owns the /hash body. On a cpu_pool worker
      // a large /hash body is split with a nested parallel_for. An offload counts itself in
      // offloads_in_flight while it runs on the pool.
      auto work = [&handler = s.handler, &counters, cpu, j = std::move(j)](std::stop_token stop) {
        std::optional<gauge_hold> offloaded;
        if (cpu) offloaded.emplace(counters.offloads_in_flight, counters.offloads_peak);
        return handler.run(j, stop, cpu);
      };
      // A heavy request the pool's admission refuses (adaptive: its queue already holds about
      // --admission-target-ms of work; fixed: --max-offloads queued or running) is answered 503
      // at once, never queued.
      ferry::task<response> running =
          cpu ? ferry::try_offload(std::move(work)) : ferry::to_thread(std::move(work));
      // The deadline bounds the work alone (the watch for a hang-up ends normally when
      // cancelled): once it passes, timeout cancels the offload and throws timeout_error, which
      // wins the race.
      if (remaining) running = ferry::timeout(*remaining, std::move(running));
      ferry::task<void> watching = watch_for_hang_up(c.stream.socket());
      std::variant<response, std::monostate> first_done;
      bool rejected = false;
      bool timed_out = false;
      try {
        first_done = co_await ferry::race(std::move(running), std::move(watching));
      } catch (const ferry::offload_rejected&) {
        rejected = true;
      } catch (const ferry::timeout_error&) {
        timed_out = true;
      }
      if (rejected) {
        counters.offloads_rejected.fetch_add(1, std::memory_order_relaxed);
        co_return http_handler::overloaded(counted_as);
      }
      if (timed_out) {
        counters.deadlines_passed.fetch_add(1, std::memory_order_relaxed);
        co_return http_handler::deadline_passed(counted_as, timeout);
      }
      if (first_done.index() == 1) co_return std::nullopt;
      co_return std::move(std::get<0>(first_done));
    }

    /// Writes all of `out`, each write within the write timeout (a client that stops reading is
    /// cut off, counted in write_timeouts). False when it could not.
    ferry::task<bool> write(std::string_view out) {
      // What the socket takes at once is written here (non-blocking, see serve): no timer to arm
      // and cancel, no completion to queue. The rest waits for the socket.
      error_code ec;
      const std::size_t sent =
          c.stream.socket().write_some(asio::buffer(out.data(), out.size()), ec);
      if (ec && ec != asio::error::would_block && ec != asio::error::try_again) co_return false;
      ec = {};
      s.counters.bytes_written.fetch_add(sent, std::memory_order_relaxed);
      out.remove_prefix(sent);
      if (out.empty()) co_return true;
      while (!out.empty()) {
        c.stream.expires_after(s.config.write_timeout);
        const std::size_t n = co_await c.stream.async_write_some(
            asio::buffer(out.data(), out.size()), asio::redirect_error(asio::use_awaitable, ec));
        s.counters.bytes_written.fetch_add(n, std::memory_order_relaxed);
        out.remove_prefix(n);
        if (ec) {
          if (ec == beast::error::timeout)
            s.counters.write_timeouts.fetch_add(1, std::memory_order_relaxed);
          break;
        }
      }
      c.stream.expires_never();
      co_return !ec;
    }

    ferry::task<void> linger() {
      error_code ec;
      c.stream.socket().shutdown(tcp::socket::shutdown_send, ec);
      if (ec) co_return;
      c.stream.expires_after(std::min<clock_type::duration>(s.config.read_timeout, linger_for));
      char sink[4096];
      std::size_t discarded = 0;
      while (!ec && discarded < linger_bytes) {
        discarded += co_await c.stream.async_read_some(
            asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
      }
    }
  };

  // --- a connection on a thread of its own (mode thread) -----------------------------------------

  void start_thread(tcp::socket socket, client_slot slot, bool admin) {
    join_finished_threads();
    std::lock_guard lock(mutex);
    auto entry = threads.emplace(threads.end());
    entry->fd = socket.native_handle();
    live_threads.fetch_add(1);
    try {
      // The slot goes with the thread's function: the client's count drops when it ends.
      entry->thread = std::thread(
          [this, entry, admin, s = std::move(socket), slot = std::move(slot)]() mutable {
            converse_blocking(s, admin);
            slot.release();  // before the count: a connection no longer open holds no slot
            std::lock_guard lock(mutex);
            error_code ignored;
            s.close(ignored);
            entry->fd = -1;
            finished_threads.splice(finished_threads.end(), threads, entry);
            (admin ? admin_open : counters.connections_open)
                .fetch_sub(1, std::memory_order_relaxed);
            live_threads.fetch_sub(1);
          });
    } catch (const std::system_error&) {
      // No thread to be had: the socket was moved into the lambda and is closed with it.
      threads.erase(entry);
      live_threads.fetch_sub(1);
      if (admin) {
        admin_open.fetch_sub(1);
      } else {
        counters.connections_open.fetch_sub(1, std::memory_order_relaxed);
        counters.connections_refused.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }

  void converse_blocking(tcp::socket& socket, bool admin) {
    error_code ec;
    socket.non_blocking(true, ec);  // every wait is a poll with a deadline (read_before)
    if (ec) return;
    try {
      blocking_transport t{*this, socket, hard_stop.get_token(), admin};
      converse(t).get();
    } catch (...) {
      report_connection_end(std::current_exception());
    }
  }

  /// converse's socket operations on a non-blocking socket polled with deadlines, on the
  /// connection's own thread: each returns a finished `ready` value, so converse runs through in
  /// the call (a blocking_run).
  struct blocking_transport {
    using loop_task = blocking_run;

    impl& s;
    tcp::socket& socket;
    std::stop_token stop;  // the shutdown deadline passed: the job stops
    bool admin;            // a connection to the admin listener
    clock_type::time_point deadline{};

    ready<error_code> wait_for_request(beast::flat_buffer& buffer, clock_type::duration timeout) {
      if (s.stopping.load()) return {asio::error::operation_aborted};
      error_code ec;
      const std::size_t n = read_before(
          socket, buffer.prepare(read_chunk), clock_type::now() + timeout, s.wake_pipe[0], ec);
      if (!ec) buffer.commit(n);
      return {ec};
    }

    void begin_request() { deadline = clock_type::now() + s.config.read_timeout; }
    void end_request() {}

    ready<io_result> read_header(beast::flat_buffer& buffer, wire::request_parser& parser) {
      deadline_stream in(socket, deadline);
      io_result r;
      r.bytes = http::read_header(in, buffer, parser, r.ec);
      return {r};
    }

    ready<io_result> read_body(beast::flat_buffer& buffer, wire::request_parser& parser) {
      deadline_stream in(socket, deadline);
      io_result r;
      r.bytes = http::read(in, buffer, parser, r.ec);
      return {r};
    }

    ready<error_code> write_interim(std::string_view bytes) {
      bool timed_out = false;
      if (write_all(socket, bytes, deadline - clock_type::now(), &timed_out)) return {error_code()};
      return {timed_out ? error_code(beast::error::timeout) : error_code(asio::error::broken_pipe)};
    }

    /// The job runs here, on the connection's thread; it throws a cancellation once `stop` is
    /// requested.
    /// No deadline here: the job has the connection's thread to itself (job::timeout is not
    /// applied in mode thread).
    ready<std::optional<response>> run(job& j, clock_type::time_point /*header_read*/) {
      return {s.handler.run(j, stop, false)};
    }

    /// write_all with the write timeout, counting a timeout; bytes_written counts what was sent.
    ready<bool> write(std::string_view out) {
      bool timed_out = false;
      const bool written = write_all(socket, out, s.config.write_timeout, &timed_out);
      if (timed_out) s.counters.write_timeouts.fetch_add(1, std::memory_order_relaxed);
      if (written) s.counters.bytes_written.fetch_add(out.size(), std::memory_order_relaxed);
      return {written};
    }

    ready<void> linger() {
      error_code ec;
      socket.shutdown(tcp::socket::shutdown_send, ec);
      if (ec) return {};
      const auto until =
          clock_type::now() + std::min<clock_type::duration>(s.config.read_timeout, linger_for);
      char sink[4096];
      std::size_t discarded = 0;
      while (!ec && discarded < linger_bytes) {
        discarded += read_before(socket, asio::buffer(sink), until, -1, ec);
      }
      return {};
    }
  };

  /// Waits for the connection threads until the deadline (or a second shutdown request), then
  /// stops the rest and joins all.
  ferry::task<void> drain_threads() {
    const auto deadline = clock_type::now() + config.shutdown_deadline;
    try {
      while (live_threads.load() > 0 && clock_type::now() < deadline) co_await ferry::sleep(5ms);
    } catch (const boost::system::system_error&) {
      // A second shutdown request: stop them now.
    }
    stop_threads_now();
    // Blocks this io thread briefly: stopped, the threads leave at once, and need no loop.
    join_threads();
  }

  /// Interrupts every connection thread: their work and waits stop, their sockets shut down.
  void stop_threads_now() {
    hard_stop.request_stop();
    std::lock_guard lock(mutex);
    for (thread_connection& t : threads) {
      if (t.fd >= 0) ::shutdown(t.fd, SHUT_RDWR);
    }
  }

  void join_finished_threads() {
    std::list<thread_connection> done;
    {
      std::lock_guard lock(mutex);
      done.splice(done.end(), finished_threads);
    }
    for (thread_connection& t : done) t.thread.join();
  }

  /// Joins every connection thread. Only this and join_finished_threads remove list nodes (a
  /// thread moves its own node to finished_threads with splice), so the pointers stay valid.
  void join_threads() {
    std::vector<std::thread*> all;
    {
      std::lock_guard lock(mutex);
      for (thread_connection& t : threads) all.push_back(&t.thread);
      for (thread_connection& t : finished_threads) all.push_back(&t.thread);
    }
    for (std::thread* t : all) {
      if (t->joinable()) t->join();
    }
    std::lock_guard lock(mutex);
    threads.clear();
    finished_threads.clear();
  }

  ferry::runtime& rt;
  const server_config config;
  server_counters counters;
  http_handler handler;
  tcp::acceptor acceptor;
  tcp::endpoint bound;  // what the acceptor listens on (it is closed at shutdown)
  std::optional<tcp::acceptor> admin_acceptor;  // --admin-port: /stats, /metrics, /debug/tasks
  tcp::endpoint admin_bound;
  std::atomic<std::size_t> admin_open{0};  // connections to the admin listener
  int backlog = 0;                         // what listen(2) was given
  std::atomic<bool> stopping{false};       // phase 2 of the shutdown: idle connections close

  std::mutex mutex;
  std::list<std::weak_ptr<async_connection>> live;  // coroutine connections, for the drain
  // Open connections by client address, under a mutex of its own: a slot may be given back
  // while `mutex` is held (a connection thread that could not be started).
  std::mutex clients_mutex;
  std::map<asio::ip::address, std::size_t> per_client;
  std::list<thread_connection> threads;           // running connection threads
  std::list<thread_connection> finished_threads;  // exited, not joined yet
  std::atomic<std::size_t> live_threads{0};
  std::stop_source hard_stop;   // the shutdown deadline passed: thread connections stop
  int wake_pipe[2] = {-1, -1};  // readable once draining: wakes idle connection threads
};

server::server(ferry::runtime& rt, server_config config)
    : impl_(std::make_unique<impl>(rt, std::move(config))) {}

server::~server() = default;

std::uint16_t server::port() const { return impl_->bound.port(); }

std::uint16_t server::admin_port() const {
  return impl_->admin_acceptor ? impl_->admin_bound.port() : 0;
}

std::string server::admin_endpoint() const {
  if (!impl_->admin_acceptor) return {};
  const tcp::endpoint& e = impl_->admin_bound;
  return e.address().to_string() + ":" + std::to_string(e.port());
}

std::string server::local_endpoint() const {
  const tcp::endpoint& e = impl_->bound;
  return e.address().to_string() + ":" + std::to_string(e.port());
}

const server_config& server::config() const { return impl_->config; }
const http_handler& server::handler() const { return impl_->handler; }
const server_counters& server::counters() const { return impl_->counters; }
int server::backlog() const { return impl_->backlog; }

ferry::task<void> server::run() { return impl_->run(); }

}  // namespace ferry_server
