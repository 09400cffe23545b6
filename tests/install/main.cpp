// Consumer of the installed ferry package: offloads one computation from the event loop to the
// work-stealing pool. Exits 0 iff the offload resumed the handler with the right result.
#include <cstdio>
#include <exception>
#include <ferry/ferry.hpp>

namespace {

ferry::task<int> offload_answer() {
  const int answer = co_await ferry::offload([] { return 21 * 2; });
  if (answer != 42) {
    std::fprintf(stderr, "ferry install test: offload returned %d, expected 42\n", answer);
    co_return 1;
  }
  co_return 0;
}

}  // namespace

int main() {
  try {
    const int rc = ferry::run(offload_answer());
    if (rc == 0) {
      std::printf("ferry install test: offload returned 42\n");
    }
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ferry install test: exception: %s\n", e.what());
    return 1;
  }
}
