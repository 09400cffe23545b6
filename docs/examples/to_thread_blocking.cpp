// docs/examples/to_thread_blocking.cpp — a blocking call through to_thread, the loop stays free.
//
// asyncio:
//     data = await asyncio.to_thread(legacy_read, path)
//
// ferry: `co_await ferry::to_thread(legacy_read, path)` runs the call on the runtime's elastic
// blocking pool — never on the work-stealing CPU pool, where a blocked worker would be a lost core
// — and resumes the coroutine on its I/O thread. Here a synchronous "legacy" function writes and
// reads a file with a deliberate 50 ms stall, four times at once, while a timer on the loop keeps
// ticking.
#include <unistd.h>

#include <cstdio>
#include <ferry/ferry.hpp>
#include <ferry/io/gather.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

using namespace std::chrono_literals;

// A blocking function, as a legacy synchronous library would offer it.
std::string legacy_roundtrip(const std::filesystem::path& path, const std::string& text) {
  {
    std::ofstream out(path);
    out << text;
  }
  std::this_thread::sleep_for(50ms);  // the slow disk / remote mount / synchronous driver
  std::ifstream in(path);
  std::stringstream all;
  all << in.rdbuf();
  std::filesystem::remove(path);
  return all.str();
}

ferry::task<int> main_task(ferry::runtime& rt) {
  const auto dir = std::filesystem::temp_directory_path();
  int ticks = 0;
  bool reading = true;
  auto ticker = [&]() -> ferry::task<void> {
    while (reading) {
      co_await ferry::sleep(5ms);
      ++ticks;
    }
  };
  auto one = [&](int i) -> ferry::task<std::string> {
    const auto path =
        dir / ("ferry_to_thread_" + std::to_string(::getpid()) + "_" + std::to_string(i) + ".txt");
    // to_thread(f, args...), as asyncio's to_thread(func, *args): path and the record move into
    // the operation, and legacy_roundtrip runs on a blocking thread with them.
    co_return co_await ferry::to_thread(legacy_roundtrip, path, "record " + std::to_string(i));
  };
  auto readers =
      [&]() -> ferry::task<std::tuple<std::string, std::string, std::string, std::string>> {
    auto r = co_await ferry::gather(one(0), one(1), one(2), one(3));
    reading = false;
    co_return r;
  };
  const auto started = std::chrono::steady_clock::now();
  auto [results, ignored] = co_await ferry::gather(readers(), ticker());
  const auto took =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started);
  const auto& [a, b, c, d] = results;
  std::printf(
      "read back: \"%s\", \"%s\", \"%s\", \"%s\"\n", a.c_str(), b.c_str(), c.c_str(), d.c_str());
  std::printf(
      "4 blocking calls of 50 ms each took %.0f ms together; the loop ticked %d times "
      "meanwhile; blocking threads used at peak: %zu\n",
      took.count(),
      ticks,
      rt.stats().blocking.peak_threads);
  const bool ok = a == "record 0" && d == "record 3" && ticks > 0;
  std::printf("%s\n", ok ? "all checks passed" : "CHECK FAILED");
  co_return ok ? 0 : 1;
}

int main() {
  ferry::runtime rt;
  return rt.run(main_task(rt));
}
