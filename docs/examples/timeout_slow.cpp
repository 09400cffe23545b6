// docs/examples/timeout_slow.cpp — a timeout around a slow operation.
//
// asyncio:
//     try:
//         async with asyncio.timeout(0.05):
//             await slow_lookup()
//     except TimeoutError:
//         ...
//
// ferry: `co_await ferry::timeout(d, aw)` cancels `aw` at the deadline, waits until it has
// finished, and throws ferry::timeout_error. Three cases: a fast operation returns its value; a
// slow timer-based one is cut off; an offloaded computation is asked to stop through its
// std::stop_token and has returned before timeout_error reaches the caller.
#include <atomic>
#include <cstdio>
#include <ferry/ferry.hpp>
#include <ferry/io/timeout.hpp>
#include <string>
#include <thread>

using namespace std::chrono_literals;

ferry::task<std::string> lookup(std::chrono::milliseconds latency) {
  co_await ferry::sleep(latency);
  co_return "found after " + std::to_string(latency.count()) + " ms";
}

ferry::task<int> main_task() {
  // 1. Fast enough: the value comes through.
  const std::string fast = co_await ferry::timeout(500ms, lookup(5ms));
  std::printf("fast lookup: %s\n", fast.c_str());

  // 2. Too slow: cancelled at the deadline.
  bool slow_timed_out = false;
  try {
    co_await ferry::timeout(30ms, lookup(10s));
  } catch (const ferry::timeout_error& e) {
    slow_timed_out = true;
    std::printf("slow lookup: %s\n", e.what());
  }

  // 3. Offloaded CPU work: stop is requested on its token, and timeout waits for it to return.
  //    The function gives up by throwing operation_aborted (throw_if_stop_requested); had it
  //    returned its partial result instead, timeout would deliver that value.
  std::atomic<bool> returned{false};
  auto crunch = [&returned](std::stop_token st) {
    long rounds = 0;
    for (;; ++rounds) {
      if (st.stop_requested()) {
        returned = true;
        ferry::throw_if_stop_requested(st);
      }
      std::this_thread::sleep_for(1ms);  // a slice of real computation
    }
    return rounds;
  };
  bool crunch_timed_out = false;
  bool returned_before_throw = false;
  try {
    co_await ferry::timeout(40ms, ferry::offload(std::move(crunch)));
  } catch (const ferry::timeout_error&) {
    crunch_timed_out = true;
    returned_before_throw = returned.load();
  }
  std::printf("offloaded crunch: timed out = %s, its function had returned before = %s\n",
              crunch_timed_out ? "yes" : "no",
              returned_before_throw ? "yes" : "no");

  const bool ok =
      fast == "found after 5 ms" && slow_timed_out && crunch_timed_out && returned_before_throw;
  std::printf("%s\n", ok ? "all checks passed" : "CHECK FAILED");
  co_return ok ? 0 : 1;
}

int main() { return ferry::run(main_task()); }
