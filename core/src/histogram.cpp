// ferry/core/src/histogram.cpp — snapshots of latency histograms.
#include "ferry/core/histogram.hpp"

#include <algorithm>
#include <cmath>

namespace ferry {
namespace {

// The Prometheus bounds: 1-2.5-5 per decade, 1 µs .. 10 s.
constexpr std::int64_t export_bounds_ns[] = {
    1'000,         2'500,         5'000,         10'000,        25'000,      50'000,
    100'000,       250'000,       500'000,       1'000'000,     2'500'000,   5'000'000,
    10'000'000,    25'000'000,    50'000'000,    100'000'000,   250'000'000, 500'000'000,
    1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};

std::uint64_t midpoint_of(std::size_t i) noexcept {
  return latency_histogram::lower_bound_of(i) + latency_histogram::width_of(i) / 2;
}

}  // namespace

std::chrono::nanoseconds histogram_snapshot::percentile(double q) const noexcept {
  if (count == 0 || fine_.empty()) return std::chrono::nanoseconds(0);
  q = std::clamp(q, 0.0, 1.0);
  // The rank of the sample asked for, 1-based: at least the first, at most the last.
  const auto rank = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count))));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < fine_.size(); ++i) {
    seen += fine_[i];
    if (seen >= rank) {
      const auto v = static_cast<std::int64_t>(
          std::min<std::uint64_t>(midpoint_of(i), static_cast<std::uint64_t>(max.count())));
      return std::chrono::nanoseconds(v);
    }
  }
  return max;  // the counts moved under a concurrent writer: the largest is a safe answer
}

std::chrono::nanoseconds histogram_snapshot::mean() const noexcept {
  return count == 0 ? std::chrono::nanoseconds(0)
                    : std::chrono::nanoseconds(sum.count() / static_cast<std::int64_t>(count));
}

void latency_histogram::merge_into(histogram_snapshot& into) const {
  if (into.fine_.size() != bucket_count) into.fine_.assign(bucket_count, 0);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < bucket_count; ++i) {
    const std::uint64_t c = counts_[i].load(std::memory_order_relaxed);
    into.fine_[i] += c;
    total += c;
  }
  // The bucket counts are what percentiles read: count agrees with them even when a writer
  // raced with this read.
  into.count += total;
  into.sum +=
      std::chrono::nanoseconds(static_cast<std::int64_t>(sum_.load(std::memory_order_relaxed)));
  const auto m =
      std::chrono::nanoseconds(static_cast<std::int64_t>(max_.load(std::memory_order_relaxed)));
  into.max = std::max(into.max, m);
}

void latency_histogram::finish(histogram_snapshot& s) {
  if (s.fine_.size() != bucket_count) s.fine_.assign(bucket_count, 0);
  s.buckets.clear();
  s.buckets.reserve(std::size(export_bounds_ns) + 1);
  std::size_t i = 0;
  std::uint64_t cumulative = 0;
  for (std::int64_t bound : export_bounds_ns) {
    while (i < bucket_count && midpoint_of(i) <= static_cast<std::uint64_t>(bound)) {
      cumulative += s.fine_[i++];
    }
    s.buckets.emplace_back(std::chrono::nanoseconds(bound), cumulative);
  }
  s.buckets.emplace_back(std::chrono::nanoseconds::max(), s.count);
}

}  // namespace ferry
