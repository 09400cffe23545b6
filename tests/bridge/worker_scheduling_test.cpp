// tests/bridge/worker_scheduling_test.cpp — a pool's threads run at the scheduling of the thread
// that made the pool, not at that of the thread that happened to start them: a loop at
// SCHED_FIFO that gives the pools their first work must not make their workers real-time.
//
// Each test runs in a process of its own (ctest), so the pools' threads are started by the
// thread the test chooses. Setting a real-time policy needs privileges: without them the tests
// say so and skip.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>
#include <cerrno>
#include <cstring>
#include <ferry/ferry.hpp>
#include <string>
#include <thread>

namespace asio = boost::asio;

namespace {

struct scheduling {
  int policy = -1;
  int priority = -1;
  int nice = 0;
  bool operator==(const scheduling&) const = default;
};

// The kernel's view of the calling thread (sched_getscheduler(0)), not glibc's cached copy.
scheduling this_thread_scheduling() {
  scheduling s;
  sched_param param{};
  s.policy = ::sched_getscheduler(0);
  ::sched_getparam(0, &param);
  s.priority = param.sched_priority;
  s.nice = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)));
  return s;
}

// Puts the calling thread at SCHED_FIFO 1 the way `chrt -f -p 1 <tid>` does (sched_setscheduler
// on the thread id, behind glibc's back); the reason when the system does not permit it.
std::string make_this_thread_fifo() {
  sched_param param{};
  param.sched_priority = 1;
  const int rc =
      ::sched_setscheduler(static_cast<pid_t>(::syscall(SYS_gettid)), SCHED_FIFO, &param);
  return rc == 0 ? std::string() : std::string(std::strerror(errno));
}

std::string describe(const scheduling& s) {
  return "policy " + std::to_string(s.policy) + " priority " + std::to_string(s.priority) +
         " nice " + std::to_string(s.nice);
}

}  // namespace

TEST(WorkerScheduling, CpuPoolWorkersStartedByARealTimeThreadRunAtThePoolsScheduling) {
  const scheduling creator = this_thread_scheduling();
  ferry::cpu_pool pool(2);
  std::string refused;
  scheduling submitter, worker;
  std::thread([&] {
    refused = make_this_thread_fifo();
    if (!refused.empty()) return;
    submitter = this_thread_scheduling();
    // The pool's first job: oneTBB starts its workers from this (real-time) thread.
    worker =
        asio::post(pool.get_executor(), asio::use_future([] { return this_thread_scheduling(); }))
            .get();
  }).join();
  if (!refused.empty()) GTEST_SKIP() << "SCHED_FIFO not permitted here: " << refused;
  ASSERT_EQ(submitter.policy, SCHED_FIFO);
  EXPECT_EQ(worker, creator) << "worker: " << describe(worker)
                             << "; creator: " << describe(creator);
}

TEST(WorkerScheduling, BlockingPoolThreadsStartedByARealTimeThreadRunAtThePoolsScheduling) {
  const scheduling creator = this_thread_scheduling();
  ferry::blocking_pool pool(4);
  std::string refused;
  scheduling worker;
  std::thread([&] {
    refused = make_this_thread_fifo();
    if (!refused.empty()) return;
    // No thread is idle: the pool starts one from this (real-time) thread.
    worker =
        asio::post(pool.get_executor(), asio::use_future([] { return this_thread_scheduling(); }))
            .get();
  }).join();
  if (!refused.empty()) GTEST_SKIP() << "SCHED_FIFO not permitted here: " << refused;
  EXPECT_EQ(worker, creator) << "worker: " << describe(worker)
                             << "; creator: " << describe(creator);
}

// The shape of a latency-critical server: its io thread put at SCHED_FIFO, then offload and
// to_thread from a handler on it.
TEST(WorkerScheduling, OffloadAndToThreadFromARealTimeLoopRunAtTheRuntimesScheduling) {
  const scheduling creator = this_thread_scheduling();
  ferry::runtime rt({.cpu_threads = 2});
  std::string refused;
  scheduling loop, cpu, blocking;
  rt.run([&]() -> ferry::task<void> {
    refused = make_this_thread_fifo();  // the runtime's io thread
    if (!refused.empty()) co_return;
    loop = this_thread_scheduling();
    cpu = co_await ferry::offload([] { return this_thread_scheduling(); });
    blocking = co_await ferry::to_thread([] { return this_thread_scheduling(); });
  }());
  if (!refused.empty()) GTEST_SKIP() << "SCHED_FIFO not permitted here: " << refused;
  ASSERT_EQ(loop.policy, SCHED_FIFO);
  EXPECT_EQ(cpu, creator) << "cpu worker: " << describe(cpu);
  EXPECT_EQ(blocking, creator) << "blocking thread: " << describe(blocking);
}

// The pool's `nice_increment` is counted from its creator's nice value, whoever starts the workers.
TEST(WorkerScheduling, CpuPoolNiceIsCountedFromTheCreatingThread) {
  const scheduling creator = this_thread_scheduling();
  if (creator.nice > 16) GTEST_SKIP() << "the test process already runs at nice " << creator.nice;
  ferry::cpu_pool pool(1, 0, ferry::cpu_pool::default_spin, /*nice_increment=*/3);
  const scheduling worker =
      asio::post(pool.get_executor(), asio::use_future([] { return this_thread_scheduling(); }))
          .get();
  EXPECT_EQ(worker.nice, creator.nice + 3);
  EXPECT_EQ(worker.policy, creator.policy);
}
