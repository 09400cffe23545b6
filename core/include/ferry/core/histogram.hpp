// ferry/core/histogram.hpp — a latency histogram cheap enough for the offload hot path.
//
//   ferry::latency_histogram h;
//   h.record(std::chrono::microseconds(42));           // one writer at a time (see below)
//   ferry::histogram_snapshot s = h.snapshot();         // any thread, any time
//   s.percentile(0.99);                                 // within ~3% of the true value
//
// Buckets are log-linear, as in HdrHistogram: values below 32 ns are exact, every power of two
// above is split into 16 equal sub-buckets, so a bucket is at most 1/16 of its lower bound wide
// and a percentile read from a snapshot is within ~3% (at most 6.25%) of the recorded value. The
// range is the whole of int64 nanoseconds; 976 buckets, 7.8 KiB.
//
// Thread safety: `record` has a single writer at a time — writers that take turns must be
// synchronized with each other (a oneTBB arena slot, a strand, one io thread). `snapshot`,
// `merge_into` and `reset`-free reads may run concurrently with the writer from any thread:
// every counter is an atomic read relaxed, so a snapshot is a consistent-enough view for
// monitoring (counts may be one record apart from sum or max), never a torn value.
//
// Complexity: `record` is a count-leading-zeros, and three relaxed loads and stores on two cache
// lines — no read-modify-write instruction, no lock.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace ferry {

/// A point-in-time copy of one or more latency_histograms.
class histogram_snapshot {
 public:
  /// Samples recorded.
  std::uint64_t count = 0;
  /// Their total, and the largest one.
  std::chrono::nanoseconds sum{0};
  std::chrono::nanoseconds max{0};
  /// Cumulative counts at fixed upper bounds (1 µs, 2.5 µs, 5 µs, 10 µs, ... 10 s, then
  /// nanoseconds::max() for +Inf), ascending: ready for a Prometheus histogram's `le` buckets.
  /// A sample is counted under the first bound not below its bucket's midpoint.
  std::vector<std::pair<std::chrono::nanoseconds, std::uint64_t>> buckets;

  /// The value below which a fraction `q` (0..1, clamped) of the samples fall: the midpoint of
  /// the bucket holding that rank, never above `max`. 0 when there is no sample.
  std::chrono::nanoseconds percentile(double q) const noexcept;

  /// sum / count, or 0.
  std::chrono::nanoseconds mean() const noexcept;

 private:
  friend class latency_histogram;
  std::vector<std::uint64_t> fine_;  // one count per internal bucket
};

class latency_histogram {
 public:
  static constexpr int sub_bucket_bits = 4;
  static constexpr std::size_t sub_buckets = std::size_t{1} << sub_bucket_bits;
  static constexpr std::size_t bucket_count =
      (64 - sub_bucket_bits - 1) * sub_buckets + 2 * sub_buckets;

  latency_histogram() = default;
  latency_histogram(const latency_histogram&) = delete;
  latency_histogram& operator=(const latency_histogram&) = delete;

  /// Adds one sample (negative durations count as 0). Single writer at a time; see above.
  void record(std::chrono::nanoseconds d) noexcept { record_ns(d.count()); }

  void record_ns(std::int64_t ns) noexcept {
    const std::uint64_t v = ns > 0 ? static_cast<std::uint64_t>(ns) : 0;
    bump(counts_[index_of(v)]);
    sum_.store(sum_.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
    if (v > max_.load(std::memory_order_relaxed)) max_.store(v, std::memory_order_relaxed);
  }

  /// Adds this histogram's counts to `into` (which may already hold others'); `finish` then
  /// computes its Prometheus buckets.
  void merge_into(histogram_snapshot& into) const;

  /// Computes `s.buckets` from the merged counts; call once after the last merge_into.
  static void finish(histogram_snapshot& s);

  /// A snapshot of this histogram alone.
  histogram_snapshot snapshot() const {
    histogram_snapshot s;
    merge_into(s);
    finish(s);
    return s;
  }

  /// The internal bucket of a value, and the bounds of a bucket ([lower, upper)).
  static constexpr std::size_t index_of(std::uint64_t v) noexcept {
    if (v < 2 * sub_buckets) return static_cast<std::size_t>(v);
    const int msb = 63 - __builtin_clzll(v);
    const int shift = msb - sub_bucket_bits;
    return static_cast<std::size_t>(shift + 1) * sub_buckets +
           static_cast<std::size_t>((v >> shift) & (sub_buckets - 1));
  }
  static constexpr std::uint64_t lower_bound_of(std::size_t i) noexcept {
    if (i < 2 * sub_buckets) return i;
    const std::size_t shift = i / sub_buckets - 1;
    return (sub_buckets + i % sub_buckets) << shift;
  }
  static constexpr std::uint64_t width_of(std::size_t i) noexcept {
    return i < 2 * sub_buckets ? 1 : std::uint64_t{1} << (i / sub_buckets - 1);
  }

 private:
  static void bump(std::atomic<std::uint64_t>& a) noexcept {
    a.store(a.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  std::array<std::atomic<std::uint64_t>, bucket_count> counts_{};
  std::atomic<std::uint64_t> sum_{0};
  std::atomic<std::uint64_t> max_{0};
};

}  // namespace ferry
