// tests/support/stress_counts.hpp — the iteration counts of every stress test, in one place.
//
// The plain builds (scripts/test, the dev and dev-clang presets) run the full counts; under
// ThreadSanitizer or AddressSanitizer the stress tests run the smaller ones, because there each
// operation costs several times as much (the stress tests took 2 to 5 times as long under ASan
// as in the dev build) while what the sanitizer checks does not grow with the count. TSan
// reports a race from the happens-before order of one pair of accesses, whether or not their
// timing ever overlapped; ASan reports a use after free the first time the freed memory is
// touched. What a count buys is how often the rare interleavings come up (a grant racing a
// cancellation, a completion racing its executor's destruction); the full counts, which hunt
// for those, run in every plain build, and each smaller count below says what it still covers.
#pragma once

namespace ferry::test {

// g++ says which sanitizer is on with __SANITIZE_*__, clang with __has_feature.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FERRY_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define FERRY_TEST_SANITIZED 1
#endif
#endif

#ifdef FERRY_TEST_SANITIZED
inline constexpr bool sanitized_build = true;
#else
inline constexpr bool sanitized_build = false;
#endif

/// `full` in a plain build, `sanitized` under a sanitizer.
constexpr int stress_count(int full, int sanitized) { return sanitized_build ? sanitized : full; }

namespace counts {

/// MutexStress: lock/unlock rounds per worker (12 workers, then 8; those on strands cancel at
/// random). 400 rounds are still 8,000 lock attempts on one mutex across both configurations,
/// each contended by 7 to 11 others, so hand-offs to queued waiters and cancellations of queued
/// waiters both come up in the thousands.
inline constexpr int mutex_rounds = stress_count(1500, 400);

/// SemaphoreStress: acquire/release rounds per worker (10 workers on 3 permits, 6 of them
/// cancelling at random): 400 rounds are 8,000 acquisitions across both configurations, with
/// more workers than permits throughout, as for the mutex.
inline constexpr int semaphore_rounds = stress_count(1500, 400);

/// ConditionStress: items per producer (4 producers; retiring consumers wait with random
/// cancellation). Every item is one notification racing the waits: 400 items each are 1,600
/// notifications a configuration.
inline constexpr int condition_items = stress_count(1500, 400);

/// EventStress: set/clear rounds (8 waiters on io strands and the cpu_pool). Each round ends
/// every waiter's wait once, woken or cancelled: 150 rounds are 1,200 waits a configuration.
inline constexpr int event_rounds = stress_count(400, 150);

/// QueueStress: items per producer (6 producers, 6 consumers, some of each cancelling at random;
/// capacities 1 and 8): 1,000 items per producer are 6,000 items a scenario through a queue that
/// is full or empty most of the time at capacity 1.
inline constexpr int queue_items = stress_count(4000, 1000);

/// TaskGroupStress: random scenarios (spawn, fail, cancel, join across io threads and the pool):
/// 400 scenarios, each with several children on random executors, still spawn thousands of
/// children (the test checks more children than scenarios).
inline constexpr int task_group_scenarios = stress_count(1200, 400);

/// OffloadStress: offloads per client (64 clients on 2 workers, cancelled at random). The pool
/// is saturated throughout, so every completion crosses a cancellation window: 150 per client
/// are 9,600 offloads a configuration.
inline constexpr int offload_ops_per_client = stress_count(500, 150);

/// CompletionRaceStress: rounds of "complete, then destroy the context at once", with a random
/// delay of up to 20 µs placing the post within the completion: each round is one such race, and
/// 150 rounds still spread the post across that window.
inline constexpr int completion_race_rounds = stress_count(400, 150);

}  // namespace counts

}  // namespace ferry::test
