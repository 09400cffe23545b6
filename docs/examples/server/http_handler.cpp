// docs/examples/server/http_handler.cpp — routing, the endpoints, the kernels, the counters.
#include "http_handler.hpp"

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>

#include <algorithm>
#include <bit>
#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ferry/bridge/metrics.hpp>
#include <ferry/bridge/runtime.hpp>
#include <ferry/core/histogram.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace ferry_server {
namespace {

[[noreturn]] void throw_aborted() {
  throw boost::system::system_error(boost::asio::error::operation_aborted);
}

// --- the kernels --------------------------------------------------------------------------------

constexpr std::uint64_t kernel_poll_every = 1 << 14;  // xorshift steps between two stop checks

std::uint64_t xorshift_steps(std::uint64_t state, std::uint64_t steps) noexcept {
  for (std::uint64_t i = 0; i < steps; ++i) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
  }
  return state;
}

constexpr std::uint64_t k1 = 0x9e3779b97f4a7c15ULL;
constexpr std::uint64_t k2 = 0xc2b2ae3d27d4eb4fULL;

std::uint64_t finalize(std::uint64_t h) noexcept {  // murmur3's fmix64
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

/// One round over `data`: 8 bytes at a time, multiply-rotate mixing, then an avalanche.
std::uint64_t hash_once(std::string_view data, std::uint64_t seed) noexcept {
  std::uint64_t h = (seed + k2) ^ (static_cast<std::uint64_t>(data.size()) * k1);
  std::size_t i = 0;
  for (; i + 8 <= data.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, data.data() + i, 8);
    h ^= std::rotl(w * k2, 31) * k1;
    h = std::rotl(h, 27) * 5 + 0x52dce729;
  }
  std::uint64_t tail = 0;
  for (std::size_t j = 0; i + j < data.size(); ++j) {
    tail |= static_cast<std::uint64_t>(static_cast<unsigned char>(data[i + j])) << (8 * j);
  }
  h ^= std::rotl(tail * k2, 31) * k1;
  return finalize(h);
}

std::uint64_t hash_rounds(std::string_view data,
                          std::uint64_t seed,
                          std::uint64_t rounds,
                          const std::stop_token& stop) {
  std::uint64_t h = seed;
  for (std::uint64_t r = 0; r < rounds; ++r) {
    if (stop.stop_requested()) throw_aborted();
    h = hash_once(data, h);
  }
  return h;
}

std::string hex16(std::uint64_t v) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(v));
  return std::string(text, 16);
}

// --- requests -----------------------------------------------------------------------------------

/// The value of `key` in a query string ("a=1&b=2"); nullopt when absent. `duplicate` is set when
/// the key appears twice.
std::optional<std::string_view> query_param(std::string_view query,
                                            std::string_view key,
                                            bool& duplicate) {
  std::optional<std::string_view> found;
  duplicate = false;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const std::size_t eq = pair.find('=');
    const std::string_view name = pair.substr(0, eq);
    if (name != key) continue;
    if (found) {
      duplicate = true;
      return found;
    }
    found = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
  }
  return found;
}

/// An unsigned decimal in [low, high] (digits only, no sign, no spaces).
std::optional<std::uint64_t> parse_bounded(std::string_view text,
                                           std::uint64_t low,
                                           std::uint64_t high) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  if (value < low || value > high) return std::nullopt;
  return value;
}

response plain(unsigned status, endpoint e, std::string body, bool close = false) {
  response r;
  r.status = status;
  r.counted_as = e;
  r.body = std::move(body);
  r.close = close;
  return r;
}

response bad_parameter(endpoint e, std::string_view name, std::uint64_t low, std::uint64_t high) {
  return plain(400,
               e,
               "bad request: " + std::string(name) + " must be an integer in [" +
                   std::to_string(low) + ", " + std::to_string(high) + "]\n");
}

/// The bounded integer parameter `name` of `query`, or the 400 that says why it is not.
std::variant<std::uint64_t, response> bounded_param(endpoint e,
                                                    std::string_view query,
                                                    std::string_view name,
                                                    std::uint64_t low,
                                                    std::uint64_t high) {
  bool duplicate = false;
  const std::optional<std::string_view> text = query_param(query, name, duplicate);
  if (duplicate) return plain(400, e, "bad request: " + std::string(name) + " given twice\n");
  if (!text) {
    return plain(400, e, "bad request: missing query parameter " + std::string(name) + "\n");
  }
  const std::optional<std::uint64_t> value = parse_bounded(*text, low, high);
  if (!value) return bad_parameter(e, name, low, high);
  return *value;
}

// --- rendering ----------------------------------------------------------------------------------

class json_writer {
 public:
  explicit json_writer(std::string& out) : out_(out) {}
  void open(std::string_view key = {}) {
    comma_and_key(key);
    out_ += '{';
    first_ = true;
  }
  void close() {
    out_ += '}';
    first_ = false;
  }
  void open_array(std::string_view key) {
    comma_and_key(key);
    out_ += '[';
    first_ = true;
  }
  void close_array() {
    out_ += ']';
    first_ = false;
  }
  void number(std::string_view key, std::uint64_t v) {
    comma_and_key(key);
    out_ += std::to_string(v);
  }
  void real(std::string_view key, double v) {
    comma_and_key(key);
    char text[32];
    std::snprintf(text, sizeof text, "%.3f", v);
    out_ += text;
  }
  void text(std::string_view key, std::string_view v) {  // v: plain ASCII, no escapes needed
    comma_and_key(key);
    out_ += '"';
    out_ += v;
    out_ += '"';
  }
  void escaped(std::string_view key, std::string_view v) {  // any text: JSON-escaped
    comma_and_key(key);
    out_ += '"';
    for (const char ch : v) {
      const auto c = static_cast<unsigned char>(ch);
      if (ch == '"' || ch == '\\') {
        out_ += '\\';
        out_ += ch;
      } else if (c < 0x20) {
        char esc[8];
        std::snprintf(esc, sizeof esc, "\\u%04x", c);
        out_ += esc;
      } else {
        out_ += ch;
      }
    }
    out_ += '"';
  }

 private:
  void comma_and_key(std::string_view key) {
    if (!first_) out_ += ',';
    first_ = false;
    if (!key.empty()) {
      out_ += '"';
      out_ += key;
      out_ += "\":";
    }
  }
  std::string& out_;
  bool first_ = true;
};

/// "key": {"count": n, "p50": .., "p99": .., "max": ..} in microseconds.
void latency(json_writer& w, std::string_view key, const ferry::histogram_snapshot& h) {
  auto us = [](std::chrono::nanoseconds d) {
    return std::chrono::duration<double, std::micro>(d).count();
  };
  w.open(key);
  w.number("count", h.count);
  w.real("p50", us(h.percentile(0.50)));
  w.real("p99", us(h.percentile(0.99)));
  w.real("max", us(h.max));
  w.close();
}

std::uint64_t load(const std::atomic<std::uint64_t>& a) noexcept {
  return a.load(std::memory_order_relaxed);
}

}  // namespace

// --- names --------------------------------------------------------------------------------------

std::string_view to_string(execution_mode mode) noexcept {
  switch (mode) {
    case execution_mode::offload:
      return "offload";
    case execution_mode::inline_:
      return "inline";
    case execution_mode::thread:
      return "thread";
  }
  return "?";
}

std::string_view to_string(endpoint e) noexcept {
  constexpr std::string_view names[endpoint_count] = {
      "ping", "stats", "metrics", "work", "hash", "blocking", "health", "debug_tasks", "other"};
  const auto i = static_cast<std::size_t>(e);
  return i < endpoint_count ? names[i] : "other";
}

endpoint job::counted_as() const noexcept {
  switch (what) {
    case kind::work:
      return endpoint::work;
    case kind::hash:
      return endpoint::hash;
    case kind::blocking:
      return endpoint::blocking;
  }
  return endpoint::other;
}

// --- counters -----------------------------------------------------------------------------------

namespace {
std::size_t status_index(unsigned status) noexcept {
  const auto* it = std::find(counted_statuses.begin(), counted_statuses.end(), status);
  if (it == counted_statuses.end())
    it = std::find(counted_statuses.begin(), counted_statuses.end(), 500u);
  return static_cast<std::size_t>(it - counted_statuses.begin());
}
}  // namespace

void server_counters::count_response(endpoint e, unsigned status) noexcept {
  const auto i = std::min(static_cast<std::size_t>(e), endpoint_count - 1);
  responses[i][status_index(status)].fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t server_counters::responses_with(unsigned status) const noexcept {
  std::uint64_t sum = 0;
  for (std::size_t e = 0; e < endpoint_count; ++e) {
    sum += responses_with(static_cast<endpoint>(e), status);
  }
  return sum;
}

std::uint64_t server_counters::responses_with(endpoint e, unsigned status) const noexcept {
  const auto* it = std::find(counted_statuses.begin(), counted_statuses.end(), status);
  if (it == counted_statuses.end()) return 0;
  const auto i = std::min(static_cast<std::size_t>(e), endpoint_count - 1);
  return load(responses[i][static_cast<std::size_t>(it - counted_statuses.begin())]);
}

void server_counters::raise_peak(std::atomic<std::uint64_t>& peak, std::uint64_t value) noexcept {
  std::uint64_t seen = peak.load(std::memory_order_relaxed);
  while (seen < value && !peak.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

// --- kernels ------------------------------------------------------------------------------------

std::uint64_t run_work_kernel(std::uint64_t iterations, std::uint64_t seed, std::stop_token stop) {
  std::uint64_t state = seed != 0 ? seed : k1;  // xorshift64 never leaves 0
  while (iterations > 0) {
    if (stop.stop_requested()) throw_aborted();
    const std::uint64_t steps = std::min(iterations, kernel_poll_every);
    state = xorshift_steps(state, steps);
    iterations -= steps;
  }
  return state;
}

double calibrate_work_kernel() {
  using clock = std::chrono::steady_clock;
  constexpr std::uint64_t steps = 1 << 20;
  double best = 0;
  std::uint64_t sink = 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    const auto start = clock::now();
    sink ^= run_work_kernel(steps, k1 + static_cast<std::uint64_t>(attempt), {});
    const double us = std::chrono::duration<double, std::micro>(clock::now() - start).count();
    if (us > 0) best = std::max(best, static_cast<double>(steps) / us);
  }
  volatile std::uint64_t keep = sink;  // the timed loops have an observable result
  (void)keep;
  return best > 0 ? best : 1.0;
}

std::string hash_digest(std::string_view body,
                        std::uint64_t rounds,
                        std::size_t chunked_from,
                        bool parallel,
                        std::stop_token stop) {
  if (body.size() < chunked_from || body.empty()) {
    return hex16(hash_rounds(body, 0, rounds, stop));
  }
  constexpr std::size_t chunk = 64 * 1024;
  const std::size_t chunks = (body.size() + chunk - 1) / chunk;
  std::vector<std::uint64_t> digests(chunks);
  auto hash_chunk = [&](std::size_t i) {
    digests[i] = hash_rounds(body.substr(i * chunk, chunk), i, rounds, stop);
  };
  if (parallel) {
    // Runs in the caller's arena: on a cpu_pool worker, idle workers steal chunks.
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, chunks, 1),
                      [&](const tbb::blocked_range<std::size_t>& range) {
                        for (std::size_t i = range.begin(); i != range.end(); ++i) hash_chunk(i);
                      });
  } else {
    for (std::size_t i = 0; i < chunks; ++i) hash_chunk(i);
  }
  const std::string_view all(reinterpret_cast<const char*>(digests.data()),
                             digests.size() * sizeof(std::uint64_t));
  return hex16(hash_once(all, body.size()));
}

// --- the handler --------------------------------------------------------------------------------

http_handler::http_handler(handler_config config, server_counters& counters, ferry::runtime* rt)
    : config_(config),
      counters_(counters),
      runtime_(rt),
      iterations_per_us_(config.iterations_per_us > 0 ? config.iterations_per_us
                                                      : calibrate_work_kernel()),
      started_(std::chrono::steady_clock::now()) {}

std::variant<response, job> http_handler::route(request& req) const {
  const std::string_view target = req.target;
  if (target.empty() || target.front() != '/') {
    return plain(400, endpoint::other, "bad request: the target must start with '/'\n", true);
  }
  const std::size_t q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const std::string_view query =
      q == std::string_view::npos ? std::string_view() : target.substr(q + 1);

  struct route_entry {
    std::string_view path;
    endpoint e;
    std::string_view method;
  };
  static constexpr route_entry routes[] = {
      {"/ping", endpoint::ping, "GET"},
      {"/stats", endpoint::stats, "GET"},
      {"/metrics", endpoint::metrics, "GET"},
      {"/work", endpoint::work, "GET"},
      {"/hash", endpoint::hash, "POST"},
      {"/blocking", endpoint::blocking, "GET"},
      {"/health", endpoint::health, "GET"},
      {"/debug/tasks", endpoint::debug_tasks, "GET"},
  };
  const auto* found = std::find_if(std::begin(routes),
                                   std::end(routes),
                                   [path](const route_entry& r) { return r.path == path; });
  if (found == std::end(routes)) {
    return plain(404, endpoint::other, "not found: " + std::string(path) + "\n");
  }
  if (req.method != found->method) {
    response r = plain(
        405,
        found->e,
        "method not allowed: " + std::string(path) + " takes " + std::string(found->method) + "\n");
    r.allow = found->method;
    return r;
  }

  switch (found->e) {
    case endpoint::ping:
      return plain(200, endpoint::ping, "pong");
    case endpoint::stats: {
      response r = plain(200, endpoint::stats, stats_json());
      r.content_type = "application/json";
      return r;
    }
    case endpoint::metrics: {
      response r = plain(200, endpoint::metrics, metrics_text());
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      return r;
    }
    case endpoint::work: {
      auto us = bounded_param(endpoint::work, query, "us", 1, config_.max_work_us);
      if (auto* error = std::get_if<response>(&us)) return std::move(*error);
      return job{job::kind::work, std::get<std::uint64_t>(us), {}};
    }
    case endpoint::hash: {
      auto rounds = bounded_param(endpoint::hash, query, "rounds", 1, config_.max_hash_rounds);
      if (auto* error = std::get_if<response>(&rounds)) return std::move(*error);
      return job{job::kind::hash, std::get<std::uint64_t>(rounds), std::move(req.body)};
    }
    case endpoint::blocking: {
      auto ms = bounded_param(endpoint::blocking, query, "ms", 0, config_.max_blocking_ms);
      if (auto* error = std::get_if<response>(&ms)) return std::move(*error);
      return job{job::kind::blocking, std::get<std::uint64_t>(ms), {}};
    }
    case endpoint::health:
      return counters_.draining.load(std::memory_order_relaxed)
                 ? plain(503, endpoint::health, "draining\n")
                 : plain(200, endpoint::health, "serving\n");
    case endpoint::debug_tasks:
      // What every task of the server is doing: the connections (children of the server's
      // task_group), where each was spawned, and which of ferry's operations each awaits.
      return plain(200,
                   endpoint::debug_tasks,
                   runtime_ != nullptr ? runtime_->dump_tasks() : "no runtime\n");
    case endpoint::other:
      break;
  }
  return plain(404, endpoint::other, "not found\n");
}

response http_handler::run(const job& j, std::stop_token stop, bool parallel) const {
  switch (j.what) {
    case job::kind::work: {
      const double iterations = static_cast<double>(j.amount) * iterations_per_us_;
      const std::uint64_t sum =
          run_work_kernel(static_cast<std::uint64_t>(std::max(1.0, iterations)), j.amount, stop);
      return plain(200, endpoint::work, hex16(sum) + "\n");
    }
    case job::kind::hash:
      return plain(
          200,
          endpoint::hash,
          hash_digest(j.body, j.amount, config_.parallel_hash_threshold, parallel, stop) + "\n");
    case job::kind::blocking: {
      // A blocking call, as a legacy synchronous library makes one: std::this_thread::sleep_for,
      // in slices of at most 5 ms so that a stop request (client gone, shutdown deadline) ends
      // it early.
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(j.amount);
      for (auto now = std::chrono::steady_clock::now(); now < until;
           now = std::chrono::steady_clock::now()) {
        if (stop.stop_requested()) throw_aborted();
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
            until - now, std::chrono::milliseconds(5)));
      }
      return plain(200, endpoint::blocking, "slept " + std::to_string(j.amount) + " ms\n");
    }
  }
  return plain(500, endpoint::other, "internal error: unknown job\n", true);
}

response http_handler::overloaded(endpoint e) {
  response r = plain(503, e, "overloaded: too many offloads in flight, retry later\n");
  r.retry_after = true;
  return r;
}

response http_handler::internal_error(std::string_view what) {
  return plain(500, endpoint::other, "internal error: " + std::string(what) + "\n", true);
}

response http_handler::read_error(unsigned status, std::string_view why) {
  return plain(status, endpoint::other, std::string(why) + "\n", true);
}

std::string http_handler::stats_json() const {
  std::string out;
  out.reserve(1024);
  json_writer w(out);
  w.open();
  w.open("server");
  w.text("mode", to_string(config_.mode));
  w.text("state", counters_.draining.load(std::memory_order_relaxed) ? "draining" : "serving");
  w.real("uptime_s",
         std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
  w.real("work_iterations_per_us", iterations_per_us_);
  w.open("connections");
  w.number("open", load(counters_.connections_open));
  w.number("peak", load(counters_.connections_peak));
  w.number("accepted", load(counters_.connections_accepted));
  w.number("refused", load(counters_.connections_refused));
  w.close();
  w.open("requests");
  w.number("in_flight", load(counters_.requests_in_flight));
  w.number("cancelled", load(counters_.requests_cancelled));
  w.number("truncated", load(counters_.requests_truncated));
  w.number("read_timeouts", load(counters_.read_timeouts));
  w.number("idle_timeouts", load(counters_.idle_timeouts));
  w.number("write_timeouts", load(counters_.write_timeouts));
  w.open("responses");
  for (std::size_t e = 0; e < endpoint_count; ++e) {
    w.open(to_string(static_cast<endpoint>(e)));
    for (std::size_t s = 0; s < counted_statuses.size(); ++s) {
      const std::uint64_t n = load(counters_.responses[e][s]);
      if (n != 0) w.number(std::to_string(counted_statuses[s]), n);
    }
    w.close();
  }
  w.close();
  w.close();
  w.open("offloads");
  w.number("limit", config_.max_offloads);
  w.number("in_flight", load(counters_.offloads_in_flight));
  w.number("peak", load(counters_.offloads_peak));
  w.number("rejected", load(counters_.offloads_rejected));
  w.close();
  w.open("bytes");
  w.number("read", load(counters_.bytes_read));
  w.number("written", load(counters_.bytes_written));
  w.close();
  w.close();
  if (runtime_ != nullptr) {
    const ferry::runtime_stats s = runtime_->stats();
    w.open("runtime");
    w.number("io_threads", s.io_threads);
    w.open("cpu");
    w.number("threads", s.cpu.threads);
    w.number("submitted", s.cpu.submitted);
    w.number("completed", s.cpu.completed);
    w.number("in_flight", s.cpu.in_flight);
    w.number("waiting", s.cpu.waiting);
    w.number("handed_off", s.cpu.handed_off);
    w.close();
    w.open("blocking");
    w.number("threads", s.blocking.threads);
    w.number("idle_threads", s.blocking.idle_threads);
    w.number("queued", s.blocking.queued);
    w.number("peak_threads", s.blocking.peak_threads);
    w.number("completed", s.blocking.completed);
    w.close();
    w.open("offloads");
    w.number("submitted", s.offloads.submitted);
    w.number("ran", s.offloads.ran);
    w.number("failed", s.offloads.failed);
    w.number("skipped", s.offloads.skipped);
    w.number("in_flight", s.offloads.in_flight);
    latency(w, "queue_wait_us", s.offloads.queue_wait);
    latency(w, "run_time_us", s.offloads.run_time);
    w.close();
    w.open("loop");
    latency(w, "lag_us", s.loop.lag);
    w.number("slow_callbacks", s.loop.slow_callbacks);
    w.real("longest_stall_ms",
           std::chrono::duration<double, std::milli>(s.loop.longest_stall).count());
    // The last stalls the watchdog reported (--slow-callback-ms), with the blocked stack.
    w.open_array("recent_stalls");
    for (const ferry::slow_callback_report& r : runtime_->recent_slow_callbacks()) {
      w.open();
      w.real("blocked_for_ms", std::chrono::duration<double, std::milli>(r.blocked_for).count());
      std::ostringstream thread;
      thread << r.thread;
      w.text("thread", thread.str());
      w.escaped("where", r.where);
      w.close();
    }
    w.close_array();
    w.close();
    w.close();
  }
  w.close();
  out += '\n';
  return out;
}

std::string http_handler::metrics_text() const {
  std::string out;
  out.reserve(4096);
  ferry::write_prometheus_family(out,
                                 "ferry_server_requests_total",
                                 "counter",
                                 "Requests answered, by endpoint and response status.");
  for (std::size_t e = 0; e < endpoint_count; ++e) {
    for (std::size_t s = 0; s < counted_statuses.size(); ++s) {
      const std::uint64_t n = load(counters_.responses[e][s]);
      if (n == 0) continue;
      out += "ferry_server_requests_total{endpoint=\"";
      out += to_string(static_cast<endpoint>(e));
      out += "\",status=\"";
      out += std::to_string(counted_statuses[s]);
      out += "\"} ";
      out += std::to_string(n);
      out += '\n';
    }
  }
  const server_counters& c = counters_;
  ferry::write_prometheus_metric(out,
                                 "ferry_server_connections_open",
                                 "gauge",
                                 "Connections open now.",
                                 load(c.connections_open));
  ferry::write_prometheus_metric(out,
                                 "ferry_server_connections_accepted_total",
                                 "counter",
                                 "Connections accepted.",
                                 load(c.connections_accepted));
  ferry::write_prometheus_metric(out,
                                 "ferry_server_connections_refused_total",
                                 "counter",
                                 "Connections closed at once: --max-connections were open.",
                                 load(c.connections_refused));
  ferry::write_prometheus_metric(out,
                                 "ferry_server_requests_in_flight",
                                 "gauge",
                                 "Requests read and not answered yet.",
                                 load(c.requests_in_flight));
  ferry::write_prometheus_metric(
      out,
      "ferry_server_requests_cancelled_total",
      "counter",
      "Requests abandoned before their response: client gone, or shutdown.",
      load(c.requests_cancelled));
  ferry::write_prometheus_metric(out,
                                 "ferry_server_requests_truncated_total",
                                 "counter",
                                 "Connections closed by the client in the middle of a request.",
                                 load(c.requests_truncated));
  ferry::write_prometheus_metric(
      out,
      "ferry_server_read_timeouts_total",
      "counter",
      "Connections closed because a request did not arrive within the read timeout.",
      load(c.read_timeouts));
  ferry::write_prometheus_metric(out,
                                 "ferry_server_idle_timeouts_total",
                                 "counter",
                                 "Keep-alive connections closed after the idle timeout.",
                                 load(c.idle_timeouts));
  ferry::write_prometheus_metric(
      out,
      "ferry_server_write_timeouts_total",
      "counter",
      "Connections closed because a write of a response made no progress within the write "
      "timeout.",
      load(c.write_timeouts));
  ferry::write_prometheus_metric(out,
                                 "ferry_server_draining",
                                 "gauge",
                                 "1 once the shutdown has begun (GET /health answers 503).",
                                 c.draining.load(std::memory_order_relaxed) ? 1 : 0);
  ferry::write_prometheus_metric(out,
                                 "ferry_server_offloads_in_flight",
                                 "gauge",
                                 "Heavy requests offloaded and not finished.",
                                 load(c.offloads_in_flight));
  ferry::write_prometheus_metric(out,
                                 "ferry_server_offloads_rejected_total",
                                 "counter",
                                 "Heavy requests answered 503: the offload bound was full.",
                                 load(c.offloads_rejected));
  ferry::write_prometheus_metric(
      out, "ferry_server_bytes_read_total", "counter", "Request bytes parsed.", load(c.bytes_read));
  ferry::write_prometheus_metric(out,
                                 "ferry_server_bytes_written_total",
                                 "counter",
                                 "Response bytes written.",
                                 load(c.bytes_written));
  if (runtime_ != nullptr) ferry::write_prometheus(out, runtime_->stats());
  return out;
}

}  // namespace ferry_server
