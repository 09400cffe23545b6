// bench/loadgen/overload.cpp — see overload.hpp.
#include "overload.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace ferry::loadgen {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A whole finite decimal number, nothing else (no "inf", "nan", hex or trailing text).
std::optional<double> number(std::string_view text) {
  text = trim(text);
  if (text.empty()) return std::nullopt;
  for (char ch : text) {
    if (!((ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '+' || ch == 'e' ||
          ch == 'E')) {
      return std::nullopt;
    }
  }
  const std::string copy(text);
  char* end = nullptr;
  const double v = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace

parsed_schedule parse_schedule(std::string_view spec) {
  parsed_schedule out;
  auto fail = [&](const std::string& message) {
    out.segments.clear();
    out.error = message;
    return out;
  };
  if (trim(spec).empty()) return fail("empty schedule (expected R1@S1,R2@S2,...)");
  std::size_t index = 0;
  for (;;) {
    const std::size_t comma = spec.find(',');
    const std::string_view item = trim(spec.substr(0, comma));
    ++index;
    const std::string where = "segment " + std::to_string(index) + " '" + std::string(item) + "'";
    if (item.empty()) return fail(where + ": empty (expected RATE@SECONDS)");
    const std::size_t at = item.find('@');
    if (at == std::string_view::npos || item.find('@', at + 1) != std::string_view::npos) {
      return fail(where + ": expected RATE@SECONDS");
    }
    const auto rate = number(item.substr(0, at));
    const auto seconds = number(item.substr(at + 1));
    if (!rate || *rate < 0 || *rate > 1e7) {
      return fail(where + ": the rate must be a number in [0, 1e7] requests/s");
    }
    if (!seconds || *seconds <= 0 || *seconds > 86'400) {
      return fail(where + ": the duration must be a number of seconds in (0, 86400]");
    }
    out.segments.push_back({*rate, *seconds});
    if (comma == std::string_view::npos) break;
    spec.remove_prefix(comma + 1);
  }
  const bool any = std::any_of(
      out.segments.begin(), out.segments.end(), [](const segment& s) { return s.rate > 0; });
  if (!any) return fail("every segment has rate 0: nothing to send");
  return out;
}

std::uint64_t segment_requests(const segment& s) {
  if (s.rate <= 0 || s.seconds <= 0) return 0;
  const double product = s.rate * s.seconds;
  const double nearest = std::round(product);
  if (std::fabs(product - nearest) < 1e-9) return static_cast<std::uint64_t>(nearest);
  return static_cast<std::uint64_t>(std::ceil(product));
}

double schedule_seconds(const std::vector<segment>& segments) {
  double total = 0;
  for (const segment& s : segments) total += s.seconds;
  return total;
}

std::uint64_t to_ns(double seconds) {
  return static_cast<std::uint64_t>(std::llround(seconds * 1e9));
}

std::uint64_t request_offset_ns(double start_s, double rate, std::uint64_t i) {
  return to_ns(start_s) +
         static_cast<std::uint64_t>(std::llround(static_cast<double>(i) * 1e9 / rate));
}

std::size_t peak_segment(const std::vector<segment>& segments) {
  std::size_t peak = 0;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (segments[i].rate >= segments[peak].rate) peak = i;
  }
  return peak;
}

const char* to_string(verdict v) noexcept {
  switch (v) {
    case verdict::good:
      return "good";
    case verdict::rejected:
      return "rejected";
    case verdict::deadline:
      return "deadline";
    case verdict::failed:
      return "failed";
  }
  return "unknown";
}

verdict classify(std::optional<unsigned> status,
                 std::chrono::nanoseconds elapsed,
                 std::chrono::nanoseconds deadline) noexcept {
  if (deadline.count() > 0 && elapsed >= deadline) return verdict::deadline;
  if (!status) return verdict::failed;
  return *status >= 200 && *status < 300 ? verdict::good : verdict::rejected;
}

bool expired(std::chrono::nanoseconds intended,
             std::chrono::nanoseconds now,
             std::chrono::nanoseconds deadline) noexcept {
  return deadline.count() > 0 && now >= intended + deadline;
}

std::optional<std::uint64_t> p99(std::vector<std::uint64_t> values) {
  if (values.empty()) return std::nullopt;
  // Nearest rank: the ceil(0.99 n)-th smallest value (1-based), computed in integers.
  const std::size_t rank = (values.size() * 99 + 99) / 100;
  const auto nth = values.begin() + static_cast<std::ptrdiff_t>(rank - 1);
  std::nth_element(values.begin(), nth, values.end());
  return *nth;
}

recovery compute_recovery(const std::vector<sample>& samples,
                          const std::vector<segment>& segments,
                          std::chrono::nanoseconds window) {
  recovery r;
  if (segments.empty() || window.count() <= 0) return r;
  r.peak = peak_segment(segments);

  const std::uint64_t first_end = to_ns(segments[0].seconds);
  std::vector<std::uint64_t> first;
  for (const sample& s : samples) {
    if (s.offset_ns < first_end) first.push_back(s.latency_ns);
  }
  r.baseline_p99 = p99(std::move(first));

  double peak_end_s = 0;
  for (std::size_t i = 0; i <= r.peak; ++i) peak_end_s += segments[i].seconds;
  const std::uint64_t from = to_ns(peak_end_s);
  const std::uint64_t to = to_ns(schedule_seconds(segments));
  const auto width = static_cast<std::uint64_t>(window.count());
  if (from >= to) return r;
  const std::uint64_t count = (to - from + width - 1) / width;

  std::vector<std::vector<std::uint64_t>> windows(count);
  for (const sample& s : samples) {
    if (s.offset_ns < from || s.offset_ns >= to) continue;
    windows[(s.offset_ns - from) / width].push_back(s.latency_ns);
  }
  r.windows = count;
  if (!r.baseline_p99) return r;
  for (std::uint64_t k = 0; k < count; ++k) {
    const auto q = p99(std::move(windows[k]));
    if (q && *q <= 2 * *r.baseline_p99) {
      r.seconds = static_cast<double>(k * width) / 1e9;
      break;
    }
  }
  return r;
}

}  // namespace ferry::loadgen
