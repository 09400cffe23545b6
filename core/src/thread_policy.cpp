// ferry/core/src/thread_policy.cpp — recording and applying a pool's thread scheduling.
#include "ferry/core/detail/thread_policy.hpp"

#include <algorithm>
#include <atomic>
#if defined(__linux__)
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#endif

namespace ferry::detail {

namespace {
std::atomic<std::uint64_t> next_id{1};
}  // namespace

thread_policy thread_policy::of_this_thread(int nice_increment) noexcept {
  thread_policy p;
  p.id = next_id.fetch_add(1, std::memory_order_relaxed);
#if defined(__linux__)
  // The kernel's view through sched_getscheduler(0), the calling thread: glibc's
  // pthread_getschedparam answers from a copy cached in the thread's descriptor, which a
  // `chrt -p <tid>` from outside never updates (and which a new thread copies from its creator).
  sched_param param{};
  const int policy = ::sched_getscheduler(0);
  if (policy >= 0 && ::sched_getparam(0, &param) == 0) {
    p.policy = policy;
    p.priority = param.sched_priority;
  } else {
    p.policy = SCHED_OTHER;
  }
  errno = 0;
  const int base = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)));
  p.nice = std::min(19, (errno == 0 ? base : 0) + nice_increment);
#else
  p.nice = nice_increment;
#endif
  return p;
}

void thread_policy::apply_to_this_thread() const noexcept {
  thread_local std::uint64_t applied = 0;
  if (applied == id) return;
  applied = id;
#if defined(__linux__)
  sched_param param{};
  const int policy_now = ::sched_getscheduler(0);  // the kernel's, not glibc's cached copy
  if (policy_now >= 0 && ::sched_getparam(0, &param) == 0 &&
      (policy_now != policy || param.sched_priority != priority)) {
    sched_param wanted{};
    wanted.sched_priority = priority;
    ::sched_setscheduler(0, policy, &wanted);  // EPERM: left as it is
  }
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  errno = 0;
  const int nice_now = ::getpriority(PRIO_PROCESS, tid);
  if (errno == 0 && nice_now != nice) ::setpriority(PRIO_PROCESS, tid, nice);  // EACCES: left
#endif
}

}  // namespace ferry::detail
