// tests/core/histogram_test.cpp — latency_histogram: buckets, percentiles, snapshots.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <ferry/core/histogram.hpp>
#include <random>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using ferry::latency_histogram;

namespace {

// The histogram promises a percentile within 1/16 of the true value (half a bucket each way).
void expect_close(std::chrono::nanoseconds got, std::int64_t want) {
  const double tolerance = std::max(1.0, static_cast<double>(want) / 16.0);
  EXPECT_NEAR(static_cast<double>(got.count()), static_cast<double>(want), tolerance)
      << "want " << want << " ns";
}

}  // namespace

TEST(Histogram, BucketsCoverEveryValueContiguously) {
  for (std::size_t i = 0; i + 1 < latency_histogram::bucket_count; ++i) {
    ASSERT_EQ(latency_histogram::lower_bound_of(i) + latency_histogram::width_of(i),
              latency_histogram::lower_bound_of(i + 1))
        << "bucket " << i;
  }
  for (std::uint64_t v :
       {0ull, 1ull, 31ull, 32ull, 33ull, 1000ull, 123456789ull, (1ull << 62) + 12345, ~0ull}) {
    const std::size_t i = latency_histogram::index_of(v);
    ASSERT_LT(i, latency_histogram::bucket_count);
    EXPECT_LE(latency_histogram::lower_bound_of(i), v);
    EXPECT_LE(v - latency_histogram::lower_bound_of(i), latency_histogram::width_of(i) - 1);
  }
}

TEST(Histogram, EmptySnapshotHasZeroesAndPrometheusBuckets) {
  latency_histogram h;
  const ferry::histogram_snapshot s = h.snapshot();
  EXPECT_EQ(s.count, 0u);
  EXPECT_EQ(s.percentile(0.99), 0ns);
  EXPECT_EQ(s.mean(), 0ns);
  ASSERT_FALSE(s.buckets.empty());
  EXPECT_EQ(s.buckets.front().first, 1us);
  EXPECT_EQ(s.buckets.back().first, std::chrono::nanoseconds::max());
  for (const auto& [bound, count] : s.buckets) EXPECT_EQ(count, 0u);
}

TEST(Histogram, PercentilesMatchASortedVectorWithinTheResolution) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> dist(10.0, 2.0);  // ~22 µs median, a long tail
  latency_histogram h;
  std::vector<std::int64_t> values;
  for (int i = 0; i < 100'000; ++i) {
    const auto v = static_cast<std::int64_t>(dist(rng));
    values.push_back(v);
    h.record(std::chrono::nanoseconds(v));
  }
  std::sort(values.begin(), values.end());
  const ferry::histogram_snapshot s = h.snapshot();
  EXPECT_EQ(s.count, values.size());
  EXPECT_EQ(s.max.count(), values.back());
  for (double q : {0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0}) {
    const auto rank = std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(q * 100'000)));
    expect_close(s.percentile(q), values[rank - 1]);
  }
}

TEST(Histogram, PrometheusBucketsAreCumulativeAndEndWithTheCount) {
  latency_histogram h;
  h.record(500ns);
  h.record(3us);
  h.record(3us);
  h.record(2ms);
  h.record(20s);  // beyond the last finite bound
  const ferry::histogram_snapshot s = h.snapshot();
  std::uint64_t previous = 0;
  for (const auto& [bound, count] : s.buckets) {
    EXPECT_GE(count, previous);
    previous = count;
  }
  EXPECT_EQ(s.buckets.back().second, 5u);
  auto at = [&](std::chrono::nanoseconds bound) {
    for (const auto& [b, c] : s.buckets)
      if (b == bound) return c;
    ADD_FAILURE() << "no bucket " << bound.count();
    return std::uint64_t{0};
  };
  EXPECT_EQ(at(1us), 1u);
  EXPECT_EQ(at(5us), 3u);
  EXPECT_EQ(at(2500us), 4u);
  EXPECT_EQ(at(10s), 4u);
  EXPECT_EQ(s.sum, 500ns + 3us + 3us + 2ms + 20s);
}

TEST(Histogram, NegativeDurationsCountAsZero) {
  latency_histogram h;
  h.record(-5us);
  const ferry::histogram_snapshot s = h.snapshot();
  EXPECT_EQ(s.count, 1u);
  EXPECT_EQ(s.max, 0ns);
  EXPECT_EQ(s.percentile(0.5), 0ns);
}

TEST(Histogram, SnapshotsWhileOneWriterRecordsNeverGoBackwards) {
  latency_histogram h;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < 200'000; ++i) h.record(std::chrono::nanoseconds(i % 5000));
    done = true;
  });
  std::uint64_t last = 0;
  while (!done) {
    const ferry::histogram_snapshot s = h.snapshot();
    EXPECT_GE(s.count, last);
    EXPECT_EQ(s.buckets.back().second, s.count);
    last = s.count;
  }
  writer.join();
  EXPECT_EQ(h.snapshot().count, 200'000u);
}
