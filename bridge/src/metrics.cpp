// ferry/bridge/src/metrics.cpp — a runtime's counters in the Prometheus text format.
#include "ferry/bridge/metrics.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string_view>
#include <variant>

namespace ferry {
namespace {

void number(std::string& out, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  out += buf;
}

void number(std::string& out, std::uint64_t v) { out += std::to_string(v); }

void scalar(std::string& out, const char* name, const char* type, const char* help, double v) {
  write_prometheus_family(out, name, type, help);
  out += name;
  out += ' ';
  number(out, v);
  out += '\n';
}

double seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

void histogram(std::string& out, const char* name, const char* help, const histogram_snapshot& h) {
  write_prometheus_family(out, name, "histogram", help);
  for (const auto& [bound, count] : h.buckets) {
    out += name;
    out += "_bucket{le=\"";
    if (bound == std::chrono::nanoseconds::max()) {
      out += "+Inf";
    } else {
      number(out, seconds(bound));
    }
    out += "\"} ";
    number(out, count);
    out += '\n';
  }
  out += name;
  out += "_sum ";
  number(out, seconds(h.sum));
  out += '\n';
  out += name;
  out += "_count ";
  number(out, h.count);
  out += '\n';
}

// One metric family of the exposition: a counter or gauge (a count, or seconds) or a histogram.
struct family {
  const char* name;
  const char* type;
  const char* help;
  std::variant<std::uint64_t, double, const histogram_snapshot*> value;
};

void write_family(std::string& out, const family& f) {
  if (const auto* h = std::get_if<const histogram_snapshot*>(&f.value)) {
    histogram(out, f.name, f.help, **h);
  } else if (const auto* v = std::get_if<double>(&f.value)) {
    scalar(out, f.name, f.type, f.help, *v);
  } else {
    write_prometheus_metric(out, f.name, f.type, f.help, std::get<std::uint64_t>(f.value));
  }
}

}  // namespace

void write_prometheus_family(std::string& out,
                             std::string_view name,
                             std::string_view type,
                             std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void write_prometheus_metric(std::string& out,
                             std::string_view name,
                             std::string_view type,
                             std::string_view help,
                             std::uint64_t value) {
  write_prometheus_family(out, name, type, help);
  out += name;
  out += ' ';
  number(out, value);
  out += '\n';
}

void write_prometheus(std::string& out, const runtime_stats& s) {
  const family families[] = {
      {"ferry_io_threads",
       "gauge",
       "Threads running the event loop.",
       static_cast<std::uint64_t>(s.io_threads)},
      {"ferry_cpu_threads",
       "gauge",
       "Workers of the work-stealing cpu_pool.",
       static_cast<std::uint64_t>(s.cpu.threads)},
      {"ferry_offloads_submitted_total", "counter", "Offloads started.", s.offloads.submitted},
      {"ferry_offloads_ran_total",
       "counter",
       "Offloads whose function ran (returned or threw).",
       s.offloads.ran},
      {"ferry_offloads_failed_total",
       "counter",
       "Offloads whose function threw.",
       s.offloads.failed},
      {"ferry_offloads_skipped_total",
       "counter",
       "Offloads whose function never ran (cancelled before it started).",
       s.offloads.skipped},
      {"ferry_offloads_in_flight",
       "gauge",
       "Offloads started and not yet done.",
       static_cast<std::uint64_t>(s.offloads.in_flight)},
      {"ferry_offloads_waiting_for_admission",
       "gauge",
       "Offloads waiting for an admission slot.",
       static_cast<std::uint64_t>(s.cpu.waiting)},
      {"ferry_offloads_admitted_total",
       "counter",
       "Offloads given an admission slot.",
       s.cpu.admitted},
      {"ferry_offloads_rejected_total",
       "counter",
       "Offloads refused because every admission slot was taken (try_offload, reject_when_full).",
       s.cpu.rejected},
      {"ferry_offload_admission_limit",
       "gauge",
       "Offloads the cpu_pool admits at once now (0 = unbounded; adaptive: it moves).",
       static_cast<std::uint64_t>(s.cpu.max_in_flight)},
      {"ferry_offload_queue_delay_seconds",
       "gauge",
       "The queueing delay the adaptive admission limit last acted on.",
       seconds(s.cpu.queue_delay)},
      {"ferry_offloads_handed_off_total",
       "counter",
       "Jobs handed straight to a spinning worker.",
       s.cpu.handed_off},
      {"ferry_offload_queue_wait_seconds",
       "histogram",
       "From the start of an offload to its function starting.",
       &s.offloads.queue_wait},
      {"ferry_offload_run_seconds",
       "histogram",
       "An offloaded function running, plus handing its result back.",
       &s.offloads.run_time},
      {"ferry_blocking_threads",
       "gauge",
       "Threads of the blocking pool.",
       static_cast<std::uint64_t>(s.blocking.threads)},
      {"ferry_blocking_idle_threads",
       "gauge",
       "Blocking-pool threads waiting for work.",
       static_cast<std::uint64_t>(s.blocking.idle_threads)},
      {"ferry_blocking_queued",
       "gauge",
       "Blocking calls waiting for a thread.",
       static_cast<std::uint64_t>(s.blocking.queued)},
      {"ferry_blocking_completed_total",
       "counter",
       "Blocking calls that are done (their job has returned).",
       s.blocking.completed},
      {"ferry_loop_lag_seconds",
       "histogram",
       "How late the loop's lag probe timer fired.",
       &s.loop.lag},
      {"ferry_loop_slow_callbacks_total",
       "counter",
       "Times the loop did not come back within slow_callback_threshold.",
       s.loop.slow_callbacks},
      {"ferry_loop_longest_stall_seconds",
       "gauge",
       "The longest reported stall of the loop, once over.",
       seconds(s.loop.longest_stall)},
      {"ferry_loop_inbox_completions_total",
       "counter",
       "Offloads completed through the inbox lane, delivered on the loop.",
       s.loop.inbox_completions},
      {"ferry_loop_inbox_batches_total",
       "counter",
       "Batches the loop took the inbox lane's completions in (one wake-up or pass each).",
       s.loop.inbox_batches},
      {"ferry_loop_batch_windows_total",
       "counter",
       "Batch windows opened while the pool was saturated (completion_batch_window).",
       s.loop.batch_windows},
  };
  for (const family& f : families) write_family(out, f);
}

}  // namespace ferry
