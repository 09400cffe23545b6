// ferry/bridge/metrics.hpp — a runtime's counters in the Prometheus text format.
//
//   std::string body;
//   ferry::write_prometheus(body, rt.stats());   // serve as text/plain; version=0.0.4
//
// Appends one family per counter, gauge and histogram, all named `ferry_*`, each with its
// `# HELP` and `# TYPE` lines; durations are in seconds, as Prometheus expects. Histogram
// buckets are histogram_snapshot::buckets (1 µs .. 10 s, then +Inf).
//
// Thread safety: a free function of its arguments.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ferry/bridge/runtime.hpp"

namespace ferry {

/// Appends `stats` to `out` in the Prometheus text exposition format (version 0.0.4).
void write_prometheus(std::string& out, const runtime_stats& stats);

/// Appends a metric family's `# HELP` and `# TYPE` lines, for a program's own families served
/// beside the runtime's (samples with labels follow, written by the caller).
void write_prometheus_family(std::string& out,
                             std::string_view name,
                             std::string_view type,
                             std::string_view help);

/// Appends a family with one unlabelled sample.
void write_prometheus_metric(std::string& out,
                             std::string_view name,
                             std::string_view type,
                             std::string_view help,
                             std::uint64_t value);

}  // namespace ferry
