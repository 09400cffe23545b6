// tests/bridge/offload_alloc_test.cpp — the allocation budget of one offload.
//
// Replaces the global operator new with a counting one (this binary only) and checks that, in
// steady state, an offload awaited from a coroutine on a runtime's io thread costs at most one
// operator new (the contract: at most one allocation per offload; the operation is recycled by
// Asio's thread-local allocator and the hand back reuses a buffer inside it). oneTBB's task
// objects come from its own small-object pool, not from operator new.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <ferry/ferry.hpp>
#include <new>

#include "stress_counts.hpp"  // FERRY_TEST_SANITIZED

namespace {
std::atomic<std::size_t> allocations{0};
}

// Under a sanitizer the test is skipped, and the counting operators are left out: clang links
// its sanitizer runtime statically, with operator new and delete of its own.
#ifndef FERRY_TEST_SANITIZED
// The replacement pair below is malloc/free based; g++ cannot see that they match.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void* operator new(std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#endif

TEST(OffloadAllocation, AtMostOnePerOffloadInSteadyState) {
#ifdef FERRY_TEST_SANITIZED
  GTEST_SKIP() << "sanitizer runtimes allocate on their own behalf";
#endif
  constexpr int kWarmUp = 1'000;
  constexpr int kMeasured = 20'000;
  ferry::runtime rt({.cpu_threads = 2});
  const std::size_t used = rt.run([&]() -> ferry::task<std::size_t> {
    for (int i = 0; i < kWarmUp; ++i) co_await ferry::offload([i] { return i; });
    const std::size_t before = allocations.load();
    long sum = 0;
    for (int i = 0; i < kMeasured; ++i) sum += co_await ferry::offload([i] { return i; });
    const std::size_t after = allocations.load();
    EXPECT_EQ(sum, static_cast<long>(kMeasured) * (kMeasured - 1) / 2);
    co_return after - before;
  }());
  RecordProperty("allocations_per_offload_x1000", static_cast<int>(used * 1000 / kMeasured));
  EXPECT_LE(used, static_cast<std::size_t>(kMeasured));
}
