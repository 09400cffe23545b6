// ferry/bridge/src/metrics.cpp — a runtime's counters in the Prometheus text format.
#include "ferry/bridge/metrics.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string_view>

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

void scalar(
    std::string& out, const char* name, const char* type, const char* help, std::uint64_t v) {
  write_prometheus_metric(out, name, type, help, v);
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
  scalar(out,
         "ferry_io_threads",
         "gauge",
         "Threads running the event loop.",
         static_cast<std::uint64_t>(s.io_threads));
  scalar(out,
         "ferry_cpu_threads",
         "gauge",
         "Workers of the work-stealing cpu_pool.",
         static_cast<std::uint64_t>(s.cpu.threads));
  scalar(
      out, "ferry_offloads_submitted_total", "counter", "Offloads started.", s.offloads.submitted);
  scalar(out,
         "ferry_offloads_ran_total",
         "counter",
         "Offloads whose function ran (returned or threw).",
         s.offloads.ran);
  scalar(out,
         "ferry_offloads_failed_total",
         "counter",
         "Offloads whose function threw.",
         s.offloads.failed);
  scalar(out,
         "ferry_offloads_skipped_total",
         "counter",
         "Offloads whose function never ran (cancelled before it started).",
         s.offloads.skipped);
  scalar(out,
         "ferry_offloads_in_flight",
         "gauge",
         "Offloads started and not yet done.",
         static_cast<std::uint64_t>(s.offloads.in_flight));
  scalar(out,
         "ferry_offloads_waiting_for_admission",
         "gauge",
         "Offloads waiting for a slot under max_offloads_in_flight.",
         static_cast<std::uint64_t>(s.cpu.waiting));
  scalar(out,
         "ferry_offloads_rejected_total",
         "counter",
         "try_offload calls refused because every admission slot was taken.",
         s.cpu.rejected);
  scalar(out,
         "ferry_offloads_handed_off_total",
         "counter",
         "Jobs handed straight to a spinning worker.",
         s.cpu.handed_off);
  histogram(out,
            "ferry_offload_queue_wait_seconds",
            "From the start of an offload to its function starting.",
            s.offloads.queue_wait);
  histogram(out,
            "ferry_offload_run_seconds",
            "An offloaded function running, plus handing its result back.",
            s.offloads.run_time);
  scalar(out,
         "ferry_blocking_threads",
         "gauge",
         "Threads of the blocking pool.",
         static_cast<std::uint64_t>(s.blocking.threads));
  scalar(out,
         "ferry_blocking_idle_threads",
         "gauge",
         "Blocking-pool threads waiting for work.",
         static_cast<std::uint64_t>(s.blocking.idle_threads));
  scalar(out,
         "ferry_blocking_queued",
         "gauge",
         "Blocking calls waiting for a thread.",
         static_cast<std::uint64_t>(s.blocking.queued));
  scalar(out,
         "ferry_blocking_completed_total",
         "counter",
         "Blocking calls that are done (their job has returned).",
         s.blocking.completed);
  histogram(
      out, "ferry_loop_lag_seconds", "How late the loop's lag probe timer fired.", s.loop.lag);
  scalar(out,
         "ferry_loop_slow_callbacks_total",
         "counter",
         "Times the loop did not come back within slow_callback_threshold.",
         s.loop.slow_callbacks);
  scalar(out,
         "ferry_loop_longest_stall_seconds",
         "gauge",
         "The longest reported stall of the loop, once over.",
         seconds(s.loop.longest_stall));
}

}  // namespace ferry
