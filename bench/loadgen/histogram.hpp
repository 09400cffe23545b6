// bench/loadgen/histogram.hpp — a log-linear latency histogram (HdrHistogram's bucket layout).
//
//   ferry::loadgen::histogram h;
//   h.record(latency_ns);
//   std::uint64_t p99 = h.percentile(99.0);   // ns, at most 0.78% above the exact value
//
// Values are nanoseconds from 0 to `max_value` (60 s). Values below 256 ns have a bucket each
// (exact); above, every power of two [2^e, 2^(e+1)) is split into 128 equal sub-buckets, so a
// bucket is never wider than 1/128 of its lower bound. 3,808 counters (30 KiB), no allocation
// after construction, O(1) record, O(buckets) percentile. Larger values are counted at
// `max_value` (`clamped()` says how many); `min()` and `max()` are exact.
//
// Percentiles follow HdrHistogram: the value of rank ceil(q/100 × count) (at least 1) in
// ascending order, reported as the highest value of its bucket (the "highest equivalent value"),
// clamped to [min(), max()]; in the last bucket, which also holds the clamped values, max(). So
// for data within max_value, percentile(q) >= the exact order statistic of the same rank and
// exceeds it by at most exact/128. `ferry_loadgen --self-test` checks exactly that against sorted
// vectors of random data.
//
// Thread safety: distinct objects: safe. Shared objects: not safe (the load generator records
// from its single io thread).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace ferry::loadgen {

class histogram {
 public:
  /// log2 of the number of sub-buckets per power of two: relative precision 2^-7 (0.78%).
  static constexpr int sub_bucket_bits = 7;
  static constexpr std::uint64_t sub_buckets = std::uint64_t{1} << sub_bucket_bits;  // 128
  /// Values below this have a bucket each.
  static constexpr std::uint64_t linear_limit = 2 * sub_buckets;  // 256
  /// The largest value tracked with full precision: 60 s in nanoseconds.
  static constexpr std::uint64_t max_value = 60'000'000'000;

  histogram() : counts_(index_of(max_value) + 1, 0) {}

  /// Counts `value` (ns) `n` times; a value above max_value counts as max_value (max() stays
  /// exact).
  void record(std::uint64_t value, std::uint64_t n = 1) {
    if (n == 0) return;
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
    sum_ += static_cast<long double>(value) * static_cast<long double>(n);
    if (value > max_value) {
      clamped_ += n;
      value = max_value;
    }
    counts_[index_of(value)] += n;
    count_ += n;
  }

  /// Adds every count of `other` to this histogram.
  void merge(const histogram& other) {
    if (other.count_ == 0) return;
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    clamped_ += other.clamped_;
    sum_ += other.sum_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }

  void reset() {
    std::fill(counts_.begin(), counts_.end(), 0);
    count_ = clamped_ = 0;
    sum_ = 0;
    min_ = std::numeric_limits<std::uint64_t>::max();
    max_ = 0;
  }

  std::uint64_t count() const noexcept { return count_; }
  std::uint64_t clamped() const noexcept { return clamped_; }
  /// Exact minimum and maximum (0 when empty).
  std::uint64_t min() const noexcept { return count_ == 0 ? 0 : min_; }
  std::uint64_t max() const noexcept { return max_; }
  /// Exact mean of the recorded values (0 when empty).
  double mean() const noexcept {
    return count_ == 0 ? 0.0 : static_cast<double>(sum_ / static_cast<long double>(count_));
  }

  /// The value at percentile `q` (0..100) as described in the file comment; 0 when empty.
  std::uint64_t percentile(double q) const {
    if (count_ == 0) return 0;
    const std::uint64_t rank = rank_of(q, count_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen < rank) continue;
      // The last bucket also holds the clamped values: report the exact maximum there.
      if (i + 1 == counts_.size()) return max_;
      return std::clamp(highest_equivalent(i), min(), max_);
    }
    return max_;  // not reached: the counts add up to count_
  }

  /// The 1-based rank of percentile `q` (0..100) among `count` values: ceil(q/100 × count),
  /// within [1, count]. Shared with the self-test so both sides agree on the definition.
  static std::uint64_t rank_of(double q, std::uint64_t count) {
    q = std::clamp(q, 0.0, 100.0);
    const auto rank = static_cast<std::uint64_t>(std::ceil(q / 100.0 * static_cast<double>(count)));
    return std::clamp<std::uint64_t>(rank, 1, count);
  }

  /// Index of the bucket holding `value` (value <= max_value).
  static std::size_t index_of(std::uint64_t value) {
    if (value < linear_limit) return static_cast<std::size_t>(value);
    const int exponent = std::bit_width(value) - 1;  // >= sub_bucket_bits + 1
    const int shift = exponent - sub_bucket_bits;
    const std::uint64_t sub = value >> shift;  // in [sub_buckets, 2 * sub_buckets)
    return static_cast<std::size_t>(
        linear_limit + static_cast<std::uint64_t>(shift - 1) * sub_buckets + (sub - sub_buckets));
  }

  /// The smallest value of bucket `index`.
  static std::uint64_t lowest_equivalent(std::size_t index) {
    if (index < linear_limit) return index;
    const std::uint64_t j = index - linear_limit;
    const std::uint64_t shift = j / sub_buckets + 1;
    return (sub_buckets + j % sub_buckets) << shift;
  }

  /// The largest value of bucket `index`.
  static std::uint64_t highest_equivalent(std::size_t index) {
    if (index < linear_limit) return index;
    const std::uint64_t shift = (index - linear_limit) / sub_buckets + 1;
    return lowest_equivalent(index) + (std::uint64_t{1} << shift) - 1;
  }

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t clamped_ = 0;
  long double sum_ = 0;
  std::uint64_t min_ = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t max_ = 0;
};

}  // namespace ferry::loadgen
