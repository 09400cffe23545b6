// bench/threads_vs_async_bench.cpp — W4 of docs/workloads.md (I/O-bound fan-out: coroutines against
// one OS thread per task), the loop's lag while CPU work runs inline, offloaded or on threads, and
// the idle cost of a runtime. Baselines in the same binary, so every figure is a ratio measured in
// one run.
//
// W4 BM_FanOut_*: 10,000 tasks (env FERRY_BENCH_W4_TASKS), all started at once, each waits 100 ms
//    then adds its index to a sum (the trivial work; the sum is checked).
//  - Coroutines:      `ferry::run(main)` with the default runtime_options; main co_spawns one
//                     coroutine per task on the loop, each `co_await ferry::sleep(100ms)`.
//  - CoroutinesSteadyTimer: the same, each coroutine awaiting its own asio::steady_timer (no
//                     nested coroutine frame for the sleep).
//  - Threads:         one OS thread per task (pthread_create with the default attributes, as
//                     std::thread does), `std::this_thread::sleep_for(100ms)`; default stack size
//                     (the counter stack_kib says which: RLIMIT_STACK, 8 MiB here).
//  - Threads64KiB:    the same with a 64 KiB stack (pthread_attr_setstacksize).
//  - EmptyChild:      a child that starts and exits: the floor of every RSS figure (this binary,
//                     its libraries, nothing else).
//    Each runs in a fresh child process (this binary re-executed with the private flag
//    --ferry-child=MODE). Counters: wall_ms (measured by the child, from the first task started
//    to the last one finished), peak_rss_mb (ru_maxrss of the child from wait4, in 10^6 bytes),
//    vm_hwm_mb (the child's own VmHWM from /proc/self/status at exit). Linux folds the RSS that
//    the parent had when it forked into the child's ru_maxrss (exec records the old address
//    space's high-water mark), so these benchmarks are registered first — the parent forks
//    before it has run anything but the calibration — and
//    vm_hwm_mb — the executed program's own high-water mark — is reported alongside, with
//    vm_peak_mb (peak virtual size: what a thread's stack reserves, touched or not).
//
// BM_LoopLag_*: a ferry::runtime (io_threads = 1, cpu_threads = 2) whose loop runs a ticker
//    coroutine: wait 1 ms on a steady_timer, record how late it resumed, repeat. Meanwhile 32
//    jobs of 10 ms of xorshift work (one coroutine each, started at once) run:
//  - Inline:   on the loop itself, inside the coroutine.
//  - Offload:  `co_await ferry::offload(job)`.
//  - Threads:  one std::thread per job, which posts its result back to the loop.
//    Counters: wall_ms (start to the last job back on the loop), lag_p50_ms, lag_p99_ms,
//    lag_max_ms over the ticks that fired while the jobs ran, ticks.
//
// BM_Idle_*: a runtime with nothing to do for 2 s (env FERRY_BENCH_IDLE_MS), in a fresh child:
//  - Constructed:  `ferry::runtime rt;` (default options), then the main thread sleeps.
//  - SleepingMain: `ferry::run(main)`, main does 1,000 offloads (so every pool thread has woken
//                  and gone back to sleep), then `co_await ferry::sleep(2s)`.
//    Counter cpu_pct_of_core = CPU time of the whole process (CLOCK_PROCESS_CPUTIME_ID) during
//    the idle window / its wall time x 100.
//
// The work kernel (as in offload_bench.cpp) is calibrated at start-up and printed on stderr.
// Every check (right thread, right sum, every job back) fails the benchmark on a mismatch.
//
//   threads_vs_async_bench --benchmark_out=w4.json --benchmark_out_format=json
#include <benchmark/benchmark.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "ferry/ferry.hpp"
#include "work_kernel.hpp"

namespace {

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

// --- the work kernel (bench/work_kernel.hpp) --------------------------------------------------

using ferry_bench::calibrate;
using ferry_bench::env_size;
using ferry_bench::g_iterations_per_us;
using ferry_bench::iterations_for_us;
using ferry_bench::xorshift_work;

double ms_between(clock_type::time_point from, clock_type::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// --- child processes ---------------------------------------------------------------------------
//
// A child writes "name value" lines on its stdout (a pipe to the parent) and exits 0, or writes
// "error <message>" and exits 1.

constexpr std::string_view child_flag = "--ferry-child=";

using child_values = std::map<std::string, double>;

void emit(const char* name, double value) { std::printf("%s %.6f\n", name, value); }

/// A "kB" line of /proc/self/status (VmHWM: peak RSS, VmPeak: peak virtual size); 0 if absent.
double proc_status_kib(std::string_view field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.size() > field.size() && line.compare(0, field.size(), field) == 0 &&
        line[field.size()] == ':') {
      return std::strtod(line.c_str() + field.size() + 1, nullptr);
    }
  }
  return 0;
}

struct child_outcome {
  std::string error;  // empty on success
  child_values values;
  long maxrss_kib = 0;  // from wait4
};

/// Runs this binary again as `--ferry-child=mode`, collects its lines and its rusage.
child_outcome run_child(const std::string& mode) {
  child_outcome out;
  int fds[2];
  if (pipe(fds) != 0) {
    out.error = std::string("pipe: ") + std::strerror(errno);
    return out;
  }
  std::string flag = std::string(child_flag) + mode;
  char exe[] = "/proc/self/exe";
  char* argv[] = {exe, flag.data(), nullptr};
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    out.error = std::string("fork: ") + std::strerror(errno);
    close(fds[0]);
    close(fds[1]);
    return out;
  }
  if (pid == 0) {  // only async-signal-safe calls until exec
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    execv(exe, argv);
    _exit(127);
  }
  close(fds[1]);
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t got = read(fds[0], buffer, sizeof buffer);
    if (got > 0) {
      text.append(buffer, static_cast<std::size_t>(got));
    } else if (got == 0 || errno != EINTR) {
      break;
    }
  }
  close(fds[0]);
  int status = 0;
  struct rusage usage {};
  while (wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  out.maxrss_kib = usage.ru_maxrss;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    const std::size_t space = line.find(' ');
    if (space == std::string::npos) continue;
    const std::string name = line.substr(0, space);
    if (name == "error") {
      out.error = "child " + mode + ": " + line.substr(space + 1);
    } else {
      out.values[name] = std::strtod(line.c_str() + space + 1, nullptr);
    }
  }
  if (out.error.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    out.error = "child " + mode + " exited abnormally (status " + std::to_string(status) + ")";
  }
  return out;
}

/// One benchmark iteration = one child run; its lines become counters.
void child_benchmark(benchmark::State& state, const std::string& mode) {
  child_outcome out;
  for (auto _ : state) {
    out = run_child(mode);
  }
  if (!out.error.empty()) {
    state.SkipWithError(out.error.c_str());
    return;
  }
  state.counters["peak_rss_mb"] = static_cast<double>(out.maxrss_kib) * 1024 / 1e6;
  for (const auto& [name, value] : out.values) state.counters[name] = value;
}

// --- W4 in the child: the fan-out ----------------------------------------------------------------

constexpr auto fan_out_wait = 100ms;

std::uint64_t expected_sum(std::size_t tasks) {
  return static_cast<std::uint64_t>(tasks) * (tasks - 1) / 2;
}

ferry::task<void> fan_out_task(std::size_t index, std::uint64_t& sum) {
  co_await ferry::sleep(fan_out_wait);
  sum += index;
}

ferry::task<void> fan_out_task_steady_timer(std::size_t index, std::uint64_t& sum) {
  asio::steady_timer timer(co_await asio::this_coro::executor, fan_out_wait);
  co_await timer.async_wait(asio::use_awaitable);
  sum += index;
}

struct fan_out_result {
  double wall_ms = 0;
  std::uint64_t sum = 0;
};

ferry::task<fan_out_result> fan_out_main(std::size_t tasks, bool steady_timer) {
  const auto ex = co_await asio::this_coro::executor;
  fan_out_result r;
  asio::steady_timer all_done(ex, clock_type::time_point::max());
  std::size_t running = tasks;
  std::exception_ptr first_error;
  const auto start = clock_type::now();
  for (std::size_t i = 0; i < tasks; ++i) {
    auto task = steady_timer ? fan_out_task_steady_timer(i, r.sum) : fan_out_task(i, r.sum);
    asio::co_spawn(ex, std::move(task), [&](std::exception_ptr e) {
      if (e && !first_error) first_error = e;
      if (--running == 0) all_done.cancel();
    });
  }
  if (running != 0) co_await all_done.async_wait(asio::as_tuple(asio::use_awaitable));
  r.wall_ms = ms_between(start, clock_type::now());
  if (first_error) std::rethrow_exception(first_error);
  co_return r;
}

int child_fan_out_coroutines(std::size_t tasks, bool steady_timer) {
  const fan_out_result r = ferry::run(fan_out_main(tasks, steady_timer));
  if (r.sum != expected_sum(tasks)) {
    std::printf("error wrong sum\n");
    return 1;
  }
  emit("wall_ms", r.wall_ms);
  emit("tasks", static_cast<double>(tasks));
  return 0;
}

struct thread_task {
  std::atomic<std::uint64_t>* sum;
  std::size_t index;
};

void* thread_task_main(void* arg) {
  const auto* t = static_cast<const thread_task*>(arg);
  std::this_thread::sleep_for(fan_out_wait);
  t->sum->fetch_add(t->index, std::memory_order_relaxed);
  return nullptr;
}

/// One pthread per task; stack_bytes = 0: the default stack size.
int child_fan_out_threads(std::size_t tasks, std::size_t stack_bytes) {
  pthread_attr_t attr;
  pthread_getattr_default_np(&attr);
  if (stack_bytes != 0 && pthread_attr_setstacksize(&attr, stack_bytes) != 0) {
    std::printf("error pthread_attr_setstacksize failed\n");
    return 1;
  }
  std::size_t stack_size = 0;
  pthread_attr_getstacksize(&attr, &stack_size);
  if (stack_size == 0) {  // the default attributes leave it to RLIMIT_STACK
    struct rlimit limit {};
    getrlimit(RLIMIT_STACK, &limit);
    stack_size = limit.rlim_cur;
  }
  std::atomic<std::uint64_t> sum{0};
  std::vector<thread_task> args(tasks);
  std::vector<pthread_t> threads;
  threads.reserve(tasks);
  int create_error = 0;
  const auto start = clock_type::now();
  for (std::size_t i = 0; i < tasks; ++i) {
    args[i] = thread_task{&sum, i};
    pthread_t thread;
    create_error = pthread_create(&thread, &attr, thread_task_main, &args[i]);
    if (create_error != 0) break;
    threads.push_back(thread);
  }
  for (const pthread_t thread : threads) pthread_join(thread, nullptr);
  const double wall_ms = ms_between(start, clock_type::now());
  pthread_attr_destroy(&attr);
  if (create_error != 0) {
    std::printf("error pthread_create failed after %zu threads: %s\n",
                threads.size(),
                std::strerror(create_error));
    return 1;
  }
  if (sum.load() != expected_sum(tasks)) {
    std::printf("error wrong sum\n");
    return 1;
  }
  emit("wall_ms", wall_ms);
  emit("tasks", static_cast<double>(tasks));
  emit("stack_kib", static_cast<double>(stack_size) / 1024);
  return 0;
}

// --- idle cost in the child ----------------------------------------------------------------------

double process_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

struct idle_window {
  double cpu_ms = 0;
  double wall_ms = 0;
};

void emit_idle(const idle_window& w) {
  emit("cpu_ms", w.cpu_ms);
  emit("wall_ms", w.wall_ms);
  emit("cpu_pct_of_core", w.wall_ms > 0 ? w.cpu_ms / w.wall_ms * 100 : 0);
}

std::chrono::milliseconds idle_duration() {
  return std::chrono::milliseconds(env_size("FERRY_BENCH_IDLE_MS", 2'000));
}

int child_idle_constructed() {
  ferry::runtime rt;
  const double cpu0 = process_cpu_ms();
  const auto start = clock_type::now();
  std::this_thread::sleep_for(idle_duration());
  idle_window w;
  w.cpu_ms = process_cpu_ms() - cpu0;
  w.wall_ms = ms_between(start, clock_type::now());
  emit_idle(w);
  return 0;
}

ferry::task<idle_window> idle_sleeping_main() {
  int sum = 0;
  for (int i = 0; i < 1'000; ++i) {
    auto identity = [i] { return i; };
    const int got = co_await ferry::offload(identity);
    sum += got == i ? 1 : 0;
  }
  if (sum != 1'000) throw std::runtime_error("an offload returned a wrong value");
  idle_window w;
  const double cpu0 = process_cpu_ms();
  const auto start = clock_type::now();
  co_await ferry::sleep(idle_duration());
  w.cpu_ms = process_cpu_ms() - cpu0;
  w.wall_ms = ms_between(start, clock_type::now());
  co_return w;
}

int child_idle_sleeping_main() {
  emit_idle(ferry::run(idle_sleeping_main()));
  return 0;
}

/// The child's entry point: runs `mode`, then reports its own peak RSS.
int child_main(std::string_view mode) {
  const std::size_t tasks = env_size("FERRY_BENCH_W4_TASKS", 10'000);
  int status = 1;
  try {
    if (mode == "empty") {
      status = 0;
    } else if (mode == "fan-out-coroutines") {
      status = child_fan_out_coroutines(tasks, false);
    } else if (mode == "fan-out-coroutines-steady-timer") {
      status = child_fan_out_coroutines(tasks, true);
    } else if (mode == "fan-out-threads") {
      status = child_fan_out_threads(tasks, 0);
    } else if (mode == "fan-out-threads-64k") {
      status = child_fan_out_threads(tasks, 64 * 1024);
    } else if (mode == "idle-constructed") {
      status = child_idle_constructed();
    } else if (mode == "idle-sleeping-main") {
      status = child_idle_sleeping_main();
    } else {
      std::printf("error unknown mode %.*s\n", static_cast<int>(mode.size()), mode.data());
    }
  } catch (const std::exception& e) {
    std::printf("error %s\n", e.what());
    status = 1;
  }
  if (status == 0) {
    emit("vm_hwm_mb", proc_status_kib("VmHWM") * 1024 / 1e6);
    emit("vm_peak_mb", proc_status_kib("VmPeak") * 1024 / 1e6);
  }
  std::fflush(stdout);
  return status;
}

// --- loop lag
// --------------------------------------------------------------------------------------

enum class cpu_mode { inline_on_loop, offload, thread_per_job };

constexpr std::size_t lag_jobs = 32;
constexpr double lag_job_us = 10'000;
constexpr auto tick_period = 1ms;

struct lag_result {
  double wall_ms = 0;
  std::vector<std::int64_t> lag_ns;  // ticks while the jobs ran
  std::size_t completed = 0;
  std::size_t wrong_thread = 0;
  std::uint64_t sink = 0;
};

/// Everything below runs on the runtime's single io thread: plain variables suffice.
struct lag_shared {
  bool measuring = false;
  bool stop = false;
  std::thread::id io_thread;
  lag_result* result = nullptr;
};

ferry::task<void> ticker(lag_shared& shared) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (!shared.stop) {
    const auto deadline = clock_type::now() + tick_period;
    timer.expires_at(deadline);
    co_await timer.async_wait(asio::use_awaitable);
    const auto late = clock_type::now() - deadline;
    if (std::this_thread::get_id() != shared.io_thread) ++shared.result->wrong_thread;
    if (shared.measuring) shared.result->lag_ns.push_back(late / std::chrono::nanoseconds(1));
  }
}

ferry::task<void> inline_job(std::uint64_t iterations, std::size_t index, lag_result& r) {
  r.sink ^= xorshift_work(iterations, index);
  co_return;
}

struct work_fn {
  std::uint64_t iterations;
  std::uint64_t seed;
  std::uint64_t operator()() const noexcept { return xorshift_work(iterations, seed); }
};

ferry::task<void> offload_job(std::uint64_t iterations, std::size_t index, lag_shared& shared) {
  const std::uint64_t result = co_await ferry::offload(work_fn{iterations, index});
  shared.result->sink ^= result;
  if (std::this_thread::get_id() != shared.io_thread) ++shared.result->wrong_thread;
}

ferry::task<lag_result> lag_main(cpu_mode mode, std::uint64_t iterations) {
  const auto ex = co_await asio::this_coro::executor;
  lag_result r;
  lag_shared shared{false, false, std::this_thread::get_id(), &r};
  asio::steady_timer ticker_done(ex, clock_type::time_point::max());
  bool ticker_running = true;
  asio::co_spawn(ex, ticker(shared), [&](std::exception_ptr) {
    ticker_running = false;
    ticker_done.cancel();
  });
  co_await ferry::sleep(20ms);  // the ticker settles in before the jobs start

  asio::steady_timer all_done(ex, clock_type::time_point::max());
  std::size_t running = lag_jobs;
  std::exception_ptr first_error;
  auto job_done = [&](std::exception_ptr e) {
    if (e && !first_error) first_error = e;
    ++r.completed;
    if (--running == 0) all_done.cancel();
  };
  std::vector<std::thread> threads;
  shared.measuring = true;
  const auto start = clock_type::now();
  for (std::size_t i = 0; i < lag_jobs; ++i) {
    switch (mode) {
      case cpu_mode::inline_on_loop:
        asio::co_spawn(ex, inline_job(iterations, i, r), job_done);
        break;
      case cpu_mode::offload:
        asio::co_spawn(ex, offload_job(iterations, i, shared), job_done);
        break;
      case cpu_mode::thread_per_job:
        threads.emplace_back([ex, iterations, i, &r, &shared, &job_done] {
          const std::uint64_t result = xorshift_work(iterations, i);
          asio::post(ex, [result, &r, &shared, &job_done] {
            r.sink ^= result;
            if (std::this_thread::get_id() != shared.io_thread) ++r.wrong_thread;
            job_done(nullptr);
          });
        });
        break;
    }
  }
  if (running != 0) co_await all_done.async_wait(asio::as_tuple(asio::use_awaitable));
  r.wall_ms = ms_between(start, clock_type::now());
  shared.measuring = false;
  for (std::thread& t : threads) t.join();  // each has posted its result: they are finishing
  shared.stop = true;
  if (ticker_running) co_await ticker_done.async_wait(asio::as_tuple(asio::use_awaitable));
  if (first_error) std::rethrow_exception(first_error);
  co_return r;
}

double percentile_ms(std::vector<std::int64_t>& ns, double q) {
  if (ns.empty()) return 0;
  const auto rank = static_cast<std::size_t>(q * static_cast<double>(ns.size() - 1) + 0.5);
  std::nth_element(ns.begin(), ns.begin() + static_cast<std::ptrdiff_t>(rank), ns.end());
  return static_cast<double>(ns[rank]) / 1e6;
}

void loop_lag(benchmark::State& state, cpu_mode mode) {
  const std::uint64_t iterations = iterations_for_us(lag_job_us);
  ferry::runtime rt{ferry::runtime_options{.io_threads = 1, .cpu_threads = 2}};
  lag_result r;
  for (auto _ : state) {
    r = rt.run(lag_main(mode, iterations));
  }
  benchmark::DoNotOptimize(r.sink);
  if (r.wrong_thread != 0 || r.completed != lag_jobs) {
    state.SkipWithError("a job or a tick resumed on a wrong thread, or a job went missing");
    return;
  }
  state.counters["wall_ms"] = r.wall_ms;
  state.counters["ticks"] = static_cast<double>(r.lag_ns.size());
  state.counters["lag_max_ms"] =
      r.lag_ns.empty()
          ? 0
          : static_cast<double>(*std::max_element(r.lag_ns.begin(), r.lag_ns.end())) / 1e6;
  state.counters["lag_p99_ms"] = percentile_ms(r.lag_ns, 0.99);
  state.counters["lag_p50_ms"] = percentile_ms(r.lag_ns, 0.50);
}

// --- registrations -----------------------------------------------------------------------------

void BM_FanOut_EmptyChild(benchmark::State& s) { child_benchmark(s, "empty"); }
void BM_FanOut_Coroutines(benchmark::State& s) { child_benchmark(s, "fan-out-coroutines"); }
void BM_FanOut_CoroutinesSteadyTimer(benchmark::State& s) {
  child_benchmark(s, "fan-out-coroutines-steady-timer");
}
void BM_FanOut_Threads(benchmark::State& s) { child_benchmark(s, "fan-out-threads"); }
void BM_FanOut_Threads64KiB(benchmark::State& s) { child_benchmark(s, "fan-out-threads-64k"); }

void BM_LoopLag_Inline(benchmark::State& s) { loop_lag(s, cpu_mode::inline_on_loop); }
void BM_LoopLag_Offload(benchmark::State& s) { loop_lag(s, cpu_mode::offload); }
void BM_LoopLag_Threads(benchmark::State& s) { loop_lag(s, cpu_mode::thread_per_job); }

void BM_Idle_Constructed(benchmark::State& s) { child_benchmark(s, "idle-constructed"); }
void BM_Idle_SleepingMain(benchmark::State& s) { child_benchmark(s, "idle-sleeping-main"); }

#define FERRY_THREADS_VS_ASYNC_BENCHMARK(fn) \
  BENCHMARK(fn)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond)

// The fan-out children first, while this process is at its smallest (see the file comment).
FERRY_THREADS_VS_ASYNC_BENCHMARK(BM_FanOut_EmptyChild);
FERRY_THREADS_VS_ASYNC_BENCHMARK(BM_FanOut_Coroutines);
FERRY_THREADS_VS_ASYNC_BENCHMARK(BM_FanOut_CoroutinesSteadyTimer);
FERRY_THREADS_VS_ASYNC_BENCHMARK(BM_FanOut_Threads);
FERRY_THREADS_VS_ASYNC_BENCHMARK(BM_FanOut_Threads64KiB);
FERRY_THREADS_VS_ASYNC_BENCHMARK(BM_LoopLag_Inline);
FERRY_THREADS_VS_ASYNC_BENCHMARK(BM_LoopLag_Offload);
FERRY_THREADS_VS_ASYNC_BENCHMARK(BM_LoopLag_Threads);
FERRY_THREADS_VS_ASYNC_BENCHMARK(BM_Idle_Constructed);
FERRY_THREADS_VS_ASYNC_BENCHMARK(BM_Idle_SleepingMain);

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.substr(0, child_flag.size()) == child_flag) {
      return child_main(arg.substr(child_flag.size()));
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  calibrate("threads_vs_async_bench");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
