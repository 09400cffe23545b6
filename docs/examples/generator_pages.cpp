// docs/examples/generator_pages.cpp — an async generator streaming pages.
//
// asyncio:
//     async def pages(client):
//         n = 0
//         while (page := await client.fetch(n)) is not None:
//             yield page
//             n += 1
//     async for page in pages(client):
//         ...
//
// ferry: one body with `co_await` (a fetch over TCP from a local server) and `co_yield`; the
// consumer pulls with `while (auto p = co_await g.next())`. The body is lazy: each next() runs it
// to its next co_yield. Breaking out of the loop early destroys the body cleanly — a second
// consumer stops after two pages to show it.
#include <cstdio>
#include <ferry/ferry.hpp>
#include <ferry/io/generator.hpp>
#include <string>
#include <vector>

#include "support/page_server.hpp"

using namespace std::chrono_literals;

// Streams pages 0..count-1; stops early at the first page the server refuses.
ferry::generator<std::string> pages(unsigned short port, long count, int& fetched) {
  for (long n = 0; n < count; ++n) {
    std::string page = co_await examples::fetch_page(port, n);
    ++fetched;
    co_yield std::move(page);
  }
}

ferry::task<int> main_task() {
  examples::page_server server(co_await boost::asio::this_coro::executor, 5ms);

  int fetched_all = 0;
  std::vector<std::string> all;
  auto stream = pages(server.port(), 6, fetched_all);
  while (auto page = co_await stream.next()) {
    std::printf("  got %s\n", page->c_str());
    all.push_back(std::move(*page));
  }

  // A consumer that needs only two pages: the generator fetches no more than it is asked for.
  int fetched_two = 0;
  {
    auto partial = pages(server.port(), 100, fetched_two);
    for (int i = 0; i < 2; ++i) co_await partial.next();
  }  // the body is destroyed at its co_yield
  std::printf("a consumer that stopped after 2 pages made the generator fetch %d pages\n",
              fetched_two);
  server.stop();

  const bool ok =
      all.size() == 6 && fetched_all == 6 && all[3].rfind("page 3:", 0) == 0 && fetched_two == 2;
  std::printf("%s\n", ok ? "all checks passed" : "CHECK FAILED");
  co_return ok ? 0 : 1;
}

int main() { return ferry::run(main_task()); }
