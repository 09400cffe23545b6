// tests/bridge/completion_race_stress_test.cpp — a completion never needs its poster to be done.
//
// The program destroys the strand and the io_context the moment the completion has run and
// `run()` has returned, while the thread that posted the completion (a cpu_pool worker, a
// blocking_pool thread, a notifier on another thread) may still be inside Asio's `execute` or
// destroying its executor copies. The completion protocol (docs/design.md, "Completion: nobody
// waits for the poster") makes that safe by ownership: the poster holds outstanding work on the
// context until it has returned, so `run()` cannot return before it. ASan and TSan check that
// nothing touches a destroyed context or strand; each round uses a random delay on the posting
// side so that the post lands at every point of the completion's run.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <ferry/ferry.hpp>
#include <memory>
#include <optional>
#include <random>
#include <thread>

#include "ferry_test.hpp"
#include "stress_counts.hpp"

namespace {

constexpr int kRounds = ferry::test::counts::completion_race_rounds;

// Spins for up to ~20 µs: where in the completion's run the poster's post lands.
void random_delay(unsigned spins) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::nanoseconds(spins % 20'000);
  while (std::chrono::steady_clock::now() < end) {
  }
}

// One round: a fresh io_context and strand, one coroutine on the strand that awaits `op`, run()
// on this thread, then both destroyed at once.
template <class MakeOp>
void round_on_fresh_context(MakeOp make_op, bool on_strand) {
  std::optional<asio::io_context> io(std::in_place, 1);
  int value = 0;
  auto body = [&]() -> ferry::task<void> { value = co_await make_op(); };
  auto coro = on_strand ? ferry::test::spawn_checked(asio::make_strand(*io), body())
                        : ferry::test::spawn_checked(*io, body());
  io->run();
  io.reset();  // at once: the poster may still be returning from its post
  ASSERT_EQ(value, 7);
}

}  // namespace

TEST(CompletionRaceStress, ContextAndStrandDestroyedRightAfterAnOffloadCompletes) {
  ferry::cpu_pool pool(2);
  std::mt19937 rng(1);
  for (int i = 0; i < kRounds; ++i) {
    const unsigned spins = rng();
    const bool on_strand = i % 2 == 0;
    round_on_fresh_context(
        [&] {
          return ferry::offload(pool, [spins] {
            random_delay(spins);
            return 7;
          });
        },
        on_strand);
  }
}

TEST(CompletionRaceStress, ContextAndStrandDestroyedRightAfterAToThreadCompletes) {
  ferry::blocking_pool pool(4);
  std::mt19937 rng(2);
  for (int i = 0; i < kRounds; ++i) {
    const unsigned spins = rng();
    const bool on_strand = i % 2 == 0;
    round_on_fresh_context(
        [&] {
          return ferry::to_thread(pool, [spins] {
            random_delay(spins);
            return 7;
          });
        },
        on_strand);
  }
}

TEST(CompletionRaceStress, ContextAndStrandDestroyedRightAfterAWaiterIsGrantedFromAnotherThread) {
  std::mt19937 rng(3);
  for (int i = 0; i < kRounds; ++i) {
    const unsigned spins = rng();
    const bool on_strand = i % 2 == 0;
    ferry::event ev;  // outlives the context and the notifier
    std::thread notifier;
    round_on_fresh_context(
        [&]() -> ferry::task<int> {
          // A set that lands before the wait is linked completes the wait at once: both orders
          // are covered by the random delay.
          notifier = std::thread([&ev, spins] {
            random_delay(spins);
            ev.set();  // posts the waiter's completion from this thread
          });
          co_await ev.wait();
          co_return 7;
        },
        on_strand);
    notifier.join();
  }
}
