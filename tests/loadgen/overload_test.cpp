// tests/loadgen/overload_test.cpp — ferry_loadgen's overload accounting without a network
// (bench/loadgen/overload.hpp): schedule parsing, the deadline verdict, the window p99 and the
// recovery time after a schedule's peak.
#include "overload.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace ferry::loadgen {
namespace {

using namespace std::chrono_literals;

TEST(LoadgenSchedule, ParsesSegmentsInOrder) {
  const parsed_schedule s = parse_schedule("100@5, 1000@2.5 ,0@1,50@0.25");
  ASSERT_TRUE(s.error.empty()) << s.error;
  ASSERT_EQ(s.segments.size(), 4u);
  EXPECT_EQ(s.segments[0].rate, 100);
  EXPECT_EQ(s.segments[0].seconds, 5);
  EXPECT_EQ(s.segments[1].rate, 1000);
  EXPECT_EQ(s.segments[1].seconds, 2.5);
  EXPECT_EQ(s.segments[2].rate, 0);
  EXPECT_EQ(s.segments[3].seconds, 0.25);
  EXPECT_DOUBLE_EQ(schedule_seconds(s.segments), 8.75);
}

TEST(LoadgenSchedule, OneSegment) {
  const parsed_schedule s = parse_schedule("200@10");
  ASSERT_TRUE(s.error.empty()) << s.error;
  ASSERT_EQ(s.segments.size(), 1u);
  EXPECT_EQ(s.segments[0].rate, 200);
}

TEST(LoadgenSchedule, RejectsMalformedSpecs) {
  for (const char* bad :
       {"",        " ",     "100",     "100@",   "@5",     "100@5,", ",100@5", "100@5,,200@5",
        "100@5@6", "abc@5", "100@abc", "100@0",  "100@-1", "-1@5",   "1e8@5",  "100@86401",
        "inf@5",   "nan@5", "100@5s",  "0x10@5", "0@5,0@2"}) {
    const parsed_schedule s = parse_schedule(bad);
    EXPECT_FALSE(s.error.empty()) << "'" << bad << "' was accepted";
    EXPECT_TRUE(s.segments.empty()) << "'" << bad << "'";
  }
}

TEST(LoadgenSchedule, ErrorNamesTheFaultySegment) {
  const parsed_schedule s = parse_schedule("100@5,x@2");
  EXPECT_NE(s.error.find("segment 2"), std::string::npos) << s.error;
  EXPECT_NE(s.error.find("'x@2'"), std::string::npos) << s.error;
}

TEST(LoadgenSchedule, SegmentRequestCounts) {
  EXPECT_EQ(segment_requests({20, 0.5}), 10u);  // 0, 50, ..., 450 ms
  EXPECT_EQ(segment_requests({3, 1}), 3u);      // 0, 333, 667 ms
  EXPECT_EQ(segment_requests({0.1, 0.3}), 1u);  // request 0 only
  EXPECT_EQ(segment_requests({10, 0.25}), 3u);  // 0, 100, 200 ms (300 ms is past the end)
  EXPECT_EQ(segment_requests({0.1, 10}), 1u);   // 1/0.1 = 10 s is the end, not inside
  EXPECT_EQ(segment_requests({0.3, 10}), 3u);   // 0.3 * 10 rounds to 3, not 4
  EXPECT_EQ(segment_requests({0, 10}), 0u);
  EXPECT_EQ(segment_requests({1000, 60}), 60'000u);
}

// Every request of a segment lies in [its start, its end) as compute_recovery places the
// boundaries (to_ns of the running sum), the first exactly on the start, for lengths that are
// not whole nanoseconds too.
TEST(LoadgenSchedule, RequestOffsetsStayInTheirSegment) {
  const std::vector<segment> s{{3, 1.0 / 3}, {7, 0.1}, {1000, 0.3}, {0.5, 4.2}, {30, 1.0 / 3}};
  double start = 0;
  for (const segment& seg : s) {
    const std::uint64_t lo = to_ns(start);
    const std::uint64_t hi = to_ns(start + seg.seconds);
    const std::uint64_t n = segment_requests(seg);
    ASSERT_GT(n, 0u);
    EXPECT_EQ(request_offset_ns(start, seg.rate, 0), lo);
    for (std::uint64_t i = 0; i < n; ++i) {
      const std::uint64_t t = request_offset_ns(start, seg.rate, i);
      EXPECT_GE(t, lo);
      EXPECT_LT(t, hi) << "request " << i << " of the segment at " << start << " s";
    }
    start += seg.seconds;
  }
  EXPECT_EQ(request_offset_ns(0.5, 4, 3), 1'250'000'000u);
  EXPECT_EQ(to_ns(1.0 / 3), 333'333'333u);
}

TEST(LoadgenSchedule, Peak) {
  const std::vector<segment> s{{100, 1}, {1000, 2}, {1000, 1}, {100, 3}};
  EXPECT_EQ(peak_segment(s), 2u);  // the last of the highest rate
  EXPECT_EQ(peak_segment({{5, 1}}), 0u);
  EXPECT_EQ(peak_segment({{5, 1}, {10, 1}, {1, 1}}), 1u);
}

TEST(LoadgenDeadline, Classify) {
  // No deadline: the status decides.
  EXPECT_EQ(classify(200u, 5s, 0ns), verdict::good);
  EXPECT_EQ(classify(204u, 1ms, 0ns), verdict::good);
  EXPECT_EQ(classify(299u, 1ms, 0ns), verdict::good);
  EXPECT_EQ(classify(503u, 1ms, 0ns), verdict::rejected);
  EXPECT_EQ(classify(504u, 1ms, 0ns), verdict::rejected);
  EXPECT_EQ(classify(199u, 1ms, 0ns), verdict::rejected);
  EXPECT_EQ(classify(300u, 1ms, 0ns), verdict::rejected);
  EXPECT_EQ(classify(std::nullopt, 1ms, 0ns), verdict::failed);
  // Within the deadline: as without one.
  EXPECT_EQ(classify(200u, 999ms, 1s), verdict::good);
  EXPECT_EQ(classify(503u, 1ms, 1s), verdict::rejected);
  EXPECT_EQ(classify(std::nullopt, 10ms, 1s), verdict::failed);
  // At or past the deadline, whatever the response: deadline.
  EXPECT_EQ(classify(200u, 1s, 1s), verdict::deadline);
  EXPECT_EQ(classify(200u, 1001ms, 1s), verdict::deadline);
  EXPECT_EQ(classify(503u, 2s, 1s), verdict::deadline);
  EXPECT_EQ(classify(std::nullopt, 1s, 1s), verdict::deadline);
}

TEST(LoadgenDeadline, Expired) {
  EXPECT_FALSE(expired(0ns, 999ms, 1s));
  EXPECT_TRUE(expired(0ns, 1s, 1s));
  EXPECT_TRUE(expired(500ms, 2s, 1s));
  EXPECT_FALSE(expired(1500ms, 2s, 1s));
  EXPECT_FALSE(expired(0ns, 1h, 0ns));  // 0 = no deadline
}

TEST(LoadgenRecovery, P99NearestRank) {
  EXPECT_EQ(p99({}), std::nullopt);
  EXPECT_EQ(p99({7}), 7u);
  std::vector<std::uint64_t> hundred;
  for (std::uint64_t i = 1; i <= 100; ++i) hundred.push_back(101 - i);  // 100 .. 1, unsorted
  EXPECT_EQ(p99(hundred), 99u);
  hundred.push_back(1000);  // 101 values: rank ceil(99.99) = 100
  EXPECT_EQ(p99(hundred), 100u);
  std::vector<std::uint64_t> ten{1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_EQ(p99(ten), 10u);  // rank ceil(9.9) = 10
}

// Samples every 10 ms over [from_s, to_s) with latency `ms`.
void add(std::vector<sample>& out, double from_s, double to_s, std::uint64_t ms) {
  const auto first = static_cast<std::uint64_t>(from_s * 100 + 0.5);
  const auto last = static_cast<std::uint64_t>(to_s * 100 + 0.5);
  for (std::uint64_t i = first; i < last; ++i) out.push_back({i * 10'000'000, ms * 1'000'000});
}

TEST(LoadgenRecovery, FirstWindowBackAfterThePeak) {
  // 1 s at 100/s (1 ms), 1 s at 1000/s (50 ms), then 2 s back at 100/s: 50 ms until 0.6 s
  // after the peak, 1.5 ms (within 2 x 1 ms) from then on.
  const std::vector<segment> s{{100, 1}, {1000, 1}, {100, 2}};
  std::vector<sample> samples;
  add(samples, 0, 1, 1);
  add(samples, 1, 2, 50);
  add(samples, 2, 2.6, 50);
  add(samples, 2.6, 4, 1);  // 1 ms: recovered
  const recovery r = compute_recovery(samples, s, 250ms);
  EXPECT_EQ(r.peak, 1u);
  ASSERT_TRUE(r.baseline_p99);
  EXPECT_EQ(*r.baseline_p99, 1'000'000u);
  ASSERT_TRUE(r.seconds);
  // Windows from 2.0 s: [2.0, 2.25) and [2.25, 2.5) are slow, [2.5, 2.75) holds 50 ms samples
  // (2.50 .. 2.59) as 10 of its 25, so its p99 is 50 ms; [2.75, 3.0) is the first one back.
  EXPECT_DOUBLE_EQ(*r.seconds, 0.75);
  EXPECT_EQ(r.windows, 8u);  // 2 s after the peak
}

TEST(LoadgenRecovery, ImmediateRecoveryIsZero) {
  const std::vector<segment> s{{100, 1}, {1000, 1}, {100, 1}};
  std::vector<sample> samples;
  add(samples, 0, 1, 2);
  add(samples, 1, 2, 3);
  add(samples, 2, 3, 4);  // exactly 2 x the baseline: within
  const recovery r = compute_recovery(samples, s, 250ms);
  ASSERT_TRUE(r.seconds);
  EXPECT_EQ(*r.seconds, 0);
}

TEST(LoadgenRecovery, NotRecovered) {
  const std::vector<segment> s{{100, 1}, {1000, 1}, {100, 1}};
  std::vector<sample> samples;
  add(samples, 0, 1, 2);
  add(samples, 1, 3, 5);  // 2.5 x the baseline until the end
  const recovery r = compute_recovery(samples, s, 250ms);
  EXPECT_TRUE(r.baseline_p99);
  EXPECT_FALSE(r.seconds);
  EXPECT_EQ(r.windows, 4u);
}

TEST(LoadgenRecovery, WindowsWithoutSuccessesAreNotRecovered) {
  // After the peak nothing succeeds for 0.5 s (every request failed), then 1 ms.
  const std::vector<segment> s{{100, 1}, {1000, 1}, {100, 1}};
  std::vector<sample> samples;
  add(samples, 0, 1, 1);
  add(samples, 1, 2, 100);
  add(samples, 2.5, 3, 1);
  const recovery r = compute_recovery(samples, s, 250ms);
  ASSERT_TRUE(r.seconds);
  EXPECT_DOUBLE_EQ(*r.seconds, 0.5);
}

TEST(LoadgenRecovery, UndefinedCases) {
  std::vector<sample> samples;
  add(samples, 0, 2, 1);
  // The peak is the last segment: no window after it.
  const recovery last = compute_recovery(samples, {{100, 1}, {1000, 1}}, 250ms);
  EXPECT_EQ(last.peak, 1u);
  EXPECT_FALSE(last.seconds);
  EXPECT_EQ(last.windows, 0u);
  // The first segment has no success: no baseline.
  std::vector<sample> late;
  add(late, 1.5, 3, 1);
  const recovery none = compute_recovery(late, {{100, 1}, {1000, 1}, {100, 1}}, 250ms);
  EXPECT_FALSE(none.baseline_p99);
  EXPECT_FALSE(none.seconds);
}

TEST(LoadgenRecovery, LastWindowMayBeShort) {
  // 0.1 s after the peak: one window of 0.1 s, recovered at 0.
  const std::vector<segment> s{{100, 1}, {1000, 1}, {100, 0.1}};
  std::vector<sample> samples;
  add(samples, 0, 1, 1);
  add(samples, 1, 2, 9);
  add(samples, 2, 2.1, 1);
  const recovery r = compute_recovery(samples, s, 250ms);
  EXPECT_EQ(r.windows, 1u);
  ASSERT_TRUE(r.seconds);
  EXPECT_EQ(*r.seconds, 0);
}

}  // namespace
}  // namespace ferry::loadgen
