// bench/loadgen/overload.hpp — the pure parts of ferry_loadgen's overload accounting (W6):
// rate schedules, the deadline verdict of a request, and the recovery time after a schedule's
// peak. No I/O and no clock: tests/loadgen/overload_test.cpp checks them without a network.
//
//   auto s = ferry::loadgen::parse_schedule("100@5,1000@10,100@10");  // s.segments, s.error
//   verdict v = classify(status, elapsed, deadline);
//   recovery r = compute_recovery(samples, s.segments, 250ms);
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::loadgen {

/// One segment of a rate schedule: `rate` requests per second for `seconds` seconds.
struct segment {
  double rate = 0;
  double seconds = 0;
};

struct parsed_schedule {
  std::vector<segment> segments;  ///< empty when `error` is set
  std::string error;              ///< empty on success
};

/// Parses "R1@S1,R2@S2,...": each R a number in [0, 1e7] (requests per second), each S a number
/// in (0, 86400] (seconds); spaces around items and numbers are ignored; at least one segment,
/// at least one rate above 0. Anything else sets `error` (a sentence naming the faulty item).
parsed_schedule parse_schedule(std::string_view spec);

/// The number of requests a segment sends: request i is due at i / rate from its start while
/// i / rate < seconds, i.e. ceil(rate * seconds) (0 for rate 0), robust to rounding (a product
/// within 1e-9 of a whole number counts as that number).
std::uint64_t segment_requests(const segment& s);

/// The total length of a schedule in seconds.
double schedule_seconds(const std::vector<segment>& segments);

/// Seconds as whole nanoseconds (rounded to the nearest): how a schedule's segment boundaries
/// and its requests' offsets are placed, by the load generator and by compute_recovery alike.
std::uint64_t to_ns(double seconds);

/// The nominal offset from the schedule's start of request `i` of a segment that starts
/// `start_s` seconds into the schedule: to_ns(start_s) + i / rate rounded to the nanosecond (so
/// request 0 is exactly on the segment's boundary). `rate` > 0.
std::uint64_t request_offset_ns(double start_s, double rate, std::uint64_t i);

/// The segment whose end the recovery is measured from: the last one with the highest rate.
std::size_t peak_segment(const std::vector<segment>& segments);

/// How a request ended, for goodput.
enum class verdict {
  good,      ///< a 2xx response completed before the deadline
  rejected,  ///< a non-2xx response (503, 504, ...) completed before the deadline
  deadline,  ///< the deadline passed before the response was complete (whatever came after)
  failed,    ///< no response (connect, timeout, io) before the deadline
};

const char* to_string(verdict v) noexcept;

/// `status`: the status of the complete response, nullopt without one. `elapsed`: from the
/// intended send time to the complete response (or to the failure). `deadline` 0 = none. A
/// response counts within the deadline when elapsed < deadline.
verdict classify(std::optional<unsigned> status,
                 std::chrono::nanoseconds elapsed,
                 std::chrono::nanoseconds deadline) noexcept;

/// An open-loop request still unsent at `now` is dropped when its deadline has passed
/// (now >= intended + deadline); never with deadline 0.
bool expired(std::chrono::nanoseconds intended,
             std::chrono::nanoseconds now,
             std::chrono::nanoseconds deadline) noexcept;

/// The exact p99 (nearest rank: the smallest value with at least 99% of the values at or below
/// it) of `values`; nullopt when empty.
std::optional<std::uint64_t> p99(std::vector<std::uint64_t> values);

/// A successful request: its intended send time from the schedule's start, and its latency.
struct sample {
  std::uint64_t offset_ns = 0;
  std::uint64_t latency_ns = 0;
};

struct recovery {
  std::size_t peak = 0;                       ///< peak_segment(segments)
  std::optional<std::uint64_t> baseline_p99;  ///< p99 of the first segment's successes (ns)
  std::optional<double> seconds;  ///< from the peak's end to the first window back; nullopt: not
  std::size_t windows = 0;        ///< windows from the peak's end to the schedule's end
};

/// The recovery after a schedule's peak: the windows of `window` length from the end of the peak
/// segment to the end of the schedule are taken in order (the last may be shorter); `seconds` is
/// the start of the first one (from the peak's end, so 0 when the first window is already back)
/// that holds successes and whose p99 is at most twice the first segment's p99. Samples are
/// placed by intended send time. Not recovered (nullopt) when no window qualifies, when the
/// first segment has no success, or when the peak is the last segment.
recovery compute_recovery(const std::vector<sample>& samples,
                          const std::vector<segment>& segments,
                          std::chrono::nanoseconds window);

}  // namespace ferry::loadgen
