// Consumer of the installed ferry package: offloads one computation from the event loop to the
// work-stealing pool, with and without arguments. Exits 0 iff each offload resumed the handler with
// the right result.
#include <cstdio>
#include <exception>
#include <ferry/ferry.hpp>
#include <memory>

namespace {

ferry::task<int> offload_answer() {
  const int answer = co_await ferry::offload([] { return 21 * 2; });
  if (answer != 42) {
    std::fprintf(stderr, "ferry install test: offload returned %d, expected 42\n", answer);
    co_return 1;
  }
  // f plus arguments: the data moves into the operation (the form that is safe on g++ 12).
  const int doubled = co_await ferry::offload([](std::unique_ptr<int> p) { return *p * 2; },
                                              std::make_unique<int>(21));
  if (doubled != 42) {
    std::fprintf(stderr, "ferry install test: offload(f, arg) returned %d, expected 42\n", doubled);
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
