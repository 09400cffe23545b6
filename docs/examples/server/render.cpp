// docs/examples/server/render.cpp — what the server writes that is not a kernel's result: the
// /stats JSON, the /metrics Prometheus text (both from the one definition of the counters,
// FERRY_SERVER_COUNTERS in http_handler.hpp) and the plain-text error responses.
#include "render.hpp"

#include <chrono>
#include <cstdio>
#include <ferry/bridge/metrics.hpp>
#include <ferry/bridge/runtime.hpp>
#include <ferry/core/histogram.hpp>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace ferry_server {
namespace {

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
  // (key, count) rows, in order: one object's counters from a stats struct.
  void numbers(std::initializer_list<std::pair<std::string_view, std::uint64_t>> rows) {
    for (const auto& [key, v] : rows) number(key, v);
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

/// "responses": {"<endpoint>": {"<status>": n, ...}, ...}, the statuses that were sent.
void responses_by_endpoint(json_writer& w, const server_counters& c) {
  w.open("responses");
  for (std::size_t e = 0; e < endpoint_count; ++e) {
    w.open(to_string(static_cast<endpoint>(e)));
    for (std::size_t s = 0; s < counted_statuses.size(); ++s) {
      const std::uint64_t n = c.responses[e][s].load(std::memory_order_relaxed);
      if (n != 0) w.number(std::to_string(counted_statuses[s]), n);
    }
    w.close();
  }
  w.close();
}

}  // namespace

response plain(unsigned status, endpoint e, std::string body, bool close) {
  response r;
  r.status = status;
  r.counted_as = e;
  r.body = std::move(body);
  r.close = close;
  return r;
}

response http_handler::overloaded(endpoint e) {
  response r = plain(503, e, "overloaded: too many offloads in flight, retry later\n");
  r.retry_after = true;
  return r;
}

response http_handler::blocking_overloaded() {
  response r = plain(
      503, endpoint::blocking, "overloaded: too many /blocking requests in flight, retry later\n");
  r.retry_after = true;
  return r;
}

response http_handler::deadline_passed(endpoint e, std::chrono::milliseconds timeout) {
  return plain(504,
               e,
               "timed out: the request's deadline (" + std::to_string(timeout.count()) +
                   " ms) passed before its work was done\n");
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
  // The counters, from their one definition (FERRY_SERVER_COUNTERS), a group per object.
  std::string_view group;
  const auto close_group = [&] {
    if (group == "requests") responses_by_endpoint(w, counters_);
    if (!group.empty()) w.close();
  };
  counters_.for_each_counter([&](const counter_row& row) {
    if (row.group != group) {
      close_group();
      group = row.group;
      w.open(group);
      if (group == "offloads") {
        // The admission of the runtime's pool: fixed (--max-offloads), or adaptive, whose limit
        // moves with the queueing delay (runtime.cpu has the delay it acts on).
        w.text("admission", config_.max_offloads > 0 ? "fixed" : "adaptive");
        w.number("limit",
                 runtime_ != nullptr ? runtime_->cpu().max_in_flight() : config_.max_offloads);
      }
    }
    w.number(row.key, row.value);
  });
  close_group();
  w.close();
  if (runtime_ != nullptr) {
    const ferry::runtime_stats s = runtime_->stats();
    w.open("runtime");
    w.number("io_threads", s.io_threads);
    w.open("cpu");
    w.numbers({{"threads", s.cpu.threads},
               {"submitted", s.cpu.submitted},
               {"completed", s.cpu.completed},
               {"in_flight", s.cpu.in_flight},
               {"waiting", s.cpu.waiting},
               {"handed_off", s.cpu.handed_off},
               {"max_in_flight", s.cpu.max_in_flight},
               {"admitted", s.cpu.admitted},
               {"rejected", s.cpu.rejected}});
    w.real("queue_delay_us", std::chrono::duration<double, std::micro>(s.cpu.queue_delay).count());
    w.close();
    w.open("blocking");
    w.numbers({{"threads", s.blocking.threads},
               {"idle_threads", s.blocking.idle_threads},
               {"queued", s.blocking.queued},
               {"peak_threads", s.blocking.peak_threads},
               {"completed", s.blocking.completed}});
    w.close();
    w.open("offloads");
    w.numbers({{"submitted", s.offloads.submitted},
               {"ran", s.offloads.ran},
               {"failed", s.offloads.failed},
               {"skipped", s.offloads.skipped},
               {"in_flight", s.offloads.in_flight}});
    latency(w, "queue_wait_us", s.offloads.queue_wait);
    latency(w, "run_time_us", s.offloads.run_time);
    w.close();
    w.open("loop");
    latency(w, "lag_us", s.loop.lag);
    w.number("slow_callbacks", s.loop.slow_callbacks);
    w.number("inbox_completions", s.loop.inbox_completions);
    w.number("inbox_batches", s.loop.inbox_batches);
    w.number("batch_windows", s.loop.batch_windows);
    w.real("longest_stall_ms",
           std::chrono::duration<double, std::milli>(s.loop.longest_stall).count());
    // The last stalls the watchdog reported (--slow-callback-ms), with the blocked stack.
    w.open_array("recent_stalls");
    for (const ferry::slow_callback_report& r : runtime_->recent_slow_callbacks()) {
      w.open();
      w.real("blocked_for_ms", std::chrono::duration<double, std::milli>(r.blocked_for).count());
      // The stack as function+offset and file:line, never an address (nor the thread's id,
      // which is one): enough to find the culprit, nothing about the process's layout.
      w.escaped("where", scrub_addresses(r.where));
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

std::string scrub_addresses(std::string_view text) {
  auto is_hex = [](char ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
  };
  // Where a path or an address may start: the start of a line or after a separator.
  auto starts_token = [&](std::size_t i) {
    if (i == 0) return true;
    const char before = text[i - 1];
    return before == ' ' || before == '(' || before == '\n' || before == '\t' || before == '"' ||
           before == '[' || before == '=' || before == ',';
  };
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const char ch = text[i];
    if (ch == '0' && i + 2 < text.size() && (text[i + 1] == 'x' || text[i + 1] == 'X') &&
        is_hex(text[i + 2]) && (i == 0 || text[i - 1] != '+')) {
      // A raw address (an offset after '+' is kept: it says nothing of where things are).
      std::size_t end = i + 2;
      while (end < text.size() && is_hex(text[end])) ++end;
      out += "<addr>";
      i = end;
      continue;
    }
    if (ch == '/' && starts_token(i)) {
      // An absolute path with a directory: its file name only (a build directory, a library's
      // location).
      std::size_t end = i;
      while (end < text.size() && text[end] != ' ' && text[end] != ')' && text[end] != '\n' &&
             text[end] != '\t' && text[end] != '"' && text[end] != ']') {
        ++end;
      }
      const std::string_view path = text.substr(i, end - i);
      if (path.rfind('/') != 0) {  // a directory in it: "/ping" stays as it is
        out += path.substr(path.rfind('/') + 1);
        i = end;
        continue;
      }
    }
    out += ch;
    ++i;
  }
  return out;
}

std::string http_handler::tasks_text() const {
  if (runtime_ == nullptr) return "no runtime\n";
  std::string text = scrub_addresses(runtime_->dump_tasks());
  if (text.size() > max_task_dump) {
    const std::size_t cut = text.rfind('\n', max_task_dump);
    const std::size_t total = text.size();
    text.resize(cut == std::string::npos ? max_task_dump : cut + 1);
    text +=
        "... cut at " + std::to_string(text.size()) + " of " + std::to_string(total) + " bytes\n";
  }
  return text;
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
      const std::uint64_t n = counters_.responses[e][s].load(std::memory_order_relaxed);
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
  // The counters, from their one definition (FERRY_SERVER_COUNTERS); peaks are /stats only.
  std::string name;
  counters_.for_each_counter([&](const counter_row& row) {
    if (row.kind == counter_kind::peak) return;
    const bool counter = row.kind == counter_kind::counter;
    name = "ferry_server_";
    name += row.member;
    if (counter) name += "_total";
    ferry::write_prometheus_metric(out, name, counter ? "counter" : "gauge", row.help, row.value);
  });
  ferry::write_prometheus_metric(out,
                                 "ferry_server_draining",
                                 "gauge",
                                 "1 once the shutdown has begun (GET /health answers 503).",
                                 counters_.draining.load(std::memory_order_relaxed) ? 1 : 0);
  if (runtime_ != nullptr) ferry::write_prometheus(out, runtime_->stats());
  return out;
}

}  // namespace ferry_server
