// ferry/detail/assert.hpp — FERRY_ASSERT: invariants checked in debug and sanitizer builds.
//
// On when NDEBUG is not defined (the dev, asan and tsan presets build Debug) or when
// FERRY_ENABLE_ASSERTS is defined; otherwise the condition is not evaluated. A failed assertion
// prints the condition and its place on stderr and aborts: an invariant that does not hold means
// memory is about to be corrupted, and nothing after it can be trusted.
#pragma once

#include <cstdio>
#include <cstdlib>

#if !defined(NDEBUG) || defined(FERRY_ENABLE_ASSERTS)
#define FERRY_ASSERTS_ENABLED 1
#define FERRY_ASSERT(cond) \
  ((cond) ? void(0) : ::ferry::detail::assertion_failed(#cond, __FILE__, __LINE__))
#else
#define FERRY_ASSERTS_ENABLED 0
#define FERRY_ASSERT(cond) void(0)
#endif

namespace ferry::detail {

[[noreturn]] inline void assertion_failed(const char* cond, const char* file, int line) noexcept {
  std::fprintf(stderr, "ferry: assertion failed: %s (%s:%d)\n", cond, file, line);
  std::abort();
}

}  // namespace ferry::detail
