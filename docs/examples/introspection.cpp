// docs/examples/introspection.cpp — who blocked the loop, and what every task waits for: a
// stall report with the culprit's stack (slow_callback_threshold), and runtime::dump_tasks().
//
// Build with debug info (-g, the dev preset) to see the blocking function's name and line.
#include <atomic>
#include <boost/asio/this_coro.hpp>
#include <chrono>
#include <cstdio>
#include <ferry/ferry.hpp>
#include <string>
#include <thread>

using namespace std::chrono_literals;

namespace {

// The bug the watchdog is for: CPU work on the loop. It stops once the watchdog has seen the
// stall (and captured the stack), so that the example does not depend on timing.
[[gnu::noinline]] std::uint64_t checksum_on_the_loop(const ferry::runtime& rt, std::uint64_t x) {
  for (;;) {
    for (int i = 0; i < 1'000'000; ++i) x = x * 6364136223846793005u + 1442695040888963407u;
    if (rt.stats().loop.slow_callbacks != 0) return x;
  }
}

ferry::task<void> fetch_profile() { co_await ferry::sleep(1h); }

ferry::task<int> render_page(const std::atomic<bool>& go) {
  co_return co_await ferry::offload([&go] {
    while (!go.load()) std::this_thread::yield();
    return 200;
  });
}

ferry::task<int> next_job(ferry::queue<int>& jobs) { co_return co_await jobs.get(); }

std::size_t suspended(const std::string& dump) {
  std::size_t n = 0;
  for (auto at = dump.find("suspended in"); at != std::string::npos;
       at = dump.find("suspended in", at + 1)) {
    ++n;
  }
  return n;
}

}  // namespace

int main() {
  std::atomic<bool> go{false};
  ferry::runtime_options options;
  options.cpu_threads = 1;
  options.slow_callback_threshold = 100ms;
  // on_slow_callback unset: the default reporter prints each report on stderr.
  ferry::runtime rt(options);
  return rt.run([](ferry::runtime& rt, std::atomic<bool>& go) -> ferry::task<int> {
    // 1. A stall: the report names checksum_on_the_loop.
    const std::uint64_t sum = checksum_on_the_loop(rt, 42);
    while (rt.recent_slow_callbacks().empty()) co_await ferry::sleep(1ms);  // the stall is over

    // 2. A dump while three children wait in sleep, offload and queue::get.
    ferry::queue<int> jobs(4);
    ferry::task_group tg{co_await boost::asio::this_coro::executor};
    auto profile = tg.spawn(fetch_profile());
    tg.spawn(render_page(go));
    tg.spawn(next_job(jobs));
    std::string dump;
    while (suspended(dump = rt.dump_tasks()) < 3) co_await ferry::sleep(1ms);
    std::printf("%s", dump.c_str());

    go = true;
    jobs.try_put(7);
    profile.cancel();
    co_await tg.join();
    co_return sum == 0 ? 1 : 0;
  }(rt, go));
}
