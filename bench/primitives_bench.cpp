// bench/primitives_bench.cpp — operations per second of ferry's semaphore, mutex, queue and event,
// each against its nearest baseline in the same binary, so that every figure is a ratio measured
// in one run.
//
// Scenarios (one benchmark iteration = one fresh run of a fixed number of operations):
//  - Uncontended: one worker does 200,000 operations in a tight loop, so every operation takes
//    the fast path. Ferry and Asio: one coroutine on an io_context run by the calling thread;
//    Std: the calling thread.
//  - Contended: 8 workers share 100,000 operations (12,500 each). Ferry and Asio: 8 coroutines,
//    each on its own strand, on an io_context run by 2 threads; Std: 8 OS threads.
//    The queue has 2 producers and 2 consumers instead (100,000 items).
//  - PingPong (event): two workers hand a turn back and forth through two events, 10,000 round
//    trips: across 2 io threads (Ferry) or 2 OS threads (Std); PingPongOneThread: both
//    coroutines on one io thread (Ferry only; OS threads have no equivalent).
//
// What one operation is (the counter ops_per_s = operations / measured seconds):
//  - Semaphore: acquire + release (1 permit uncontended; 2 permits for 8 workers contended).
//  - Mutex: lock + increment a shared plain counter + unlock.
//  - Queue: one item put and got (capacity 64).
//  - Event: set + wait + clear (uncontended); one round trip = two hand-offs (ping-pong).
//
// Contenders:
//  - Ferry: `co_await sem.acquire()`, `co_await m.lock()`, `co_await q.put(v)` / `q.get()`,
//    `co_await ev.wait()`: the public API (each call is a coroutine with its fast path inside).
//  - Std: std::counting_semaphore, std::mutex, a std::mutex + 2 condition_variables + std::deque
//    bounded queue with close(), a std::mutex + condition_variable flag: all with OS threads.
//    std::mutex and std::counting_semaphore let a running thread barge in ahead of sleeping
//    ones; ferry's primitives are FIFO and hand over to the oldest waiter by post, so contended
//    figures compare two policies as well as two implementations. libstdc++ 12's
//    counting_semaphore::release makes a futex-wake system call whenever the count rises from 0,
//    waiter or not: with one permit, every uncontended release (strace: 200,002 futex calls for
//    200,000 operations).
//  - AsioChannel: boost::asio::experimental::concurrent_channel with use_awaitable, as
//    documented (no try_ fast path first). As a queue: `channel<void(error_code, int)>` of
//    capacity 64. As a mutex: `channel<void(error_code)>` of capacity 1, lock = async_send,
//    unlock = try_receive (which hands the slot to the oldest blocked sender: FIFO like ferry).
//    Asio 1.81 completes a channel operation by post even when it could complete at once.
//
// Timing: wall clock (steady_clock) from the moment every worker is ready (a latch releases the
// threads; the coroutines are spawned before their io threads are released) until the last
// worker finishes, reported through SetIterationTime (UseManualTime): creating and joining threads
// and io_contexts is left out. Every io_context has its reactor started by an idle steady_timer,
// as a server's has (see bench/offload_bench.cpp, "The loop").
//
// Every run checks its result (counter = expected, every permit back, queue sum and count, round
// trips) and fails the benchmark with SkipWithError on a mismatch.
//
//   primitives_bench --benchmark_out=primitives.json --benchmark_out_format=json
#include <benchmark/benchmark.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <latch>
#include <mutex>
#include <optional>
#include <semaphore>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ferry/io/event.hpp"
#include "ferry/io/mutex.hpp"
#include "ferry/io/queue.hpp"
#include "ferry/io/semaphore.hpp"
#include "ferry/io/task.hpp"

namespace {

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;
using boost::system::error_code;

constexpr std::size_t uncontended_ops = 200'000;
constexpr std::size_t contended_ops = 100'000;
constexpr std::size_t contended_workers = 8;
constexpr std::size_t contended_io_threads = 2;
constexpr std::size_t contended_permits = 2;
constexpr std::size_t queue_capacity = 64;
constexpr std::size_t queue_producers = 2;
constexpr std::size_t queue_consumers = 2;
constexpr std::size_t ping_pong_round_trips = 10'000;

// --- running and timing one run ----------------------------------------------------------------

/// Stops the clock when the last of its workers arrives.
class finish_line {
 public:
  explicit finish_line(std::size_t workers) : remaining_(workers) {}

  void arrive() {
    if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) stop_ = clock_type::now();
  }
  /// Read after every worker arrived (and was joined).
  clock_type::time_point stop() const { return stop_; }

 private:
  std::atomic<std::size_t> remaining_;
  clock_type::time_point stop_{};
};

double seconds_between(clock_type::time_point start, clock_type::time_point stop) {
  return std::chrono::duration<double>(stop - start).count();
}

/// Runs `body(i)` for i in [0, threads) on as many OS threads (the calling thread is worker 0),
/// released together. Returns the seconds from the release until the last body returned.
/// `body` must not throw.
template <class Body>
double run_threads(std::size_t threads, Body body) {
  std::latch ready(static_cast<std::ptrdiff_t>(threads));
  finish_line finish(threads);
  std::vector<std::thread> others;
  others.reserve(threads - 1);
  for (std::size_t i = 1; i < threads; ++i) {
    others.emplace_back([&, i] {
      ready.arrive_and_wait();
      body(i);
      finish.arrive();
    });
  }
  ready.arrive_and_wait();
  const auto start = clock_type::now();
  body(0);
  finish.arrive();
  for (std::thread& t : others) t.join();
  return seconds_between(start, finish.stop());
}

/// An io_context (reactor started: see "Timing" in the file comment) that runs one batch of
/// coroutines on `threads` threads, the calling thread being one of them. Primitives that need an
/// executor (Asio's channels) take `executor()`.
class coroutine_loop {
 public:
  explicit coroutine_loop(std::size_t threads)
      : threads_(threads), io_(static_cast<int>(threads)) {}

  asio::io_context::executor_type executor() { return io_.get_executor(); }

  /// Spawns the coroutines `make(i)` for i in [0, coroutines) — each on its own strand when more
  /// than one thread runs the loop — and runs them, the threads released together. Returns the
  /// seconds from the release until the last coroutine finished; rethrows the first exception a
  /// coroutine let escape. Call once.
  template <class Make>
  double run(std::size_t coroutines, Make make) {
    finish_line finish(coroutines);
    std::mutex error_mutex;
    std::exception_ptr first_error;
    const auto done = [&](std::exception_ptr error) {
      if (error) {
        std::lock_guard lock(error_mutex);
        if (!first_error) first_error = error;
      }
      finish.arrive();
    };
    for (std::size_t i = 0; i < coroutines; ++i) {
      if (threads_ > 1) {
        asio::co_spawn(asio::make_strand(io_), make(i), done);
      } else {
        asio::co_spawn(io_, make(i), done);
      }
    }
    std::latch ready(static_cast<std::ptrdiff_t>(threads_));
    std::vector<std::thread> others;
    others.reserve(threads_ - 1);
    for (std::size_t i = 1; i < threads_; ++i) {
      others.emplace_back([&] {
        ready.arrive_and_wait();
        io_.run();
      });
    }
    ready.arrive_and_wait();
    const auto start = clock_type::now();
    io_.run();
    for (std::thread& t : others) t.join();
    if (first_error) std::rethrow_exception(first_error);
    return seconds_between(start, finish.stop());
  }

 private:
  const std::size_t threads_;
  asio::io_context io_;
  asio::steady_timer reactor_{io_};
};

/// Runs the coroutines `make(i)`, i in [0, coroutines), on a fresh `coroutine_loop(threads)`.
template <class Make>
double run_coroutines(std::size_t coroutines, std::size_t threads, Make make) {
  coroutine_loop loop(threads);
  return loop.run(coroutines, make);
}

/// Fails the run (and so the benchmark) when `ok` is false.
void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(what);
}

/// One benchmark iteration = one call of `run` (a fresh run of `ops` operations, returning its
/// measured seconds). Reports ops_per_s = all operations / all measured seconds.
template <class Run>
void measure(benchmark::State& state, std::size_t ops, Run run) {
  double operations = 0;
  for (auto _ : state) {
    try {
      state.SetIterationTime(run());
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
      break;
    }
    operations += static_cast<double>(ops);
  }
  state.counters["ops_per_s"] = benchmark::Counter(operations, benchmark::Counter::kIsRate);
}

// --- the baselines' primitives -----------------------------------------------------------------

/// A bounded FIFO of ints: std::mutex + two condition variables + std::deque, with close().
class std_bounded_queue {
 public:
  explicit std_bounded_queue(std::size_t capacity) : capacity_(capacity) {}

  /// Blocks while the queue is full; false when it is closed.
  bool put(int value) {
    std::unique_lock lock(mutex_);
    not_full_.wait(lock, [&] { return closed_ || items_.size() < capacity_; });
    if (closed_) return false;
    items_.push_back(value);
    lock.unlock();
    not_empty_.notify_one();
    return true;
  }

  /// Blocks while the queue is empty and open; nullopt once it is closed and drained.
  std::optional<int> get() {
    std::unique_lock lock(mutex_);
    not_empty_.wait(lock, [&] { return closed_ || !items_.empty(); });
    if (items_.empty()) return std::nullopt;
    const int value = items_.front();
    items_.pop_front();
    lock.unlock();
    not_full_.notify_one();
    return value;
  }

  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<int> items_;
  const std::size_t capacity_;
  bool closed_ = false;
};

/// A flag threads wait on: std::mutex + condition_variable.
class std_event {
 public:
  void set() {
    {
      std::lock_guard lock(mutex_);
      set_ = true;
    }
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return set_; });
  }
  void clear() {
    std::lock_guard lock(mutex_);
    set_ = false;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool set_ = false;
};

using channel_mutex = asio::experimental::concurrent_channel<void(error_code)>;
using int_channel = asio::experimental::concurrent_channel<void(error_code, int)>;

/// The share of worker `i` when `total` operations are split over `workers`.
std::size_t share(std::size_t total, std::size_t workers, std::size_t i) {
  return total / workers + (i < total % workers ? 1 : 0);
}

// --- semaphore ---------------------------------------------------------------------------------

ferry::task<void> ferry_semaphore_worker(ferry::semaphore& sem, std::size_t n, std::size_t& done) {
  std::size_t acquired = 0;  // local: the workers' counters share no cache line
  for (std::size_t i = 0; i < n; ++i) {
    auto permit = co_await sem.acquire();
    ++acquired;
  }
  done = acquired;
}

double semaphore_ferry(std::size_t workers, std::size_t threads, std::size_t permits) {
  const std::size_t ops = workers == 1 ? uncontended_ops : contended_ops;
  ferry::semaphore sem{permits};
  std::vector<std::size_t> done(workers, 0);
  const double seconds = run_coroutines(workers, threads, [&](std::size_t i) {
    return ferry_semaphore_worker(sem, share(ops, workers, i), done[i]);
  });
  std::size_t total = 0;
  for (const std::size_t d : done) total += d;
  check(total == ops, "acquires completed != operations");
  check(sem.available() == permits && sem.waiting() == 0, "permits not all back");
  return seconds;
}

double semaphore_std(std::size_t workers, std::size_t permits) {
  const std::size_t ops = workers == 1 ? uncontended_ops : contended_ops;
  std::counting_semaphore<> sem{static_cast<std::ptrdiff_t>(permits)};
  std::vector<std::size_t> done(workers, 0);
  const double seconds = run_threads(workers, [&](std::size_t w) {
    const std::size_t n = share(ops, workers, w);
    std::size_t acquired = 0;  // local: the workers' counters share no cache line
    for (std::size_t i = 0; i < n; ++i) {
      sem.acquire();
      ++acquired;
      sem.release();
    }
    done[w] = acquired;
  });
  std::size_t total = 0;
  for (const std::size_t d : done) total += d;
  check(total == ops, "acquires completed != operations");
  std::size_t back = 0;
  while (sem.try_acquire()) ++back;
  check(back == permits, "permits not all back");
  return seconds;
}

// --- mutex -------------------------------------------------------------------------------------

ferry::task<void> ferry_mutex_worker(ferry::mutex& m, std::size_t n, std::size_t& counter) {
  for (std::size_t i = 0; i < n; ++i) {
    auto lock = co_await m.lock();
    ++counter;
  }
}

ferry::task<void> channel_mutex_worker(channel_mutex& m, std::size_t n, std::size_t& counter) {
  for (std::size_t i = 0; i < n; ++i) {
    co_await m.async_send(error_code{}, asio::use_awaitable);  // lock: fill the only slot
    ++counter;
    m.try_receive([](error_code) {});  // unlock: empty it (or hand it to the oldest sender)
  }
}

double mutex_ferry(std::size_t workers, std::size_t threads) {
  const std::size_t ops = workers == 1 ? uncontended_ops : contended_ops;
  ferry::mutex m;
  std::size_t counter = 0;  // guarded by m
  const double seconds = run_coroutines(workers, threads, [&](std::size_t i) {
    return ferry_mutex_worker(m, share(ops, workers, i), counter);
  });
  check(counter == ops, "counter != operations");
  check(!m.locked() && m.waiting() == 0, "mutex left locked");
  return seconds;
}

double mutex_asio_channel(std::size_t workers, std::size_t threads) {
  const std::size_t ops = workers == 1 ? uncontended_ops : contended_ops;
  coroutine_loop loop(threads);
  channel_mutex m{loop.executor(), 1};
  std::size_t counter = 0;  // guarded by m
  const double seconds = loop.run(workers, [&](std::size_t i) {
    return channel_mutex_worker(m, share(ops, workers, i), counter);
  });
  check(counter == ops, "counter != operations");
  check(!m.ready(), "channel mutex left locked");
  m.close();
  return seconds;
}

double mutex_std(std::size_t workers) {
  const std::size_t ops = workers == 1 ? uncontended_ops : contended_ops;
  std::mutex m;
  std::size_t counter = 0;  // guarded by m
  const double seconds = run_threads(workers, [&](std::size_t w) {
    const std::size_t n = share(ops, workers, w);
    for (std::size_t i = 0; i < n; ++i) {
      std::lock_guard lock(m);
      ++counter;
    }
  });
  check(counter == ops, "counter != operations");
  return seconds;
}

// --- queue -------------------------------------------------------------------------------------
// Uncontended: put i, get it back (both never wait). Contended: the producers put 1..n between
// them, the consumers sum what they get; the sum and the count must match.

/// What the consumers got, added up.
struct queue_totals {
  std::atomic<std::uint64_t> sum{0};
  std::atomic<std::size_t> count{0};

  void add(std::uint64_t s, std::size_t c) {
    sum.fetch_add(s, std::memory_order_relaxed);
    count.fetch_add(c, std::memory_order_relaxed);
  }
  void check_all(std::size_t n) const {
    check(count.load() == n, "items got != items put");
    check(sum.load() == std::uint64_t{n} * (n + 1) / 2, "sum of items got != sum of items put");
  }
};

/// The values producer `p` puts: its share of 1..n.
struct producer_range {
  int first;
  int last;  // inclusive
};
producer_range range_of(std::size_t n, std::size_t producers, std::size_t p) {
  std::size_t first = 1;
  for (std::size_t i = 0; i < p; ++i) first += share(n, producers, i);
  return {static_cast<int>(first), static_cast<int>(first + share(n, producers, p) - 1)};
}

ferry::task<void> ferry_queue_ping(ferry::queue<int>& q, std::size_t n, std::size_t& wrong) {
  for (std::size_t i = 0; i < n; ++i) {
    co_await q.put(static_cast<int>(i));
    const int got = co_await q.get();
    if (got != static_cast<int>(i)) ++wrong;
  }
}

ferry::task<void> ferry_producer(ferry::queue<int>& q,
                                 producer_range range,
                                 std::atomic<std::size_t>& producers_left) {
  for (int v = range.first; v <= range.last; ++v) co_await q.put(v);
  if (producers_left.fetch_sub(1, std::memory_order_acq_rel) == 1) q.close();
}

ferry::task<void> ferry_consumer(ferry::queue<int>& q, queue_totals& totals) {
  std::uint64_t sum = 0;
  std::size_t count = 0;
  for (;;) {
    try {
      const int v = co_await q.get();
      sum += static_cast<std::uint64_t>(v);
      ++count;
    } catch (const ferry::queue_closed&) {
      break;  // closed and drained
    }
  }
  totals.add(sum, count);
}

ferry::task<void> channel_queue_ping(int_channel& ch, std::size_t n, std::size_t& wrong) {
  for (std::size_t i = 0; i < n; ++i) {
    co_await ch.async_send(error_code{}, static_cast<int>(i), asio::use_awaitable);
    const int got = co_await ch.async_receive(asio::use_awaitable);
    if (got != static_cast<int>(i)) ++wrong;
  }
}

// Asio 1.81's close() discards the values still buffered, so the channel's consumers stop at a
// sentinel instead: each producer sends 0 after its values, each consumer stops at its first 0
// (as many producers as consumers).
ferry::task<void> channel_producer(int_channel& ch, producer_range range) {
  for (int v = range.first; v <= range.last; ++v) {
    co_await ch.async_send(error_code{}, v, asio::use_awaitable);
  }
  co_await ch.async_send(error_code{}, 0, asio::use_awaitable);
}

ferry::task<void> channel_consumer(int_channel& ch, queue_totals& totals) {
  std::uint64_t sum = 0;
  std::size_t count = 0;
  for (;;) {
    const int v = co_await ch.async_receive(asio::use_awaitable);
    if (v == 0) break;
    sum += static_cast<std::uint64_t>(v);
    ++count;
  }
  totals.add(sum, count);
}

double queue_ferry_uncontended() {
  ferry::queue<int> q{queue_capacity};
  std::size_t wrong = 0;
  const double seconds = run_coroutines(
      1, 1, [&](std::size_t) { return ferry_queue_ping(q, uncontended_ops, wrong); });
  check(wrong == 0 && q.empty(), "an item came back wrong");
  q.close();
  return seconds;
}

double queue_asio_channel_uncontended() {
  coroutine_loop loop(1);
  int_channel ch{loop.executor(), queue_capacity};
  std::size_t wrong = 0;
  const double seconds =
      loop.run(1, [&](std::size_t) { return channel_queue_ping(ch, uncontended_ops, wrong); });
  check(wrong == 0 && !ch.ready(), "an item came back wrong");
  ch.close();
  return seconds;
}

double queue_std_uncontended() {
  std_bounded_queue q{queue_capacity};
  std::size_t wrong = 0;
  const double seconds = run_threads(1, [&](std::size_t) {
    for (std::size_t i = 0; i < uncontended_ops; ++i) {
      q.put(static_cast<int>(i));
      if (q.get() != static_cast<int>(i)) ++wrong;
    }
  });
  check(wrong == 0, "an item came back wrong");
  q.close();
  return seconds;
}

double queue_ferry_contended() {
  ferry::queue<int> q{queue_capacity};
  std::atomic<std::size_t> producers_left{queue_producers};
  queue_totals totals;
  const double seconds =
      run_coroutines(queue_producers + queue_consumers, contended_io_threads, [&](std::size_t i) {
        return i < queue_producers
                   ? ferry_producer(q, range_of(contended_ops, queue_producers, i), producers_left)
                   : ferry_consumer(q, totals);
      });
  totals.check_all(contended_ops);
  return seconds;
}

double queue_asio_channel_contended() {
  static_assert(queue_producers == queue_consumers, "one sentinel per consumer");
  coroutine_loop loop(contended_io_threads);
  int_channel ch{loop.executor(), queue_capacity};
  queue_totals totals;
  const double seconds = loop.run(queue_producers + queue_consumers, [&](std::size_t i) {
    return i < queue_producers ? channel_producer(ch, range_of(contended_ops, queue_producers, i))
                               : channel_consumer(ch, totals);
  });
  totals.check_all(contended_ops);
  ch.close();
  return seconds;
}

double queue_std_contended() {
  std_bounded_queue q{queue_capacity};
  std::atomic<std::size_t> producers_left{queue_producers};
  queue_totals totals;
  const double seconds = run_threads(queue_producers + queue_consumers, [&](std::size_t i) {
    if (i < queue_producers) {
      const producer_range range = range_of(contended_ops, queue_producers, i);
      for (int v = range.first; v <= range.last; ++v) q.put(v);
      if (producers_left.fetch_sub(1, std::memory_order_acq_rel) == 1) q.close();
      return;
    }
    std::uint64_t sum = 0;
    std::size_t count = 0;
    while (const std::optional<int> v = q.get()) {
      sum += static_cast<std::uint64_t>(*v);
      ++count;
    }
    totals.add(sum, count);
  });
  totals.check_all(contended_ops);
  return seconds;
}

// --- event -------------------------------------------------------------------------------------
// Ping-pong: the pinger sets `ping` and waits for `pong`; the ponger waits for `ping`, clears it
// and sets `pong`. Each side clears the event it waited for before it sets the other one, so no
// wake-up is lost or counted twice.

ferry::task<void> ferry_event_loop(ferry::event& ev, std::size_t n, std::size_t& done) {
  for (std::size_t i = 0; i < n; ++i) {
    ev.set();
    co_await ev.wait();
    ev.clear();
    ++done;
  }
}

ferry::task<void> ferry_pinger(ferry::event& ping, ferry::event& pong, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    ping.set();
    co_await pong.wait();
    pong.clear();
  }
}

ferry::task<void> ferry_ponger(ferry::event& ping,
                               ferry::event& pong,
                               std::size_t n,
                               std::size_t& round_trips) {
  for (std::size_t i = 0; i < n; ++i) {
    co_await ping.wait();
    ping.clear();
    ++round_trips;
    pong.set();
  }
}

double event_ferry_uncontended() {
  ferry::event ev;
  std::size_t done = 0;
  const double seconds = run_coroutines(
      1, 1, [&](std::size_t) { return ferry_event_loop(ev, uncontended_ops, done); });
  check(done == uncontended_ops && !ev.is_set(), "set/wait/clear count mismatch");
  return seconds;
}

double event_std_uncontended() {
  std_event ev;
  std::size_t done = 0;
  const double seconds = run_threads(1, [&](std::size_t) {
    for (std::size_t i = 0; i < uncontended_ops; ++i) {
      ev.set();
      ev.wait();
      ev.clear();
      ++done;
    }
  });
  check(done == uncontended_ops, "set/wait/clear count mismatch");
  return seconds;
}

double event_ferry_ping_pong(std::size_t threads) {
  ferry::event ping;
  ferry::event pong;
  std::size_t round_trips = 0;
  const double seconds = run_coroutines(2, threads, [&](std::size_t i) {
    return i == 0 ? ferry_pinger(ping, pong, ping_pong_round_trips)
                  : ferry_ponger(ping, pong, ping_pong_round_trips, round_trips);
  });
  check(round_trips == ping_pong_round_trips, "round trips != expected");
  return seconds;
}

double event_std_ping_pong() {
  std_event ping;
  std_event pong;
  std::size_t round_trips = 0;
  const double seconds = run_threads(2, [&](std::size_t i) {
    for (std::size_t r = 0; r < ping_pong_round_trips; ++r) {
      if (i == 0) {
        ping.set();
        pong.wait();
        pong.clear();
      } else {
        ping.wait();
        ping.clear();
        ++round_trips;
        pong.set();
      }
    }
  });
  check(round_trips == ping_pong_round_trips, "round trips != expected");
  return seconds;
}

// --- registrations -----------------------------------------------------------------------------

/// Registers `run` (see measure) as the benchmark `name` of `ops` operations. One iteration is a
/// whole run (milliseconds); 0.2 s per benchmark keeps the binary short.
template <class Run>
void add_benchmark(const char* name, std::size_t ops, Run run) {
  benchmark::RegisterBenchmark(name,
                               [ops, run](benchmark::State& state) { measure(state, ops, run); })
      ->UseManualTime()
      ->MinTime(0.2)
      ->Unit(benchmark::kMillisecond);
}

[[maybe_unused]] const bool registered = [] {
  add_benchmark(
      "BM_Semaphore_Uncontended_Ferry", uncontended_ops, [] { return semaphore_ferry(1, 1, 1); });
  add_benchmark(
      "BM_Semaphore_Uncontended_Std", uncontended_ops, [] { return semaphore_std(1, 1); });
  add_benchmark("BM_Semaphore_Contended_Ferry", contended_ops, [] {
    return semaphore_ferry(contended_workers, contended_io_threads, contended_permits);
  });
  add_benchmark("BM_Semaphore_Contended_Std", contended_ops, [] {
    return semaphore_std(contended_workers, contended_permits);
  });

  add_benchmark("BM_Mutex_Uncontended_Ferry", uncontended_ops, [] { return mutex_ferry(1, 1); });
  add_benchmark(
      "BM_Mutex_Uncontended_AsioChannel", uncontended_ops, [] { return mutex_asio_channel(1, 1); });
  add_benchmark("BM_Mutex_Uncontended_Std", uncontended_ops, [] { return mutex_std(1); });
  add_benchmark("BM_Mutex_Contended_Ferry", contended_ops, [] {
    return mutex_ferry(contended_workers, contended_io_threads);
  });
  add_benchmark("BM_Mutex_Contended_AsioChannel", contended_ops, [] {
    return mutex_asio_channel(contended_workers, contended_io_threads);
  });
  add_benchmark(
      "BM_Mutex_Contended_Std", contended_ops, [] { return mutex_std(contended_workers); });

  add_benchmark("BM_Queue_Uncontended_Ferry", uncontended_ops, queue_ferry_uncontended);
  add_benchmark(
      "BM_Queue_Uncontended_AsioChannel", uncontended_ops, queue_asio_channel_uncontended);
  add_benchmark("BM_Queue_Uncontended_Std", uncontended_ops, queue_std_uncontended);
  add_benchmark("BM_Queue_Contended_Ferry", contended_ops, queue_ferry_contended);
  add_benchmark("BM_Queue_Contended_AsioChannel", contended_ops, queue_asio_channel_contended);
  add_benchmark("BM_Queue_Contended_Std", contended_ops, queue_std_contended);

  add_benchmark("BM_Event_Uncontended_Ferry", uncontended_ops, event_ferry_uncontended);
  add_benchmark("BM_Event_Uncontended_Std", uncontended_ops, event_std_uncontended);
  add_benchmark("BM_Event_PingPong_Ferry", ping_pong_round_trips, [] {
    return event_ferry_ping_pong(contended_io_threads);
  });
  add_benchmark("BM_Event_PingPong_Std", ping_pong_round_trips, event_std_ping_pong);
  add_benchmark("BM_Event_PingPongOneThread_Ferry", ping_pong_round_trips, [] {
    return event_ferry_ping_pong(1);
  });
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
