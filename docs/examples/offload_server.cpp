// docs/examples/offload_server.cpp — CPU-heavy requests without a blocked event loop.
//
// What it shows. One I/O thread serves a "heartbeat" timer (a stand-in for every socket and
// timer a server has) while 16 requests each crunch ~30 ms of numbers, a legacy blocking call
// sleeps 100 ms, and a long computation is cancelled by a 30 ms timeout:
//
//   co_await ferry::offload(f)          CPU work on the work-stealing pool (oneTBB); a nested
//                                       tbb::parallel_for inside f spreads over idle workers.
//   co_await ferry::to_thread(f)        a blocking call on the elastic blocking pool.
//   co_await (ferry::offload(f) || ferry::sleep(30ms))
//                                       a timeout: the timer wins, f's std::stop_token is
//                                       stopped, and the handler resumes only once f returned.
//
// Every handler resumes on the I/O thread (checked). The heartbeat measures its own lateness
// (loop lag = actual wake time - scheduled wake time): while hundreds of milliseconds of CPU
// work run offloaded, the lag stays near the timer's resolution. A second, smaller phase then
// does the same work inline on the loop — the mistake offload exists to avoid — and the lag
// jumps to the length of a request.
//
// The program exits 0 when every correctness check passes (right threads, same results offloaded
// and inline, cancellation reached f) and 1 otherwise. Timings are printed, never checked: it
// runs as a ctest smoke test on loaded machines.
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ferry/ferry.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace boost::asio::experimental::awaitable_operators;
using clock_type = std::chrono::steady_clock;

namespace {

double ms_between(clock_type::time_point from, clock_type::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// --- the CPU work: counting primes by trial division ------------------------------------------

bool is_prime(std::uint64_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (std::uint64_t d = 3; d * d <= n; d += 2) {
    if (n % d == 0) return false;
  }
  return true;
}

std::uint64_t count_primes(std::uint64_t first, std::uint64_t last) {
  std::uint64_t count = 0;
  for (std::uint64_t n = first; n < last; ++n) count += is_prime(n) ? 1 : 0;
  return count;
}

// Request `id` counts the primes in its own range of 50,000 numbers (~30 ms on our machines).
constexpr std::uint64_t range_size = 50'000;
std::uint64_t range_first(int id) {
  return 10'000'000 + static_cast<std::uint64_t>(id) * range_size;
}

// --- which thread is which ----------------------------------------------------------------------

/// Short labels (io-0, cpu-1, blocking-0) for threads, numbered per kind as they are first seen.
class thread_labels {
 public:
  explicit thread_labels(ferry::runtime& rt) : rt_(rt) {}

  std::string current() {
    std::lock_guard lock(mutex_);
    auto [it, inserted] = labels_.try_emplace(std::this_thread::get_id());
    if (inserted) {
      const char* kind = kind_of_this_thread();
      it->second = std::string(kind) + "-" + std::to_string(next_[kind]++);
    }
    return it->second;
  }

 private:
  const char* kind_of_this_thread() const {
    if (rt_.running_in_this_thread()) return "io";
    // Workers of the cpu_pool's oneTBB arena (also while running stolen parallel_for chunks).
    if (tbb::this_task_arena::current_thread_index() != tbb::task_arena::not_initialized) {
      return "cpu";
    }
    if (rt_.blocking().running_in_this_thread()) return "blocking";
    return "other";
  }

  ferry::runtime& rt_;
  std::mutex mutex_;
  std::unordered_map<std::thread::id, std::string> labels_;
  std::map<std::string, int> next_;
};

// --- shared state of the demo (touched on the io thread only, except where noted) --------------

struct work_result {  // what an offloaded request computes (default-constructible, movable)
  std::uint64_t primes = 0;
  std::string ran_on;     // the thread that ran f
  std::string helpers;    // for parallel_for: every thread that ran a chunk
  double compute_ms = 0;  // wall time inside f
  double cpu_ms = 0;      // CPU time spent (sum over chunks when parallel)
};

struct request_report {
  int id = 0;
  bool parallel = false;
  bool on_loop = false;  // computed inline on the io thread (phase 2)
  work_result work;
  double latency_ms = 0;  // from co_await to resumption, queueing included
  std::string resumed_on;
  bool resumed_on_io = false;
};

struct lag_stats {
  std::vector<double> samples_ms;

  double max() const {
    return samples_ms.empty() ? 0 : *std::max_element(samples_ms.begin(), samples_ms.end());
  }
  double percentile(double q) const {
    if (samples_ms.empty()) return 0;
    std::vector<double> sorted = samples_ms;
    std::sort(sorted.begin(), sorted.end());
    return sorted[static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1) + 0.5)];
  }
};

struct demo {
  explicit demo(ferry::runtime& rt) : labels(rt) {}

  thread_labels labels;
  std::thread::id io_thread = std::this_thread::get_id();
  int phase = 0;  // 0: offloaded, 1: inline
  bool stopping = false;
  lag_stats lag[2];
  std::vector<request_report> offloaded;
  std::vector<request_report> inline_requests;
  std::vector<std::string> failures;

  void check(bool ok, std::string what) {
    if (!ok) failures.push_back(std::move(what));
  }
  bool on_io_thread() const { return std::this_thread::get_id() == io_thread; }
};

// --- the coroutines -----------------------------------------------------------------------------

/// Ticks every 10 ms and records how late each tick is; stops when the demo is over.
ferry::task<void> heartbeat(demo& d) {
  while (!d.stopping) {
    const auto scheduled = clock_type::now() + 10ms;
    co_await ferry::sleep(10ms);
    d.lag[d.phase].samples_ms.push_back(ms_between(scheduled, clock_type::now()));
  }
}

/// Runs on a cpu_pool worker: the request's prime count, sequential or with a nested parallel_for.
work_result compute(demo& d, int id, bool parallel) {
  work_result r;
  r.ran_on = d.labels.current();
  const std::uint64_t first = range_first(id);
  const auto start = clock_type::now();
  if (!parallel) {
    r.primes = count_primes(first, first + range_size);
    r.cpu_ms = ms_between(start, clock_type::now());
  } else {
    std::atomic<std::uint64_t> primes{0};
    std::atomic<std::int64_t> cpu_ns{0};
    std::mutex helpers_mutex;
    std::set<std::string> helpers;
    tbb::parallel_for(tbb::blocked_range<std::uint64_t>(first, first + range_size, 1'000),
                      [&](const tbb::blocked_range<std::uint64_t>& chunk) {
                        const auto chunk_start = clock_type::now();
                        primes += count_primes(chunk.begin(), chunk.end());
                        cpu_ns += (clock_type::now() - chunk_start) / 1ns;
                        const std::string who = d.labels.current();
                        std::lock_guard lock(helpers_mutex);
                        helpers.insert(who);
                      });
    r.primes = primes;
    r.cpu_ms = static_cast<double>(cpu_ns.load()) / 1e6;
    for (const std::string& who : helpers) r.helpers += (r.helpers.empty() ? "" : "+") + who;
  }
  r.compute_ms = ms_between(start, clock_type::now());
  return r;
}

/// A request handler: the CPU work goes to the pool; the handler comes back to the loop.
ferry::task<void> handle_request(demo& d, int id, request_report& out) {
  out.id = id;
  // Requests 7 and 15 split their range with a nested tbb::parallel_for: a worker that runs out
  // of requests steals chunks of them.
  out.parallel = id % 8 == 7;
  const auto start = clock_type::now();
  // offload(f, args...): the arguments are copied into the operation (std::ref passes d by
  // reference), as with std::thread — the form that is safe on every compiler.
  out.work = co_await ferry::offload(compute, std::ref(d), id, out.parallel);
  out.latency_ms = ms_between(start, clock_type::now());
  out.resumed_on = d.labels.current();
  out.resumed_on_io = d.on_io_thread();
}

/// The same request done wrong: the CPU work runs on the loop thread itself.
ferry::task<void> handle_request_inline(demo& d, int id, request_report& out) {
  out.id = id;
  out.on_loop = true;
  const auto start = clock_type::now();
  out.work.primes = count_primes(range_first(id), range_first(id) + range_size);
  out.work.ran_on = d.labels.current();
  out.work.compute_ms = out.work.cpu_ms = ms_between(start, clock_type::now());
  out.latency_ms = out.work.compute_ms;
  out.resumed_on = out.work.ran_on;
  out.resumed_on_io = d.on_io_thread();
  co_return;
}

/// A legacy synchronous call (here a 100 ms sleep) on the blocking pool.
ferry::task<void> legacy_call(demo& d) {
  const auto start = clock_type::now();
  const std::string ran_on = co_await ferry::to_thread([&d] {
    std::this_thread::sleep_for(100ms);
    return d.labels.current();
  });
  const double took = ms_between(start, clock_type::now());
  std::printf("  to_thread: a blocking 100 ms call ran on %s, took %.1f ms, resumed on %s\n",
              ran_on.c_str(),
              took,
              d.labels.current().c_str());
  d.check(ran_on.rfind("blocking-", 0) == 0, "to_thread ran on " + ran_on);
  d.check(d.on_io_thread(), "to_thread resumed off the io thread");
}

/// What the cancelled computation leaves behind for the report (f writes it on a pool thread;
/// the handler reads it after f returned, which the offload guarantees).
struct cancel_probe {
  bool started = false;
  bool saw_stop = false;
  std::string ran_on;
  std::uint64_t numbers_checked = 0;
  clock_type::time_point stop_requested_at{};
  clock_type::time_point returned_at{};
};

/// A computation that would run for 10 s, cut short by a 30 ms timeout. f polls its stop token.
ferry::task<void> cancelled_computation(demo& d) {
  cancel_probe probe;
  const auto start = clock_type::now();
  auto long_job = [&probe, &d](std::stop_token stop) {
    probe.started = true;
    probe.ran_on = d.labels.current();
    // Runs on the thread that requests the stop (the io thread), when the timeout fires.
    std::stop_callback on_stop(stop, [&probe] { probe.stop_requested_at = clock_type::now(); });
    const auto give_up = clock_type::now() + 10s;  // reached only if cancellation is broken
    std::uint64_t n = 1'000'000'000;
    std::uint64_t primes = 0;
    while (!stop.stop_requested() && clock_type::now() < give_up) {
      primes += count_primes(n, n + 200);  // ~0.2 ms between two looks at the token
      n += 200;
    }
    probe.saw_stop = stop.stop_requested();
    probe.numbers_checked = n - 1'000'000'000;
    probe.returned_at = clock_type::now();
    return primes;
  };
  const auto winner = co_await (ferry::offload(long_job) || ferry::sleep(30ms));
  const auto resumed_at = clock_type::now();

  std::printf("  timeout:   offload(f) || sleep(30ms) -> %s won after %.1f ms; resumed on %s\n",
              winner.index() == 1 ? "the timer" : "f",
              ms_between(start, resumed_at),
              d.labels.current().c_str());
  if (probe.started) {
    std::printf(
        "             f ran on %s, checked %llu numbers, saw the stop %.2f ms after it was "
        "requested; the handler resumed only after f returned\n",
        probe.ran_on.c_str(),
        static_cast<unsigned long long>(probe.numbers_checked),
        ms_between(probe.stop_requested_at, probe.returned_at));
    d.check(probe.saw_stop, "the stop request never reached f");
    d.check(resumed_at >= probe.returned_at, "the handler resumed before f returned");
  } else {
    std::printf("             f was still queued when the timer fired: it never ran\n");
  }
  d.check(winner.index() == 1, "f outran a 30 ms timer although it only stops when told to");
  d.check(d.on_io_thread(), "the timeout resumed off the io thread");
}

/// Runs `tasks` concurrently on this coroutine's executor and waits for every one (with Asio's
/// parallel group; ferry::gather will say it in one word).
ferry::task<void> join_all(std::vector<ferry::task<void>> tasks) {
  const auto ex = co_await asio::this_coro::executor;
  using spawn_op = decltype(asio::co_spawn(ex, std::declval<ferry::task<void>>(), asio::deferred));
  std::vector<spawn_op> ops;
  for (auto& t : tasks) ops.push_back(asio::co_spawn(ex, std::move(t), asio::deferred));
  auto [order, errors] = co_await asio::experimental::make_parallel_group(std::move(ops))
                             .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

ferry::task<void> both_phases(demo& d) {
  // Phase 1: everything offloaded, all at once. The cancelled computation is started first so
  // that it reaches a worker before the requests fill the pool's queue.
  std::printf("phase 1: 16 requests offloaded, one blocking call, one timeout (loop stays free)\n");
  d.offloaded.resize(16);
  std::vector<ferry::task<void>> work;
  work.push_back(cancelled_computation(d));
  work.push_back(legacy_call(d));
  for (int id = 0; id < 16; ++id) work.push_back(handle_request(d, id, d.offloaded[id]));
  co_await join_all(std::move(work));

  // Phase 2: four of the same requests (12 to 15) computed inline on the loop, for contrast.
  d.phase = 1;
  d.inline_requests.resize(4);
  work.clear();
  for (int i = 0; i < 4; ++i) {
    work.push_back(handle_request_inline(d, 12 + i, d.inline_requests[i]));
  }
  co_await join_all(std::move(work));
  co_await ferry::sleep(20ms);  // a couple of undisturbed heartbeats after the storm
  d.stopping = true;
}

// --- the report ---------------------------------------------------------------------------------

void print_requests(const std::vector<request_report>& requests) {
  std::printf("  %-4s %-10s %-8s %-26s %10s %10s %10s  %s\n",
              "req",
              "mode",
              "primes",
              "ran on",
              "compute",
              "cpu time",
              "latency",
              "resumed on");
  for (const request_report& r : requests) {
    const std::string where = r.work.helpers.empty()
                                  ? r.work.ran_on
                                  : r.work.ran_on + " [chunks: " + r.work.helpers + "]";
    std::printf("  %-4d %-10s %-8llu %-26s %7.1f ms %7.1f ms %7.1f ms  %s%s\n",
                r.id,
                r.on_loop    ? "inline"
                : r.parallel ? "parallel"
                             : "sequential",
                static_cast<unsigned long long>(r.work.primes),
                where.c_str(),
                r.work.compute_ms,
                r.work.cpu_ms,
                r.latency_ms,
                r.resumed_on.c_str(),
                r.resumed_on_io ? "" : "  <-- WRONG THREAD");
  }
}

void print_lag(const char* title, const lag_stats& lag, double blocked_ms) {
  std::printf(
      "  %s: %zu heartbeats, loop lag p50 %.2f ms, p99 %.2f ms, max %.2f ms "
      "(CPU work in this phase: %.1f ms)\n",
      title,
      lag.samples_ms.size(),
      lag.percentile(0.50),
      lag.percentile(0.99),
      lag.max(),
      blocked_ms);
}

double total_cpu_ms(const std::vector<request_report>& requests) {
  double sum = 0;
  for (const request_report& r : requests) sum += r.work.cpu_ms;
  return sum;
}

ferry::task<int> serve() {
  ferry::runtime& rt = *ferry::runtime::current();
  demo d(rt);
  std::printf("offload_server: 1 io thread, %zu cpu workers, loop lag sampled every 10 ms\n\n",
              rt.cpu().concurrency());

  co_await (heartbeat(d) && both_phases(d));

  std::printf("\nphase 1 requests (offloaded):\n");
  print_requests(d.offloaded);
  std::printf("\nphase 2 requests (inline on the loop, for contrast):\n");
  print_requests(d.inline_requests);

  for (const request_report& r : d.offloaded) {
    const std::string id = std::to_string(r.id);
    d.check(r.resumed_on_io, "request " + id + " resumed on " + r.resumed_on);
    d.check(r.work.ran_on.rfind("cpu-", 0) == 0, "request " + id + " ran on " + r.work.ran_on);
  }
  for (const request_report& r : d.inline_requests) {
    // Same range, same count: offloaded (and split by parallel_for for 15) or not.
    d.check(r.work.primes == d.offloaded[r.id].work.primes,
            "request " + std::to_string(r.id) + " counted differently inline and offloaded");
  }
  d.check(!d.lag[0].samples_ms.empty() || !d.lag[1].samples_ms.empty(), "the heartbeat never ran");

  const double offloaded_cpu = total_cpu_ms(d.offloaded);
  std::printf("\nloop health:\n");
  print_lag("offloaded", d.lag[0], offloaded_cpu);
  print_lag("inline   ", d.lag[1], total_cpu_ms(d.inline_requests));
  std::printf(
      "  -> offloaded, %.0f ms of CPU work left the loop at most %.2f ms late;\n"
      "     inline, %.0f ms of it made the loop %.2f ms late.\n",
      offloaded_cpu,
      d.lag[0].max(),
      total_cpu_ms(d.inline_requests),
      d.lag[1].max());

  if (!d.failures.empty()) {
    std::printf("\nFAILED checks:\n");
    for (const std::string& f : d.failures) std::printf("  - %s\n", f.c_str());
    co_return 1;
  }
  std::printf("\nall checks passed\n");
  co_return 0;
}

}  // namespace

int main() {
  try {
    return ferry::run(serve(), ferry::runtime_options{.io_threads = 1});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "offload_server: %s\n", e.what());
    return 1;
  }
}
