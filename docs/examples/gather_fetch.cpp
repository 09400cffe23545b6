// docs/examples/gather_fetch.cpp — concurrent fetches with gather, limited by a semaphore.
//
// asyncio:
//     sem = asyncio.Semaphore(3)
//     async def fetch(n):
//         async with sem:
//             return await get_page(n)
//     pages = await asyncio.gather(*(fetch(n) for n in range(12)))
//
// ferry: the same shape. The "backend" is a real TCP server on 127.0.0.1 started by this
// program (support/page_server.hpp) that takes 20 ms per request; twelve fetches run
// concurrently, at most three at a time, and gather returns the pages in request order.
// A second gather shows the first failure cancelling the rest and being rethrown.
#include <cstdio>
#include <ferry/ferry.hpp>
#include <ferry/io/gather.hpp>
#include <ferry/io/semaphore.hpp>
#include <string>
#include <vector>

#include "support/page_server.hpp"

using namespace std::chrono_literals;

ferry::task<std::string> limited_fetch(ferry::semaphore& limit, unsigned short port, long n) {
  auto permit = co_await limit.acquire();  // released when the fetch is done, whatever happens
  co_return co_await examples::fetch_page(port, n);
}

ferry::task<int> main_task() {
  examples::page_server server(co_await boost::asio::this_coro::executor, 20ms);
  ferry::semaphore limit(3);

  std::vector<ferry::task<std::string>> fetches;
  for (long n = 0; n < 12; ++n) fetches.push_back(limited_fetch(limit, server.port(), n));
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::string> pages = co_await ferry::gather(std::move(fetches));
  const auto took =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started);

  for (const auto& page : pages) std::printf("  %s\n", page.c_str());
  std::printf("12 fetches, at most %d at once at the server, in %.0f ms (12 x 20 ms / 3 = 80 ms)\n",
              server.peak_concurrency(),
              took.count());

  // One fetch fails: gather cancels the others, waits for them, and rethrows the failure.
  std::vector<ferry::task<std::string>> doomed;
  for (long n : {1L, 2L, -3L, 4L}) doomed.push_back(limited_fetch(limit, server.port(), n));
  std::string failure;
  try {
    co_await ferry::gather(std::move(doomed));
  } catch (const std::runtime_error& e) {
    failure = e.what();
  }
  std::printf("a failing fetch: gather threw \"%s\"; permits free again: %zu of 3\n",
              failure.c_str(),
              limit.available());
  server.stop();

  const bool ok = pages.size() == 12 && pages[5].rfind("page 5:", 0) == 0 &&
                  server.peak_concurrency() <= 3 && failure == "error: no page -3" &&
                  limit.available() == 3;
  std::printf("%s\n", ok ? "all checks passed" : "CHECK FAILED");
  co_return ok ? 0 : 1;
}

int main() { return ferry::run(main_task()); }
