// bench/work_kernel.hpp — the work kernel of docs/workloads.md, shared by ferry's benchmarks: a
// xorshift64 loop, calibrated at start-up (printed, and put in the JSON context).
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace ferry_bench {

/// `iterations` steps of xorshift64: a serial dependency chain the compiler cannot shorten.
[[gnu::noinline]] inline std::uint64_t xorshift_work(std::uint64_t iterations, std::uint64_t seed) {
  std::uint64_t x = seed | 1;
  for (std::uint64_t i = 0; i < iterations; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  return x;
}

inline double g_iterations_per_us = 710.0;  // replaced by calibrate() before any benchmark runs

/// Measures xorshift iterations per microsecond: the best of 31 runs of a few milliseconds (short
/// runs, so that some run is not preempted on a shared machine). `binary` names the caller in
/// the line printed on stderr.
inline void calibrate(const char* binary) {
  using clock = std::chrono::steady_clock;
  constexpr std::uint64_t iterations = 1'000'000;
  double best_us = 1e300;
  std::uint64_t sink = 0;
  for (int run = 0; run < 31; ++run) {
    const auto start = clock::now();
    sink ^= xorshift_work(iterations, static_cast<std::uint64_t>(run) + 1);
    const std::chrono::duration<double, std::micro> took = clock::now() - start;
    best_us = std::min(best_us, took.count());
  }
  benchmark::DoNotOptimize(sink);
  g_iterations_per_us = static_cast<double>(iterations) / best_us;
  std::fprintf(stderr,
               "%s: calibration: %.0f xorshift iterations per us "
               "(1 us = %.0f iterations, 10 ms = %.0f)\n",
               binary,
               g_iterations_per_us,
               g_iterations_per_us,
               g_iterations_per_us * 10'000);
  benchmark::AddCustomContext("xorshift_iterations_per_us", std::to_string(g_iterations_per_us));
}

inline std::uint64_t iterations_for_us(double us) {
  return static_cast<std::uint64_t>(g_iterations_per_us * us + 0.5);
}

/// A positive integer from the environment, or `fallback`.
inline std::size_t env_size(const char* name, std::size_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  const unsigned long long value = std::strtoull(text, nullptr, 10);
  return value == 0 ? fallback : static_cast<std::size_t>(value);
}

}  // namespace ferry_bench
