// ferry/bridge/src/runtime.cpp — the runtime's lifecycle: options, construction (the pools, the
// inbox, the io threads), the io threads' loop, stats, destruction. `run` and the signals are in
// run.cpp; the way from an executor to the runtime's pools in context_lookup.cpp; the lag probe
// and watchdog in loop_monitor.cpp.
#include "ferry/bridge/runtime.hpp"

#include <oneapi/tbb/info.h>
#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>

#include "ferry/bridge/detail/runtime_link.hpp"
#include "loop_monitor.hpp"
#include "runtime_impl.hpp"

namespace ferry {
namespace detail {

constinit thread_local runtime* current_runtime = nullptr;

}  // namespace detail

namespace {

// The options the runtime owns. The pools check theirs (cpu_threads, spin, cpu_nice_increment;
// blocking_threads) as they are constructed, with their own messages.
runtime_options validated(runtime_options options) {
  if (options.io_threads == 0) {
    throw std::invalid_argument("ferry::runtime: io_threads must be at least 1");
  }
  if (options.io_threads > 1024) {
    throw std::invalid_argument("ferry::runtime: io_threads = " +
                                std::to_string(options.io_threads) + " is above the limit of 1024");
  }
  if (options.slow_callback_threshold.count() < 0) {
    throw std::invalid_argument("ferry::runtime: slow_callback_threshold must not be negative");
  }
  if (options.slow_callback_threshold > std::chrono::hours(1)) {
    throw std::invalid_argument("ferry::runtime: slow_callback_threshold is above 1 hour");
  }
  if (options.completion_batch_window.count() < 0 ||
      options.completion_batch_window > std::chrono::milliseconds(10)) {
    throw std::invalid_argument(
        "ferry::runtime: completion_batch_window must be between 0 and 10 ms");
  }
  if (options.lag_probe_interval.count() < 0 ||
      options.lag_probe_interval > std::chrono::hours(1)) {
    throw std::invalid_argument("ferry::runtime: lag_probe_interval must be between 0 and 1 hour");
  }
  return options;
}

// The loop's spinner spins only while at most this many offloads are in flight: while each one
// has a worker of its own and a core is left over for the spinning loop. A loop that spins while
// the workers hold every core takes a core from them, and from whatever else runs on the
// machine (W5 on 2 cores, light /ping p99 with the limit at the worker count: 0.6-1.7 ms over
// five runs; at workers - 1: 0.25-0.33 ms over three).
std::size_t inbox_spin_limit(std::size_t workers) {
  const int cores = tbb::info::default_concurrency();  // the cores this process may use
  const std::size_t spare = cores > 1 ? static_cast<std::size_t>(cores) - 1 : 0;
  return std::min(workers, spare);
}

}  // namespace

runtime::runtime(runtime_options options)
    : options_(validated(std::move(options))),
      io_(static_cast<int>(options_.io_threads)),
      cpu_(std::make_unique<cpu_pool>(options_.cpu_threads,
                                      options_.max_offloads_in_flight != 0
                                          ? admission_policy::fixed(options_.max_offloads_in_flight)
                                          : options_.admission,
                                      options_.spin,
                                      options_.cpu_nice_increment)),
      blocking_(std::make_unique<blocking_pool>(options_.blocking_threads)),
      impl_(std::make_unique<impl>(io_,
                                   options_.spin,
                                   inbox_spin_limit(cpu_->concurrency()),
                                   cpu_->concurrency(),
                                   options_.completion_batch_window)) {
  // Lets offload(f)/to_thread(f) find this runtime's pools from any executor on its contexts.
  boost::asio::add_service(io_, new detail::runtime_link(io_, this));
  boost::asio::add_service(*cpu_, new detail::runtime_link(*cpu_, this));
  work_.emplace(io_.get_executor());
  monitor_ = std::make_unique<detail::loop_monitor>(io_, options_, cpu_.get());
  threads_.reserve(options_.io_threads);
  try {
    for (std::size_t i = 0; i < options_.io_threads; ++i) {
      threads_.emplace_back([this, i] { io_thread_main(i); });
    }
    monitor_->start_watchdog();
  } catch (...) {
    io_.stop();
    for (auto& t : threads_) t.join();
    monitor_.reset();
    throw;
  }
}

runtime::~runtime() {
  monitor_->stop();  // the watchdog first: a stopping loop is not a stalled one
  work_.reset();
  io_.stop();
  for (auto& t : threads_) t.join();
  monitor_.reset();  // joins the watchdog; its timer's and probes' handlers die with io_
  // The loop is stopped: completions the pools post now wait in the io_context's queue and are
  // destroyed with it. Drain the pools first, so no pool thread touches a destroyed context.
  blocking_.reset();
  cpu_.reset();
  // Posts from threads the runtime does not own (a pool of the application's, another
  // executor) may still be inside io_'s execute: wait for them to leave it.
  std::atomic<std::size_t>& posters = impl_->foreign_posters;
  for (std::size_t n; (n = posters.load(std::memory_order_acquire)) != 0;) {
    posters.wait(n, std::memory_order_acquire);
  }
  impl_->inbox.discard();  // completions that arrived after the loop stopped: destroyed, like io_'s
  // io_ is destroyed last (member order): it destroys the handlers that never ran.
}

// An exception that escapes a handler leaves io_.run() on this thread (Asio lets it propagate;
// loop_inbox.cpp keeps the inbox served across it): it is reported on stderr, the thread goes
// back to the loop, and the other handlers run on. See "Errors" in runtime.hpp.
void runtime::io_thread_main(std::size_t index) {
  detail::current_runtime = this;
  // A name to find the loop by in top -H, gdb, chrt (15 characters at most).
  pthread_setname_np(pthread_self(), "ferry-io");
  for (;;) {
    try {
      monitor_->io_thread_loop(index);
      return;  // stopped
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ferry: an exception escaped a handler on an io thread: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "ferry: an exception escaped a handler on an io thread\n");
    }
  }
}

bool runtime::running_in_this_thread() const noexcept { return detail::current_runtime == this; }

runtime* runtime::current() noexcept { return detail::current_runtime; }

runtime_stats runtime::stats() const {
  runtime_stats s;
  s.io_threads = options_.io_threads;
  s.cpu = cpu_->stats();
  s.blocking = blocking_->stats();
  s.offloads.submitted = s.cpu.submitted;
  s.offloads.failed = s.cpu.failed;
  s.offloads.skipped = s.cpu.skipped;
  s.offloads.ran = s.cpu.completed - s.cpu.skipped;
  const std::uint64_t done = s.cpu.completed;
  s.offloads.in_flight =
      s.cpu.submitted > done ? static_cast<std::size_t>(s.cpu.submitted - done) : 0;
  s.offloads.queue_wait = s.cpu.queue_wait;
  s.offloads.run_time = s.cpu.run_time;
  monitor_->fill(s.loop);
  s.loop.inbox_completions = impl_->inbox.delivered();
  s.loop.inbox_batches = impl_->inbox.batches();
  s.loop.batch_windows = impl_->inbox.windows();
  return s;
}

std::vector<slow_callback_report> runtime::recent_slow_callbacks() const {
  return monitor_->recent();
}

}  // namespace ferry
