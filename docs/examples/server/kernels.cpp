// docs/examples/server/kernels.cpp — the CPU work of the heavy endpoints: xorshift64 for /work, a
// multiply-rotate hash for /hash (chunked, and in parallel on a cpu_pool worker).
#include "kernels.hpp"

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>

#include <algorithm>
#include <bit>
#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

namespace ferry_server {
namespace {

[[noreturn]] void throw_aborted() {
  throw boost::system::system_error(boost::asio::error::operation_aborted);
}

constexpr std::uint64_t kernel_poll_every = 1 << 14;  // xorshift steps between two stop checks

std::uint64_t xorshift_steps(std::uint64_t state, std::uint64_t steps) noexcept {
  for (std::uint64_t i = 0; i < steps; ++i) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
  }
  return state;
}

constexpr std::uint64_t k1 = 0x9e3779b97f4a7c15ULL;
constexpr std::uint64_t k2 = 0xc2b2ae3d27d4eb4fULL;

std::uint64_t finalize(std::uint64_t h) noexcept {  // murmur3's fmix64
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

/// One round over `data`: 8 bytes at a time, multiply-rotate mixing, then an avalanche.
std::uint64_t hash_once(std::string_view data, std::uint64_t seed) noexcept {
  std::uint64_t h = (seed + k2) ^ (static_cast<std::uint64_t>(data.size()) * k1);
  std::size_t i = 0;
  for (; i + 8 <= data.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, data.data() + i, 8);
    h ^= std::rotl(w * k2, 31) * k1;
    h = std::rotl(h, 27) * 5 + 0x52dce729;
  }
  std::uint64_t tail = 0;
  for (std::size_t j = 0; i + j < data.size(); ++j) {
    tail |= static_cast<std::uint64_t>(static_cast<unsigned char>(data[i + j])) << (8 * j);
  }
  h ^= std::rotl(tail * k2, 31) * k1;
  return finalize(h);
}

std::uint64_t hash_rounds(std::string_view data,
                          std::uint64_t seed,
                          std::uint64_t rounds,
                          const std::stop_token& stop) {
  std::uint64_t h = seed;
  for (std::uint64_t r = 0; r < rounds; ++r) {
    if (stop.stop_requested()) throw_aborted();
    h = hash_once(data, h);
  }
  return h;
}

}  // namespace

std::string hex16(std::uint64_t v) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(v));
  return std::string(text, 16);
}

std::uint64_t run_work_kernel(std::uint64_t iterations, std::uint64_t seed, std::stop_token stop) {
  std::uint64_t state = seed != 0 ? seed : k1;  // xorshift64 never leaves 0
  while (iterations > 0) {
    if (stop.stop_requested()) throw_aborted();
    const std::uint64_t steps = std::min(iterations, kernel_poll_every);
    state = xorshift_steps(state, steps);
    iterations -= steps;
  }
  return state;
}

double calibrate_work_kernel() {
  using clock = std::chrono::steady_clock;
  constexpr std::uint64_t steps = 1 << 20;
  double best = 0;
  std::uint64_t sink = 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    const auto start = clock::now();
    sink ^= run_work_kernel(steps, k1 + static_cast<std::uint64_t>(attempt), {});
    const double us = std::chrono::duration<double, std::micro>(clock::now() - start).count();
    if (us > 0) best = std::max(best, static_cast<double>(steps) / us);
  }
  volatile std::uint64_t keep = sink;  // the timed loops have an observable result
  (void)keep;
  return best > 0 ? best : 1.0;
}

std::string hash_digest(std::string_view body,
                        std::uint64_t rounds,
                        std::size_t chunked_from,
                        bool parallel,
                        std::stop_token stop) {
  if (body.size() < chunked_from || body.empty()) {
    return hex16(hash_rounds(body, 0, rounds, stop));
  }
  constexpr std::size_t chunk = 64 * 1024;
  const std::size_t chunks = (body.size() + chunk - 1) / chunk;
  std::vector<std::uint64_t> digests(chunks);
  auto hash_chunk = [&](std::size_t i) {
    digests[i] = hash_rounds(body.substr(i * chunk, chunk), i, rounds, stop);
  };
  if (parallel) {
    // Runs in the caller's arena: on a cpu_pool worker, idle workers steal chunks.
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, chunks, 1),
                      [&](const tbb::blocked_range<std::size_t>& range) {
                        for (std::size_t i = range.begin(); i != range.end(); ++i) hash_chunk(i);
                      });
  } else {
    for (std::size_t i = 0; i < chunks; ++i) hash_chunk(i);
  }
  const std::string_view all(reinterpret_cast<const char*>(digests.data()),
                             digests.size() * sizeof(std::uint64_t));
  return hex16(hash_once(all, body.size()));
}

}  // namespace ferry_server
