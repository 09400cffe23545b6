// bench/offload_bench.cpp — W1 (offload round trip), W2 (offload throughput) and W3 (CPU-parallel
// efficiency) of docs/workloads.md: ferry against its baselines, in one binary so every figure is a
// ratio measured in the same run.
//
// Contenders (every one resumes the awaiting coroutine on its own I/O thread):
//  - Ferry:          ferry::runtime (io_threads = 1, cpu_threads = 2), main coroutine through
//                    `rt.run`, `co_await ferry::offload(f)`: coroutines on the bare io_context,
//                    the best case.
//  - FerryStrand:    the shape users write: W1's coroutine is a task_group child, W2's 1,024
//                    coroutines are task_group children, each on its own strand (a server's
//                    connections). FerryStrandIo2: the same with io_threads = 2.
//  - NaiveBridge:    a plain asio::io_context run by one thread, a `tbb::task_arena(2, 0)` under a
//                    `global_control(max_allowed_parallelism, 3)`; offload = `arena.enqueue(f)`,
//                    then `asio::post` back to the coroutine's executor, wrapped with
//                    `asio::async_initiate` (the bridge everybody writes first).
//  - AsioThreadPool: the same wrapper over `asio::thread_pool(2)`: post f, post back.
//  - StdAsync:       the same wrapper over `std::async(std::launch::async, f)`: one new thread per
//                    offload, which posts back; the operation keeps the std::future, whose
//                    destructor joins that thread, until the completion has arrived.
//  - TaskGroup:      the ceiling for W2 and W3: no loop, no hand-back; one thread runs a raw
//                    `tbb::task_group` in the default arena (that thread plus cores - 1 workers)
//                    and waits for it.
//
// W1 BM_Offload_RoundTrip_*: one coroutine on the I/O thread offloads `return v;` n times
//    (n = 100,000; env FERRY_BENCH_W1_N), each round trip timed with steady_clock after 1,000
//    warm-up calls; counters p50_us, p99_us, mean_us. One benchmark iteration = the whole run.
//    BM_CrossCore_PingPong: the machine's floor beside them — two threads handing one cache line
//    back and forth n times (p50_us, p99_us).
// W2 BM_Offload_Throughput{1us,0us}_*: 1,000,000 offloads (env FERRY_BENCH_W2_N) by 1,024
//    coroutines each offloading its share in sequence (so at most 1,024 in flight), each doing
//    ~1 µs of xorshift work (or none); counter ops_per_s. StdAsync runs a tenth of n (a thread
//    per offload: the full million would take ~20 s); ops/s is a rate, so it still compares.
//    TaskGroup: 1,024 chains of tasks, each link running one unit of work and then `run`ning the
//    chain's next link, so that at most 1,024 are in flight as well.
// W3 BM_Offload_Parallel_*: 64 jobs of 10 ms of xorshift work, all offloaded at once (64
//    coroutines, one offload each; TaskGroup: 64 `run`s), then await all. Counter efficiency =
//    ideal / wall, ideal = 64 x 10 ms / cores (the cores this process may run on).
// Every resumption is checked (right thread, right value), and so is every offloaded call (it
// must not run on the I/O thread): a failed check fails the benchmark.
//
// The loop. Every contender's io_context has its reactor (epoll) started, as a server's has: the
// baselines own an idle steady_timer, ferry's runtime a signal_set. Without one, an idle Asio
// thread sleeps on a condition variable instead of in epoll_wait, and a wake-up costs a futex
// call rather than eventfd + epoll_wait + epoll_ctl: ~5 us less per round trip here, a setting no
// real server (sockets, timers) runs in.
//
// The work kernel is calibrated at start-up (printed on stderr, and put in the JSON context).
//
//   offload_bench --benchmark_out=offload.json --benchmark_out_format=json
#include <benchmark/benchmark.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "ferry/ferry.hpp"
#include "work_kernel.hpp"

namespace {

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

// --- the work kernel (bench/work_kernel.hpp) --------------------------------------------------

using ferry_bench::calibrate;
using ferry_bench::env_size;
using ferry_bench::g_iterations_per_us;
using ferry_bench::iterations_for_us;
using ferry_bench::xorshift_work;

/// The number of cores this process may run on (its affinity mask).
std::size_t usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) {
    return std::max(1u, std::thread::hardware_concurrency());
  }
  return static_cast<std::size_t>(CPU_COUNT(&set));
}

/// Counts the calls made on an I/O thread (the contender's one loop thread, or for ferry any io
/// thread of a runtime): an offloaded function must run somewhere else.
struct off_loop_check {
  std::thread::id io_thread;
  std::atomic<std::size_t>* ran_on_io_thread;
  bool any_runtime_thread = false;
  void operator()() const noexcept {
    const bool on_loop = any_runtime_thread ? ferry::runtime::current() != nullptr
                                            : std::this_thread::get_id() == io_thread;
    if (on_loop) ran_on_io_thread->fetch_add(1, std::memory_order_relaxed);
  }
};

// The two functions every contender offloads (one instantiation each per contender).
struct identity_fn {
  int value;
  off_loop_check check;
  int operator()() const noexcept {
    check();
    return value;
  }
};

struct work_fn {
  std::uint64_t iterations;
  std::uint64_t seed;
  off_loop_check check;
  std::uint64_t operator()() const noexcept {
    check();
    return xorshift_work(iterations, seed);
  }
};

// --- the baselines' bridge: async_initiate over "submit f, post the result back" ----------------

/// What a submission hands back for the operation to keep until it completes: nothing for a pool;
/// for std::async, its std::future (destroying that future joins the thread).
struct no_ticket {};

/// Runs `f` through `submit` (a pool), then posts the completion to the handler's executor.
/// Completion signature void(std::exception_ptr, R), as ferry's. One heap allocation per call for
/// the state, plus whatever the pool and the post allocate: the plain way to write it.
/// The state stores the submission's ticket after `submit` returns: the state is freed by the
/// completion posted back to the io_context, whose only thread is the one running this
/// initiation, so the completion cannot run before the ticket is stored.
template <class Submit, class F, class Token>
auto hop_offload(Submit submit, F f, Token&& token) {
  using result_type = std::invoke_result_t<F&>;
  auto initiate = [](auto handler, Submit submit, F f) {
    using handler_type = decltype(handler);
    auto ex = asio::get_associated_executor(handler);
    // Holds outstanding work on the handler's executor while f is away, as an Asio op must.
    using work_type =
        std::decay_t<decltype(asio::prefer(ex, asio::execution::outstanding_work.tracked))>;
    struct state {
      handler_type handler;
      work_type work;
      F f;
      result_type result{};
      std::exception_ptr error;
      typename Submit::ticket_type ticket{};
    };
    auto* s = new state{std::move(handler),
                        asio::prefer(ex, asio::execution::outstanding_work.tracked),
                        std::move(f),
                        result_type{},
                        nullptr,
                        {}};
    s->ticket = submit([s] {
      try {
        s->result = s->f();
      } catch (...) {
        s->error = std::current_exception();
      }
      asio::post(s->work, [s] {
        std::unique_ptr<state> owned(s);
        auto handler = std::move(owned->handler);
        std::exception_ptr error = owned->error;
        result_type result = std::move(owned->result);
        owned.reset();
        std::move(handler)(error, std::move(result));
      });
    });
  };
  return asio::async_initiate<Token, void(std::exception_ptr, result_type)>(
      std::move(initiate), token, std::move(submit), std::move(f));
}

struct arena_submit {
  using ticket_type = no_ticket;
  tbb::task_arena* arena;
  template <class Fn>
  no_ticket operator()(Fn fn) const {
    arena->enqueue(std::move(fn));
    return {};
  }
};

struct thread_pool_submit {
  using ticket_type = no_ticket;
  asio::thread_pool* pool;
  template <class Fn>
  no_ticket operator()(Fn fn) const {
    asio::post(*pool, std::move(fn));
    return {};
  }
};

struct async_submit {
  using ticket_type = std::future<void>;
  template <class Fn>
  std::future<void> operator()(Fn fn) const {
    return std::async(std::launch::async, std::move(fn));
  }
};

/// Runs `main` on `io` from the calling thread (which becomes the I/O thread) until it completes.
template <class T>
T run_on(asio::io_context& io, ferry::task<T> main) {
  std::exception_ptr error;
  T value{};
  asio::co_spawn(io, std::move(main), [&](std::exception_ptr e, T v) {
    error = e;
    value = std::move(v);
  });
  io.restart();
  io.run();
  if (error) std::rethrow_exception(error);
  return value;
}

// --- the contenders: where the loop runs and how offload is spelled ----------------------------

/// A contender whose loop is one thread: resumptions must land on it, offloads anywhere else.
/// Its loop is an io_context of its own, run on the benchmark's thread.
struct single_loop_contender {
  static constexpr bool grouped = false;
  asio::io_context io{1};
  asio::steady_timer reactor{io};  // see "The loop" in the file comment

  const char* setup_error() const { return nullptr; }
  template <class T>
  T run(ferry::task<T> main) {
    return run_on(io, std::move(main));
  }
  bool on_loop(std::thread::id io_thread) const { return std::this_thread::get_id() == io_thread; }
  off_loop_check loop_check(std::thread::id io_thread, std::atomic<std::size_t>* count) const {
    return {io_thread, count, false};
  }
};

/// Runs `main` as the one child of a task_group (on the child's own strand), as a handler in a
/// server runs.
template <class T>
ferry::task<T> in_task_group_child(ferry::task<T> main) {
  ferry::task_group tg{co_await asio::this_coro::executor};
  auto handle = tg.spawn(std::move(main));
  co_await tg.join();
  co_return std::move(handle.result());
}

/// ferry in the shapes users write. `IoThreads` loop threads; `Grouped`: W1's coroutine is a
/// task_group child and W2's 1,024 coroutines are children of one task_group, each on its own
/// strand of the io_context (a server's connections) — instead of coroutines co_spawned on the
/// bare io_context.
template <std::size_t IoThreads, bool Grouped>
struct basic_ferry_contender {
  static constexpr bool grouped = Grouped;
  ferry::runtime rt{ferry::runtime_options{.io_threads = IoThreads, .cpu_threads = 2}};

  const char* setup_error() const { return nullptr; }
  bool on_loop(std::thread::id) const { return rt.running_in_this_thread(); }
  off_loop_check loop_check(std::thread::id io_thread, std::atomic<std::size_t>* count) const {
    return {io_thread, count, true};
  }

  template <class T>
  T run(ferry::task<T> main) {
    if constexpr (Grouped) {
      return rt.run(in_task_group_child(std::move(main)));
    } else {
      return rt.run(std::move(main));
    }
  }
  template <class F>
  auto offload(F f) {
    return ferry::offload(std::move(f));
  }
};

using ferry_contender = basic_ferry_contender<1, false>;
using ferry_strand_contender = basic_ferry_contender<1, true>;
using ferry_strand_io2_contender = basic_ferry_contender<2, true>;

struct naive_bridge_contender : single_loop_contender {
  tbb::global_control parallelism{tbb::global_control::max_allowed_parallelism, 3};
  tbb::task_arena arena{2, 0};

  /// oneTBB applies the smallest live max_allowed_parallelism, and ferry's cpu_pool leaves one
  /// (= cores) behind after the last pool is gone: then this arena gets one worker, not two.
  /// Hence the NaiveBridge benchmarks are registered before the Ferry ones.
  const char* setup_error() const {
    using control = tbb::global_control;
    return control::active_value(control::max_allowed_parallelism) < 3
               ? "max_allowed_parallelism is capped below 3 by another global_control (one "
                 "left by ferry::cpu_pool): the arena would get 1 worker; run NaiveBridge "
                 "before Ferry (--benchmark_filter=NaiveBridge)"
               : nullptr;
  }

  template <class F>
  auto offload(F f) {
    return hop_offload(arena_submit{&arena}, std::move(f), asio::use_awaitable);
  }
};

struct asio_thread_pool_contender : single_loop_contender {
  asio::thread_pool pool{2};

  ~asio_thread_pool_contender() { pool.join(); }

  template <class F>
  auto offload(F f) {
    return hop_offload(thread_pool_submit{&pool}, std::move(f), asio::use_awaitable);
  }
};

struct std_async_contender : single_loop_contender {
  template <class F>
  auto offload(F f) {
    return hop_offload(async_submit{}, std::move(f), asio::use_awaitable);
  }
};

/// W2 runs n / throughput_divisor<C> offloads for contender C (see the file comment).
template <class Contender>
constexpr std::size_t throughput_divisor = 1;
template <>
constexpr std::size_t throughput_divisor<std_async_contender> = 10;

// --- W1: round trip ----------------------------------------------------------------------------

struct round_trip_result {
  std::vector<std::int64_t> ns;  // one sample per measured round trip
  std::size_t wrong_thread = 0;
  std::size_t wrong_value = 0;
  std::size_t ran_on_io_thread = 0;
};

template <class Contender>
ferry::task<round_trip_result> round_trip_main(Contender& c, std::size_t warmup, std::size_t n) {
  const std::thread::id io_thread = std::this_thread::get_id();
  round_trip_result r;
  std::atomic<std::size_t> ran_on_io_thread{0};
  r.ns.reserve(n);
  for (std::size_t i = 0; i < warmup + n; ++i) {
    const int expected = static_cast<int>(i);
    const auto start = clock_type::now();
    const int got =
        co_await c.offload(identity_fn{expected, c.loop_check(io_thread, &ran_on_io_thread)});
    const auto stop = clock_type::now();
    if (!c.on_loop(io_thread)) ++r.wrong_thread;
    if (got != expected) ++r.wrong_value;
    if (i >= warmup) r.ns.push_back((stop - start) / std::chrono::nanoseconds(1));
  }
  r.ran_on_io_thread = ran_on_io_thread.load(std::memory_order_relaxed);
  co_return r;
}

double percentile_us(std::vector<std::int64_t>& ns, double q) {
  if (ns.empty()) return 0;
  const auto rank = static_cast<std::size_t>(q * static_cast<double>(ns.size() - 1) + 0.5);
  std::nth_element(ns.begin(), ns.begin() + static_cast<std::ptrdiff_t>(rank), ns.end());
  return static_cast<double>(ns[rank]) / 1000.0;
}

template <class Contender>
void round_trip(benchmark::State& state) {
  const std::size_t n = env_size("FERRY_BENCH_W1_N", 100'000);
  Contender c;
  round_trip_result r;
  if (const char* error = c.setup_error()) {
    state.SkipWithError(error);
    return;
  }
  for (auto _ : state) {
    r = c.run(round_trip_main(c, 1'000, n));
  }
  if (r.wrong_thread != 0 || r.wrong_value != 0 || r.ran_on_io_thread != 0) {
    state.SkipWithError(
        "an offload resumed on a wrong thread or with a wrong value, or ran on the I/O thread");
    return;
  }
  double sum = 0;
  for (const std::int64_t v : r.ns) sum += static_cast<double>(v);
  state.counters["mean_us"] = sum / static_cast<double>(r.ns.size()) / 1000.0;
  state.counters["p50_us"] = percentile_us(r.ns, 0.50);
  state.counters["p99_us"] = percentile_us(r.ns, 0.99);
  state.counters["n"] = static_cast<double>(r.ns.size());
}

// The machine's own floor for W1: two threads that hand one cache line back and forth, each
// spinning on it (no pool, no loop, no wake-up). A round trip of an offload crosses cores the
// same way twice, so no bridge beats this row in the same run; when the machine is in a state
// where crossing cores is slow (a busy host), this row shows it beside the others.
void cross_core_ping_pong(benchmark::State& state) {
  const std::size_t n = env_size("FERRY_BENCH_W1_N", 100'000);
  constexpr std::size_t warm_up = 1'000;
  alignas(64) std::atomic<std::uint64_t> ball{0};
  std::atomic<bool> lost{false};
  std::vector<std::int64_t> ns;
  ns.reserve(n);
  // Each wait gives up after a second: the other thread is gone or starved, and the row fails
  // instead of hanging.
  auto wait_for = [&ball, &lost](std::uint64_t value) {
    const auto give_up = clock_type::now() + std::chrono::seconds(1);
    for (unsigned spins = 0; ball.load(std::memory_order_acquire) != value; ++spins) {
      if (lost.load(std::memory_order_relaxed)) return false;
      if ((spins & 1023) == 0 && clock_type::now() > give_up) {
        lost.store(true, std::memory_order_relaxed);
        return false;
      }
    }
    return true;
  };
  for (auto _ : state) {
    ball.store(0);
    ns.clear();
    std::thread other([&] {
      for (std::uint64_t i = 1; i <= 2 * (warm_up + n); i += 2) {
        if (!wait_for(i)) return;
        ball.store(i + 1, std::memory_order_release);
      }
    });
    for (std::uint64_t i = 1; i <= 2 * (warm_up + n); i += 2) {
      const auto start = clock_type::now();
      ball.store(i, std::memory_order_release);
      if (!wait_for(i + 1)) break;
      if (i > 2 * warm_up) {
        ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - start)
                         .count());
      }
    }
    other.join();
  }
  if (lost.load()) {
    state.SkipWithError("the other thread did not answer within a second");
    return;
  }
  state.counters["p50_us"] = percentile_us(ns, 0.50);
  state.counters["p99_us"] = percentile_us(ns, 0.99);
  state.counters["n"] = static_cast<double>(ns.size());
}

// --- W2: throughput ----------------------------------------------------------------------------

constexpr std::size_t max_in_flight = 1'024;

struct throughput_result {
  double seconds = 0;
  std::size_t completed = 0;
  std::size_t wrong_thread = 0;
  std::size_t ran_on_io_thread = 0;
  std::uint64_t sink = 0;
};

/// What the workers add up while they run (from several io threads in the io_threads = 2 rows).
struct flood_counts {
  std::atomic<std::size_t> completed{0};
  std::atomic<std::size_t> wrong_thread{0};
  std::atomic<std::size_t> ran_on_io_thread{0};
  std::atomic<std::uint64_t> sink{0};
};

template <class Contender>
ferry::task<void> throughput_worker(Contender& c,
                                    std::size_t first,
                                    std::size_t count,
                                    std::uint64_t iterations,
                                    off_loop_check check,
                                    flood_counts& counts) {
  std::uint64_t sink = 0;
  std::size_t wrong_thread = 0;
  for (std::size_t i = first; i < first + count; ++i) {
    sink ^= co_await c.offload(work_fn{iterations, i, check});
    if (!c.on_loop(check.io_thread)) ++wrong_thread;
  }
  counts.sink.fetch_xor(sink, std::memory_order_relaxed);
  counts.wrong_thread.fetch_add(wrong_thread, std::memory_order_relaxed);
  counts.completed.fetch_add(count, std::memory_order_relaxed);
}

/// Runs `workers` to completion: co_spawned on `ex`, or (grouped contenders) as children of one
/// task_group, each on its own strand.
template <bool Grouped>
ferry::task<void> run_all(const asio::any_io_executor& ex, std::vector<ferry::task<void>> workers) {
  if constexpr (Grouped) {
    // A group on the io_context itself gives each child a strand of its own (a group on a
    // strand would run its children on that one strand), as a server's acceptor does.
    auto& io = static_cast<asio::io_context&>(asio::query(ex, asio::execution::context));
    ferry::task_group tg{io.get_executor()};
    for (auto& w : workers) tg.spawn(std::move(w));
    co_await tg.join();
  } else {
    asio::steady_timer all_done(ex, clock_type::time_point::max());
    std::size_t running = workers.size();
    std::exception_ptr first_error;
    for (auto& w : workers) {
      asio::co_spawn(ex, std::move(w), [&](std::exception_ptr e) {
        if (e && !first_error) first_error = e;
        if (--running == 0) all_done.cancel();
      });
    }
    if (running != 0) co_await all_done.async_wait(asio::as_tuple(asio::use_awaitable));
    if (first_error) std::rethrow_exception(first_error);
  }
}

/// Spawns max_in_flight workers sharing n offloads and waits for all of them.
template <class Contender>
ferry::task<throughput_result> throughput_main(Contender& c,
                                               std::size_t n,
                                               std::uint64_t iterations) {
  const auto ex = co_await asio::this_coro::executor;
  flood_counts counts;
  const off_loop_check check = c.loop_check(std::this_thread::get_id(), &counts.ran_on_io_thread);
  const std::size_t workers = std::min(max_in_flight, n);
  std::vector<ferry::task<void>> bodies;
  bodies.reserve(workers);
  for (std::size_t w = 0, first = 0; w < workers; ++w) {
    const std::size_t count = n / workers + (w < n % workers ? 1 : 0);
    bodies.push_back(throughput_worker(c, first, count, iterations, check, counts));
    first += count;
  }
  const auto start = clock_type::now();
  co_await run_all<Contender::grouped>(ex, std::move(bodies));
  throughput_result r;
  r.seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  r.completed = counts.completed.load();
  r.wrong_thread = counts.wrong_thread.load();
  r.ran_on_io_thread = counts.ran_on_io_thread.load();
  r.sink = counts.sink.load();
  co_return r;
}

/// Runs throughput_main(n, iterations) on a fresh Contender and checks every offload; nullopt
/// (the benchmark marked skipped with the reason) when the contender or a check fails.
template <class Contender>
std::optional<throughput_result> run_checked_flood(benchmark::State& state,
                                                   std::size_t n,
                                                   std::uint64_t iterations) {
  Contender c;
  throughput_result r;
  if (const char* error = c.setup_error()) {
    state.SkipWithError(error);
    return std::nullopt;
  }
  for (auto _ : state) {
    r = c.run(throughput_main(c, n, iterations));
  }
  benchmark::DoNotOptimize(r.sink);
  if (r.wrong_thread != 0 || r.completed != n || r.ran_on_io_thread != 0) {
    state.SkipWithError(
        "an offload resumed on a wrong thread or ran on the I/O thread, or offloads went missing");
    return std::nullopt;
  }
  return r;
}

template <class Contender>
void throughput(benchmark::State& state, double work_us) {
  const std::size_t n = env_size("FERRY_BENCH_W2_N", 1'000'000) / throughput_divisor<Contender>;
  const auto r = run_checked_flood<Contender>(state, n, iterations_for_us(work_us));
  if (!r) return;
  state.counters["ops_per_s"] = static_cast<double>(n) / r->seconds;
  state.counters["n"] = static_cast<double>(n);
}

// --- the ceiling: a raw tbb::task_group, no loop ------------------------------------------------

/// The default arena is the calling thread plus oneTBB's workers: cores - 1 of them unless a
/// live global_control caps max_allowed_parallelism lower.
const char* task_group_setup_error() {
  using control = tbb::global_control;
  return control::active_value(control::max_allowed_parallelism) < usable_cores()
             ? "max_allowed_parallelism is capped below the number of cores by another "
               "global_control: the default arena would not use every core"
             : nullptr;
}

/// One chain of W2's TaskGroup contender: its share of the offloads, run one link at a time.
struct alignas(64) chain {
  std::size_t next = 0;
  std::size_t end = 0;
  std::size_t completed = 0;
  std::uint64_t sink = 0;
};

/// Runs the chain's current unit of work, then hands its next one to the task group (a spawn
/// into this worker's deque, not a call: the chain never nests).
void run_link(tbb::task_group& tg, chain& c, std::uint64_t iterations) {
  c.sink ^= xorshift_work(iterations, c.next);
  ++c.completed;
  if (++c.next < c.end) tg.run([&tg, &c, iterations] { run_link(tg, c, iterations); });
}

void task_group_throughput(benchmark::State& state, double work_us) {
  const std::size_t n = env_size("FERRY_BENCH_W2_N", 1'000'000);
  const std::uint64_t iterations = iterations_for_us(work_us);
  if (const char* error = task_group_setup_error()) {
    state.SkipWithError(error);
    return;
  }
  const std::size_t chains_count = std::min(max_in_flight, n);
  std::vector<chain> chains(chains_count);
  double seconds = 0;
  for (auto _ : state) {
    for (std::size_t w = 0, first = 0; w < chains_count; ++w) {
      const std::size_t count = n / chains_count + (w < n % chains_count ? 1 : 0);
      chains[w] = chain{first, first + count, 0, 0};
      first += count;
    }
    tbb::task_group tg;
    const auto start = clock_type::now();
    for (chain& c : chains) {
      tg.run([&tg, &c, iterations] { run_link(tg, c, iterations); });
    }
    tg.wait();
    seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  }
  std::size_t completed = 0;
  std::uint64_t sink = 0;
  for (const chain& c : chains) {
    completed += c.completed;
    sink ^= c.sink;
  }
  benchmark::DoNotOptimize(sink);
  if (completed != n) {
    state.SkipWithError("task_group ran a wrong number of tasks");
    return;
  }
  state.counters["ops_per_s"] = static_cast<double>(n) / seconds;
  state.counters["n"] = static_cast<double>(n);
}

// --- W3: CPU-parallel efficiency ---------------------------------------------------------------

constexpr std::size_t parallel_jobs = 64;
constexpr double parallel_job_us = 10'000;

void report_efficiency(benchmark::State& state, double seconds) {
  const double cores = static_cast<double>(usable_cores());
  const double ideal_s = static_cast<double>(parallel_jobs) * parallel_job_us / 1e6 / cores;
  state.counters["efficiency"] = ideal_s / seconds;
  state.counters["wall_ms"] = seconds * 1e3;
  state.counters["ideal_ms"] = ideal_s * 1e3;
  state.counters["cores"] = cores;
}

/// 64 coroutines, each offloading one 10 ms job, spawned at once (W2's driver with n = 64).
template <class Contender>
void parallel_efficiency(benchmark::State& state) {
  const auto r =
      run_checked_flood<Contender>(state, parallel_jobs, iterations_for_us(parallel_job_us));
  if (!r) return;
  report_efficiency(state, r->seconds);
}

void task_group_parallel_efficiency(benchmark::State& state) {
  const std::uint64_t iterations = iterations_for_us(parallel_job_us);
  if (const char* error = task_group_setup_error()) {
    state.SkipWithError(error);
    return;
  }
  std::vector<std::uint64_t> results(parallel_jobs, 0);
  double seconds = 0;
  for (auto _ : state) {
    tbb::task_group tg;
    const auto start = clock_type::now();
    for (std::size_t i = 0; i < parallel_jobs; ++i) {
      tg.run([&results, i, iterations] { results[i] = xorshift_work(iterations, i); });
    }
    tg.wait();
    seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  }
  benchmark::DoNotOptimize(results.data());
  if (std::count(results.begin(), results.end(), std::uint64_t{0}) != 0) {
    state.SkipWithError("a task_group job did not run");
    return;
  }
  report_efficiency(state, seconds);
}

// --- registrations -----------------------------------------------------------------------------

void BM_Offload_RoundTrip_Ferry(benchmark::State& s) { round_trip<ferry_contender>(s); }
void BM_CrossCore_PingPong(benchmark::State& s) { cross_core_ping_pong(s); }
void BM_Offload_RoundTrip_NaiveBridge(benchmark::State& s) {
  round_trip<naive_bridge_contender>(s);
}
void BM_Offload_RoundTrip_AsioThreadPool(benchmark::State& s) {
  round_trip<asio_thread_pool_contender>(s);
}
void BM_Offload_RoundTrip_StdAsync(benchmark::State& s) { round_trip<std_async_contender>(s); }

void BM_Offload_Throughput1us_Ferry(benchmark::State& s) { throughput<ferry_contender>(s, 1); }
void BM_Offload_Throughput1us_NaiveBridge(benchmark::State& s) {
  throughput<naive_bridge_contender>(s, 1);
}
void BM_Offload_Throughput1us_AsioThreadPool(benchmark::State& s) {
  throughput<asio_thread_pool_contender>(s, 1);
}
void BM_Offload_Throughput1us_StdAsync(benchmark::State& s) {
  throughput<std_async_contender>(s, 1);
}
void BM_Offload_Throughput1us_TaskGroup(benchmark::State& s) { task_group_throughput(s, 1); }

void BM_Offload_Throughput0us_Ferry(benchmark::State& s) { throughput<ferry_contender>(s, 0); }
void BM_Offload_Throughput0us_NaiveBridge(benchmark::State& s) {
  throughput<naive_bridge_contender>(s, 0);
}
void BM_Offload_Throughput0us_AsioThreadPool(benchmark::State& s) {
  throughput<asio_thread_pool_contender>(s, 0);
}
void BM_Offload_Throughput0us_StdAsync(benchmark::State& s) {
  throughput<std_async_contender>(s, 0);
}
void BM_Offload_Throughput0us_TaskGroup(benchmark::State& s) { task_group_throughput(s, 0); }

void BM_Offload_Parallel_Ferry(benchmark::State& s) { parallel_efficiency<ferry_contender>(s); }

// The shapes users write: a task_group child (W1) and 1,024 task_group children, each on its own
// strand (W2), with one and with two io threads.
void BM_Offload_RoundTrip_FerryStrand(benchmark::State& s) {
  round_trip<ferry_strand_contender>(s);
}
void BM_Offload_RoundTrip_FerryStrandIo2(benchmark::State& s) {
  round_trip<ferry_strand_io2_contender>(s);
}
void BM_Offload_Throughput1us_FerryStrand(benchmark::State& s) {
  throughput<ferry_strand_contender>(s, 1);
}
void BM_Offload_Throughput1us_FerryStrandIo2(benchmark::State& s) {
  throughput<ferry_strand_io2_contender>(s, 1);
}
void BM_Offload_Throughput0us_FerryStrand(benchmark::State& s) {
  throughput<ferry_strand_contender>(s, 0);
}
void BM_Offload_Throughput0us_FerryStrandIo2(benchmark::State& s) {
  throughput<ferry_strand_io2_contender>(s, 0);
}
void BM_Offload_Parallel_NaiveBridge(benchmark::State& s) {
  parallel_efficiency<naive_bridge_contender>(s);
}
void BM_Offload_Parallel_AsioThreadPool(benchmark::State& s) {
  parallel_efficiency<asio_thread_pool_contender>(s);
}
void BM_Offload_Parallel_StdAsync(benchmark::State& s) {
  parallel_efficiency<std_async_contender>(s);
}
void BM_Offload_Parallel_TaskGroup(benchmark::State& s) { task_group_parallel_efficiency(s); }

// Registered contender by contender, NaiveBridge first and Ferry last (see
// naive_bridge_contender::setup_error and task_group_setup_error).
#define FERRY_OFFLOAD_BENCHMARK(fn) \
  BENCHMARK(fn)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond)

FERRY_OFFLOAD_BENCHMARK(BM_Offload_RoundTrip_NaiveBridge);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_Throughput1us_NaiveBridge);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_Throughput0us_NaiveBridge);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_Parallel_NaiveBridge);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_RoundTrip_AsioThreadPool);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_Throughput1us_AsioThreadPool);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_Throughput0us_AsioThreadPool);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_Parallel_AsioThreadPool);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_RoundTrip_StdAsync);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_Throughput1us_StdAsync);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_Throughput0us_StdAsync);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_Parallel_StdAsync);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_Throughput1us_TaskGroup);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_Throughput0us_TaskGroup);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_Parallel_TaskGroup);
FERRY_OFFLOAD_BENCHMARK(BM_CrossCore_PingPong);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_RoundTrip_Ferry);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_Throughput1us_Ferry);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_Throughput0us_Ferry);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_Parallel_Ferry);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_RoundTrip_FerryStrand);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_Throughput1us_FerryStrand);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_Throughput0us_FerryStrand);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_RoundTrip_FerryStrandIo2);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_Throughput1us_FerryStrandIo2);
FERRY_OFFLOAD_BENCHMARK(BM_Offload_Throughput0us_FerryStrandIo2);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  calibrate("offload_bench");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
