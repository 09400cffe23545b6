// Compiled (not run) by the thread_safety.* tests of a clang build: without FERRY_TSA_VIOLATION
// it must compile cleanly under -Wthread-safety -Werror; with FERRY_TSA_VIOLATION=<n> it must
// be rejected with the diagnostic the test expects. A compiler that stopped seeing ferry's
// annotations would accept the violations and fail those tests.
#include <condition_variable>

#include "ferry/detail/thread_annotations.hpp"

namespace {

class counter {
 public:
  void add() {
    ferry::detail::lock_guard lock(mutex_);
    bump_locked();
  }

  void add_twice() {
    ferry::detail::unique_lock lock(mutex_);
    ++value_;
    lock.unlock();
#if FERRY_TSA_VIOLATION == 2
    ++value_;  // after unlock
#endif
    lock.lock();
    ++value_;
  }

  void wait_positive() {
    ferry::detail::unique_lock lock(mutex_);
    changed_.wait(lock.native(), [this]() FERRY_REQUIRES(mutex_) { return value_ > 0; });
  }

#if FERRY_TSA_VIOLATION == 1
  void add_unlocked() { ++value_; }
#elif FERRY_TSA_VIOLATION == 3
  void add_unlocked() { bump_locked(); }
#endif

 private:
  void bump_locked() FERRY_REQUIRES(mutex_) { ++value_; }

  ferry::detail::mutex mutex_;
  std::condition_variable changed_;
  int value_ FERRY_GUARDED_BY(mutex_) = 0;
};

}  // namespace

int main() {
  counter c;
  c.add();
  c.add_twice();
  c.wait_positive();
}
