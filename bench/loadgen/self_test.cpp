// bench/loadgen/self_test.cpp — `ferry_loadgen --self-test` (ctest loadgen.self_test): checks
// the histogram's bucket arithmetic and its percentiles against sorted vectors of random data.
#include "self_test.hpp"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "histogram.hpp"

namespace ferry::loadgen {
namespace {

struct checker {
  std::uint64_t checks = 0;
  std::uint64_t failures = 0;

  void expect(bool ok, const std::string& what) {
    ++checks;
    if (!ok) {
      ++failures;
      if (failures <= 20) std::fprintf(stderr, "[self-test] FAILED: %s\n", what.c_str());
    }
  }
};

std::string u64(std::uint64_t v) { return std::to_string(v); }

// Every bucket's bounds map back to it, and consecutive buckets tile the value range.
void check_buckets(checker& c) {
  const std::size_t last = histogram::index_of(histogram::max_value);
  for (std::size_t i = 0; i <= last; ++i) {
    const std::uint64_t lo = histogram::lowest_equivalent(i);
    const std::uint64_t hi = histogram::highest_equivalent(i);
    c.expect(histogram::index_of(lo) == i && histogram::index_of(hi) == i,
             "bucket " + u64(i) + " bounds [" + u64(lo) + ", " + u64(hi) + "] map back to it");
    if (i > 0) {
      c.expect(histogram::highest_equivalent(i - 1) + 1 == lo,
               "bucket " + u64(i) + " starts right after bucket " + u64(i - 1));
    }
    // Relative width: never more than 1/128 of the lower bound (exact below 256).
    c.expect(hi - lo <= lo / histogram::sub_buckets,
             "bucket " + u64(i) + " width " + u64(hi - lo + 1) + " within 1/128 of " + u64(lo));
  }
}

// Percentiles of `values` (recorded one by one) against the sorted vector.
void check_data(checker& c, const std::string& name, std::vector<std::uint64_t> values) {
  histogram h;
  histogram first_half;
  histogram second_half;
  long double sum = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    h.record(values[i]);
    (i < values.size() / 2 ? first_half : second_half).record(values[i]);
    sum += values[i];
  }
  first_half.merge(second_half);
  std::sort(values.begin(), values.end());
  const std::uint64_t n = values.size();
  c.expect(h.count() == n, name + ": count");
  if (n == 0) {
    c.expect(h.percentile(50) == 0 && h.max() == 0 && h.min() == 0, name + ": empty gives 0");
    return;
  }
  c.expect(h.min() == values.front() && h.max() == values.back(), name + ": exact min and max");
  const double mean = static_cast<double>(sum / n);
  c.expect(std::fabs(h.mean() - mean) <= 1e-9 * std::max(1.0, mean), name + ": exact mean");

  static const double quantiles[] = {
      0, 0.1, 1, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 99.999, 100};
  for (double q : quantiles) {
    const std::uint64_t exact = values[histogram::rank_of(q, n) - 1];
    const std::uint64_t got = h.percentile(q);
    const bool ok = got >= exact && got - exact <= exact / histogram::sub_buckets;
    c.expect(ok,
             name + ": p" + std::to_string(q) + " = " + u64(got) + ", exact " + u64(exact) +
                 " (allowed " + u64(exact) + " .. " + u64(exact + exact / histogram::sub_buckets) +
                 ")");
    c.expect(first_half.percentile(q) == got,
             name + ": merged halves agree at p" + std::to_string(q));
  }
}

std::vector<std::uint64_t> generate(std::size_t n, const std::function<std::uint64_t()>& next) {
  std::vector<std::uint64_t> v(n);
  for (auto& x : v) x = next();
  return v;
}

}  // namespace

int run_self_test() {
  checker c;
  check_buckets(c);

  std::random_device device;
  const std::uint64_t random_seed = (std::uint64_t{device()} << 32) | device();
  const std::uint64_t seeds[] = {1, 2, 3, random_seed};
  for (std::uint64_t seed : seeds) {
    std::mt19937_64 rng(seed);
    const std::string s = " seed " + u64(seed);
    for (std::size_t n : {std::size_t{1},
                          std::size_t{2},
                          std::size_t{7},
                          std::size_t{1000},
                          std::size_t{100'000}}) {
      const std::string size = " n=" + u64(n) + s;
      std::uniform_int_distribution<std::uint64_t> small(0, 1000);
      check_data(c, "uniform 0..1000" + size, generate(n, [&] { return small(rng); }));
      std::uniform_int_distribution<std::uint64_t> full(0, histogram::max_value);
      check_data(c, "uniform 0..60s" + size, generate(n, [&] { return full(rng); }));
      // Log-uniform over 1 µs .. 60 s: every octave gets values.
      std::uniform_real_distribution<double> exponent(std::log(1e3), std::log(6e10));
      check_data(c, "log-uniform 1us..60s" + size, generate(n, [&] {
                   return static_cast<std::uint64_t>(std::exp(exponent(rng)));
                 }));
      // A latency-like shape: lognormal around 200 µs with a 1% tail around 40 ms.
      std::lognormal_distribution<double> body(std::log(200e3), 0.5);
      std::lognormal_distribution<double> tail(std::log(40e6), 0.3);
      std::bernoulli_distribution in_tail(0.01);
      check_data(c, "lognormal + tail" + size, generate(n, [&] {
                   const double x = in_tail(rng) ? tail(rng) : body(rng);
                   return static_cast<std::uint64_t>(
                       std::min(x, static_cast<double>(histogram::max_value)));
                 }));
      check_data(c, "constant 12345" + size, generate(n, [] { return 12345; }));
    }
  }
  check_data(c, "empty", {});
  check_data(c, "edges", {0, 1, 255, 256, 257, 511, 512, histogram::max_value});

  // Values above max_value count at max_value; max() stays exact.
  histogram big;
  big.record(histogram::max_value * 2);
  big.record(5);
  c.expect(big.clamped() == 1 && big.max() == histogram::max_value * 2 &&
               big.percentile(100) == histogram::max_value * 2 && big.percentile(50) == 5,
           "clamping above max_value");

  if (c.failures != 0) {
    std::fprintf(stderr,
                 "[self-test] %" PRIu64 " of %" PRIu64 " checks failed (random seed %" PRIu64 ")\n",
                 c.failures,
                 c.checks,
                 random_seed);
    return 1;
  }
  std::printf("[self-test] histogram: %" PRIu64 " checks passed (random seed %" PRIu64 ")\n",
              c.checks,
              random_seed);
  return 0;
}

}  // namespace ferry::loadgen
