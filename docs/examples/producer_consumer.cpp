// docs/examples/producer_consumer.cpp — producers and consumers around a bounded queue.
//
// asyncio:
//     q = asyncio.Queue(maxsize=8)
//     producers put work, consumers get it and call q.task_done(); await q.join();
//     a Lock guards shared statistics, an Event says "stop", a Barrier starts producers together,
//     a Condition lets a monitor wait until half of the work is done.
//
// ferry: the same five primitives, on a runtime with two io threads. Producers and consumers run
// on strands of their own, so they really run in parallel; the queue, the mutex, the event, the
// condition and the barrier are shared between threads. The CPU part of each job is offloaded.
#include <cstdint>
#include <cstdio>
#include <ferry/ferry.hpp>
#include <ferry/io/queue.hpp>
#include <map>
#include <string>

using namespace std::chrono_literals;
namespace asio = boost::asio;

constexpr int kProducers = 3;
constexpr int kConsumers = 2;
constexpr int kJobsPerProducer = 20;
constexpr int kJobs = kProducers * kJobsPerProducer;

struct shared_state {
  ferry::queue<int> jobs{8};  // bounded: producers wait while it is full
  ferry::barrier start{kProducers};
  ferry::mutex stats_mutex;
  std::map<std::string, int> per_consumer;  // guarded by stats_mutex
  long checksum = 0;                        // guarded by stats_mutex
  int done = 0;                             // guarded by progress's mutex
  ferry::condition progress;
  ferry::event stop;  // set once the work is over
};

ferry::task<void> producer(shared_state& s, int id) {
  co_await s.start.arrive_and_wait();  // all producers begin together
  for (int i = 0; i < kJobsPerProducer; ++i) {
    co_await s.jobs.put(id * 1000 + i);  // waits while the queue is full
  }
}

ferry::task<void> consumer(shared_state& s, std::string name) {
  for (;;) {
    int job = 0;
    try {
      job = co_await s.jobs.get();
    } catch (const ferry::queue_closed&) {
      co_return;  // closed and drained
    }
    const long value = co_await ferry::offload(
        [](int job) {
          std::uint64_t x = static_cast<std::uint64_t>(job);
          for (int i = 0; i < 10000; ++i)
            x = (x * 6364136223846793005ULL + 1442695040888963407ULL) >> 1;
          return static_cast<long>(x & 0xffff);
        },
        job);  // offload(f, args...): the job number is an argument of f
    {
      auto lock = co_await s.stats_mutex.lock();
      ++s.per_consumer[name];
      s.checksum += value;
    }
    {
      auto lock = co_await s.progress.lock();
      ++s.done;
      s.progress.notify_all();
    }
    s.jobs.task_done();
  }
}

ferry::task<void> monitor(shared_state& s) {
  auto lock = co_await s.progress.lock();
  co_await s.progress.wait(lock, [&] { return s.done >= kJobs / 2; });
  std::printf("  monitor: half of the %d jobs are done\n", kJobs);
}

ferry::task<void> reporter(shared_state& s) {
  co_await s.stop.wait();
  std::printf("  reporter: stop was signalled, the queue holds %zu jobs\n", s.jobs.size());
}

ferry::task<int> main_task(ferry::runtime& rt) {
  shared_state s;
  // Groups on the multi-threaded io_context: each child gets a strand of its own, so children
  // run in parallel on both io threads.
  ferry::task_group workers{rt.get_executor()};
  workers.spawn(monitor(s));
  workers.spawn(reporter(s));
  for (int c = 0; c < kConsumers; ++c) {
    workers.spawn(consumer(s, "consumer-" + std::to_string(c)));
  }
  ferry::task_group producers{rt.get_executor()};
  for (int p = 0; p < kProducers; ++p) producers.spawn(producer(s, p));

  co_await producers.join();  // everything is in the queue (or already taken)
  co_await s.jobs.join();     // ... and every job has been processed (task_done)
  s.jobs.close();             // consumers see queue_closed and return
  s.stop.set();
  co_await workers.join();

  for (const auto& [name, count] : s.per_consumer) {
    std::printf("  %s processed %d jobs\n", name.c_str(), count);
  }
  int total = 0;
  for (const auto& [name, count] : s.per_consumer) total += count;
  std::printf("%d jobs produced, %d processed, checksum %ld, queue empty: %s\n",
              kJobs,
              total,
              s.checksum,
              s.jobs.empty() ? "yes" : "no");
  const bool ok = total == kJobs && s.done == kJobs && s.jobs.empty() && s.stop.is_set();
  std::printf("%s\n", ok ? "all checks passed" : "CHECK FAILED");
  co_return ok ? 0 : 1;
}

int main() {
  ferry::runtime rt({.io_threads = 2});
  return rt.run(main_task(rt));
}
