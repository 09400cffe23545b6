// docs/examples/rate_limited_client.cpp — a token-bucket rate-limited API client, and race.
//
// asyncio (with a token bucket of your own or a library's):
//     async def call(n):
//         await bucket.acquire()
//         return await api.get(n)
//     results = await asyncio.gather(*(call(n) for n in range(20)))
//
// ferry: `ferry::rate_limiter{rate, burst}` is a thread-safe token bucket whose waiters are served
// in FIFO order. Twenty calls start at once against a local TCP server: the first `burst` go
// through immediately, the rest are spaced at `rate` per second. Then `ferry::race` sends the
// same request to a slow and a fast replica and keeps the first answer; the slower call is
// cancelled and has finished before race returns.
#include <cstdio>
#include <ferry/ferry.hpp>
#include <ferry/io/rate_limiter.hpp>
#include <string>
#include <vector>

#include "support/page_server.hpp"

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

ferry::task<int> main_task() {
  auto ex = co_await boost::asio::this_coro::executor;
  examples::page_server api(ex, 2ms);
  ferry::rate_limiter bucket(100.0, 5);  // 100 calls per second, bursts of 5

  const auto start = clock_type::now();
  std::vector<double> sent_at_ms(20);
  auto call = [&](long n) -> ferry::task<std::string> {
    co_await bucket.acquire();
    sent_at_ms[static_cast<std::size_t>(n)] =
        std::chrono::duration<double, std::milli>(clock_type::now() - start).count();
    co_return co_await examples::fetch_page(api.port(), n);
  };
  std::vector<ferry::task<std::string>> calls;
  for (long n = 0; n < 20; ++n) calls.push_back(call(n));
  const std::vector<std::string> replies = co_await ferry::gather(std::move(calls));
  const double took = std::chrono::duration<double, std::milli>(clock_type::now() - start).count();
  std::printf(
      "20 calls through a bucket of 100/s with bursts of 5 took %.0f ms "
      "(the bucket allows it in no less than 150 ms)\n",
      took);
  std::printf("call  sent at (ms)\n");
  for (std::size_t n = 0; n < sent_at_ms.size(); n += 4) {
    std::printf("%-5zu %7.1f\n", n, sent_at_ms[n]);
  }

  // Hedged request: the same page from a slow and a fast replica; the first answer wins.
  examples::page_server slow_replica(ex, 500ms);
  examples::page_server fast_replica(ex, 5ms);
  auto winner = co_await ferry::race(examples::fetch_page(slow_replica.port(), 7),
                                     examples::fetch_page(fast_replica.port(), 7));
  std::printf("race: replica %zu answered first: %s\n",
              winner.index(),
              std::visit([](const std::string& s) { return s; }, winner).c_str());
  api.stop();
  slow_replica.stop();
  fast_replica.stop();

  bool in_order = true;
  for (std::size_t n = 1; n < sent_at_ms.size(); ++n) {
    in_order = in_order && sent_at_ms[n] >= sent_at_ms[n - 1];
  }
  const bool ok = replies.size() == 20 && replies[19].rfind("page 19:", 0) == 0 && in_order &&
                  winner.index() == 1;
  std::printf("%s\n", ok ? "all checks passed" : "CHECK FAILED");
  co_return ok ? 0 : 1;
}

int main() { return ferry::run(main_task()); }
