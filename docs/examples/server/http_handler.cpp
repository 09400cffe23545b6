// docs/examples/server/http_handler.cpp — routing (a request becomes a response or a job), the
// jobs, the names and the counters. The kernels are in kernels.cpp, the bodies of /stats,
// /metrics and the error responses in render.cpp.
#include "http_handler.hpp"

#include <algorithm>
#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>
#include <cctype>
#include <charconv>
#include <chrono>
#include <ferry/bridge/runtime.hpp>
#include <limits>
#include <optional>
#include <string>
#include <thread>

#include "kernels.hpp"
#include "render.hpp"

namespace ferry_server {
namespace {

[[noreturn]] void throw_aborted() {
  throw boost::system::system_error(boost::asio::error::operation_aborted);
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

/// A query parameter's upper bound: the server's limit and the flag that sets it.
struct param_limit {
  std::uint64_t high;
  std::string_view flag;  ///< "--max-work-us"
};

response bad_parameter(endpoint e, std::string_view name, std::uint64_t low, param_limit limit) {
  return plain(400,
               e,
               "bad request: " + std::string(name) + " must be an integer in [" +
                   std::to_string(low) + ", " + std::to_string(limit.high) + "] (the server's " +
                   std::string(limit.flag) + ")\n");
}

/// The bounded integer parameter `name` of `query`, or the 400 that says why it is not: a value
/// over the server's limit is named with the limit and its flag.
std::variant<std::uint64_t, response> bounded_param(endpoint e,
                                                    std::string_view query,
                                                    std::string_view name,
                                                    std::uint64_t low,
                                                    param_limit limit) {
  bool duplicate = false;
  const std::optional<std::string_view> text = query_param(query, name, duplicate);
  if (duplicate) return plain(400, e, "bad request: " + std::string(name) + " given twice\n");
  if (!text) {
    return plain(400, e, "bad request: missing query parameter " + std::string(name) + "\n");
  }
  const std::optional<std::uint64_t> value =
      parse_bounded(*text, low, std::numeric_limits<std::uint64_t>::max());
  if (!value) return bad_parameter(e, name, low, limit);
  if (*value > limit.high) {
    return plain(400,
                 e,
                 "bad request: " + std::string(name) + "=" + std::to_string(*value) +
                     " is over the server's limit of " + std::to_string(limit.high) + " (" +
                     std::string(limit.flag) + ")\n");
  }
  return *value;
}

/// The longest Request-Timeout accepted as written (a larger one is clamped as well, but more
/// digits than this are malformed): 18 digits always fit in 64 bits.
constexpr std::size_t max_request_timeout_digits = 18;

/// The deadline of a request: the server's `limit` (0 = none), shortened by its Request-Timeout
/// (integer milliseconds, at least 1; one field at most); or the 400 that says what is wrong.
std::variant<std::chrono::milliseconds, response> request_deadline(
    endpoint e, const request& req, std::chrono::milliseconds limit) {
  if (req.request_timeouts.empty()) return limit;
  if (req.request_timeouts.size() > 1) {
    return plain(400, e, "bad request: Request-Timeout given more than once\n");
  }
  const std::optional<std::uint64_t> ms =
      req.request_timeouts.front().size() > max_request_timeout_digits
          ? std::nullopt
          : parse_bounded(
                req.request_timeouts.front(), 1, std::numeric_limits<std::uint64_t>::max());
  if (!ms) {
    return plain(400,
                 e,
                 "bad request: Request-Timeout must be an integer number of milliseconds, at "
                 "least 1 and at most " +
                     std::to_string(max_request_timeout_digits) + " digits\n");
  }
  const std::uint64_t cap = limit.count() > 0 ? static_cast<std::uint64_t>(limit.count())
                                              : std::numeric_limits<std::int64_t>::max();
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::min(*ms, cap)));
}

/// `j` with the request's deadline, or the 400 of a bad Request-Timeout.
std::variant<response, job> with_deadline(job j,
                                          const request& req,
                                          std::chrono::milliseconds limit) {
  auto deadline = request_deadline(j.counted_as(), req, limit);
  if (auto* error = std::get_if<response>(&deadline)) return std::move(*error);
  j.timeout = std::get<std::chrono::milliseconds>(deadline);
  return j;
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
    case kind::tasks:
      return endpoint::debug_tasks;
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

// --- the handler --------------------------------------------------------------------------------

http_handler::http_handler(handler_config config, server_counters& counters, ferry::runtime* rt)
    : config_(config),
      counters_(counters),
      runtime_(rt),
      iterations_per_us_(config.iterations_per_us > 0 ? config.iterations_per_us
                                                      : calibrate_work_kernel()),
      started_(std::chrono::steady_clock::now()) {}

namespace {

/// The methods of RFC 9110 (and PATCH, RFC 5789): any other is answered 501. CONNECT is among
/// them but this server does not tunnel: 501 as well.
bool known_method(std::string_view method) {
  static constexpr std::string_view known[] = {
      "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"};
  return std::find(std::begin(known), std::end(known), method) != std::end(known);
}

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> origin_form(std::string_view target) {
  if (!target.empty() && target.front() == '/') return std::string(target);
  // absolute-form (RFC 9112 §3.2.2): a server must accept it; the path is what is routed.
  std::size_t scheme = 0;
  if (starts_with_nocase(target, "http://")) {
    scheme = 7;
  } else if (starts_with_nocase(target, "https://")) {
    scheme = 8;
  } else {
    return std::nullopt;
  }
  const std::size_t path = target.find_first_of("/?", scheme);
  if (path == scheme) return std::nullopt;                      // no authority
  if (path == std::string_view::npos) return std::string("/");  // an empty path is "/"
  if (target[path] == '?') return "/" + std::string(target.substr(path));
  return std::string(target.substr(path));
}

std::variant<response, job> http_handler::route(request& req) const {
  if (!known_method(req.method)) {
    return plain(501, endpoint::other, "not implemented: the method " + req.method + "\n");
  }
  if (req.target == "*") {
    // asterisk-form: the server as a whole, for OPTIONS only.
    if (req.method != "OPTIONS") {
      return plain(400, endpoint::other, "bad request: '*' is a target for OPTIONS only\n", true);
    }
    response r = plain(200, endpoint::other, "");
    r.allow = "GET, HEAD, POST, OPTIONS";
    return r;
  }
  const std::optional<std::string> origin = origin_form(req.target);
  if (!origin) {
    return plain(400,
                 endpoint::other,
                 "bad request: the target must be a path ('/...') or an absolute http URI\n",
                 true);
  }
  const std::string_view target = *origin;
  const std::size_t q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const std::string_view query =
      q == std::string_view::npos ? std::string_view() : target.substr(q + 1);

  struct route_entry {
    std::string_view path;
    endpoint e;
    std::string_view method;
    std::string_view allow;
  };
  static constexpr route_entry routes[] = {
      {"/ping", endpoint::ping, "GET", "GET, HEAD"},
      {"/stats", endpoint::stats, "GET", "GET, HEAD"},
      {"/metrics", endpoint::metrics, "GET", "GET, HEAD"},
      {"/work", endpoint::work, "GET", "GET, HEAD"},
      {"/hash", endpoint::hash, "POST", "POST"},
      {"/blocking", endpoint::blocking, "GET", "GET, HEAD"},
      {"/health", endpoint::health, "GET", "GET, HEAD"},
      {"/debug/tasks", endpoint::debug_tasks, "GET", "GET, HEAD"},
  };
  const auto* found = std::find_if(std::begin(routes),
                                   std::end(routes),
                                   [path](const route_entry& r) { return r.path == path; });
  const bool admin_only =
      found != std::end(routes) && (found->e == endpoint::stats || found->e == endpoint::metrics ||
                                    found->e == endpoint::debug_tasks);
  if (found == std::end(routes) || (admin_only && !req.admin)) {
    return plain(404, endpoint::other, "not found: " + std::string(path) + "\n");
  }
  // HEAD is GET without the body (the connection code leaves the body out).
  const std::string_view method = req.method == "HEAD" ? std::string_view("GET") : req.method;
  if (method != found->method) {
    response r = plain(
        405,
        found->e,
        "method not allowed: " + std::string(path) + " takes " + std::string(found->allow) + "\n");
    r.allow = found->allow;
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
      auto us =
          bounded_param(endpoint::work, query, "us", 1, {config_.max_work_us, "--max-work-us"});
      if (auto* error = std::get_if<response>(&us)) return std::move(*error);
      return with_deadline(
          job{job::kind::work, std::get<std::uint64_t>(us), {}}, req, config_.request_timeout);
    }
    case endpoint::hash: {
      auto rounds = bounded_param(
          endpoint::hash, query, "rounds", 1, {config_.max_hash_rounds, "--max-hash-rounds"});
      if (auto* error = std::get_if<response>(&rounds)) return std::move(*error);
      return with_deadline(
          job{job::kind::hash, std::get<std::uint64_t>(rounds), std::move(req.body)},
          req,
          config_.request_timeout);
    }
    case endpoint::blocking: {
      auto ms = bounded_param(
          endpoint::blocking, query, "ms", 0, {config_.max_blocking_ms, "--max-blocking-ms"});
      if (auto* error = std::get_if<response>(&ms)) return std::move(*error);
      return with_deadline(
          job{job::kind::blocking, std::get<std::uint64_t>(ms), {}}, req, config_.request_timeout);
    }
    case endpoint::health:
      return counters_.draining.load(std::memory_order_relaxed)
                 ? plain(503, endpoint::health, "draining\n")
                 : plain(200, endpoint::health, "serving\n");
    case endpoint::debug_tasks:
      // What every task of the server is doing: the connections (children of the server's
      // task_group), where each was spawned, and which of ferry's operations each awaits. The
      // walk costs in proportion to the tasks: a job, off the loop.
      return job{job::kind::tasks, 0, {}};
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
    case job::kind::tasks: {
      if (dumping_tasks_.exchange(true)) {
        response r =
            plain(503, endpoint::debug_tasks, "busy: a task dump is running, retry later\n");
        r.retry_after = true;
        return r;
      }
      struct done {
        std::atomic<bool>& flag;
        ~done() { flag.store(false); }
      } reset{dumping_tasks_};
      return plain(200, endpoint::debug_tasks, tasks_text());
    }
  }
  return plain(500, endpoint::other, "internal error: unknown job\n", true);
}

}  // namespace ferry_server
