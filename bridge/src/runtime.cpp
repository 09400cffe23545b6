// ferry/bridge/src/runtime.cpp — the runtime: io threads, pools, run, signals, shutdown.
#include "ferry/bridge/runtime.hpp"

#include <oneapi/tbb/info.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdio>
#include <future>
#include <iterator>
#include <stdexcept>
#include <string>

#include "ferry/bridge/detail/context_lookup.hpp"
#include "ferry/bridge/detail/runtime_link.hpp"
#include "ferry/core/detail/pool_tag.hpp"
#include "loop_monitor.hpp"

namespace ferry {
namespace {

thread_local runtime* current_runtime = nullptr;

constexpr int watched_signals[] = {SIGINT, SIGTERM};

runtime_options validated(runtime_options options) {
  if (options.io_threads == 0) {
    throw std::invalid_argument("ferry::runtime: io_threads must be at least 1");
  }
  if (options.io_threads > 1024) {
    throw std::invalid_argument("ferry::runtime: io_threads = " +
                                std::to_string(options.io_threads) + " is above the limit of 1024");
  }
  if (options.blocking_threads == 0) {
    throw std::invalid_argument("ferry::runtime: blocking_threads must be at least 1");
  }
  if (options.spin.count() < 0 || options.spin > std::chrono::milliseconds(10)) {
    throw std::invalid_argument("ferry::runtime: spin must be between 0 and 10 ms");
  }
  if (options.slow_callback_threshold.count() < 0) {
    throw std::invalid_argument("ferry::runtime: slow_callback_threshold must not be negative");
  }
  if (options.slow_callback_threshold > std::chrono::hours(1)) {
    throw std::invalid_argument("ferry::runtime: slow_callback_threshold is above 1 hour");
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
      cpu_(std::make_unique<cpu_pool>(
          options_.cpu_threads, options_.max_offloads_in_flight, options_.spin, options_.cpu_nice)),
      blocking_(std::make_unique<blocking_pool>(options_.blocking_threads)),
      inbox_(io_, options_.spin, inbox_spin_limit(cpu_->concurrency())) {
  // Lets offload(f)/to_thread(f) find this runtime's pools from any executor on its contexts.
  boost::asio::add_service(io_, new detail::runtime_link(io_, this));
  boost::asio::add_service(*cpu_, new detail::runtime_link(*cpu_, this));
  work_.emplace(io_.get_executor());
  monitor_ = std::make_unique<detail::loop_monitor>(io_, options_);
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
  for (std::size_t n; (n = foreign_posters_.load(std::memory_order_acquire)) != 0;) {
    foreign_posters_.wait(n, std::memory_order_acquire);
  }
  inbox_.discard();  // completions that arrived after the loop stopped: destroyed, like io_'s
  // io_ is destroyed last (member order): it destroys the handlers that never ran.
}

void runtime::io_thread_main(std::size_t index) {
  current_runtime = this;
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

bool runtime::running_in_this_thread() const noexcept { return current_runtime == this; }

runtime* runtime::current() noexcept { return current_runtime; }

runtime_stats runtime::stats() const {
  runtime_stats s;
  s.io_threads = options_.io_threads;
  s.cpu = cpu_->stats();
  s.blocking = blocking_->stats();
  s.offloads.submitted = s.cpu.submitted;
  s.offloads.failed = s.cpu.failed;
  s.offloads.cancelled_before_start = s.cpu.skipped;
  s.offloads.completed = s.cpu.completed - s.cpu.skipped;
  const std::uint64_t done = s.cpu.completed;
  s.offloads.in_flight =
      s.cpu.submitted > done ? static_cast<std::size_t>(s.cpu.submitted - done) : 0;
  s.offloads.queue_wait = s.cpu.queue_wait;
  s.offloads.run_time = s.cpu.run_time;
  monitor_->fill(s.loop);
  return s;
}

std::vector<slow_callback_report> runtime::recent_slow_callbacks() const {
  return monitor_->recent();
}

boost::asio::any_io_executor runtime::begin_run(const std::shared_ptr<run_state>& state) {
  if (running_in_this_thread()) {
    throw std::logic_error(
        "ferry::runtime::run called from one of the runtime's own io threads (it would wait "
        "for itself); co_await the task instead");
  }
  detail::lock_guard lock(run_mutex_);
  if (active_run_) throw std::logic_error("ferry::runtime::run: another run is in progress");
  active_run_ = state;
  active_executor_ = boost::asio::any_io_executor();
  stop_requested_early_ = false;

  // Asio resets a signal to SIG_DFL when its last signal_set goes: remember what was there.
  for (std::size_t i = 0; i < std::size(watched_signals); ++i) {
    ::sigaction(watched_signals[i], nullptr, &state->previous[i]);
  }
  auto signals = std::make_shared<boost::asio::signal_set>(io_);
  for (int sig : watched_signals) signals->add(sig);
  struct rearm {
    runtime* self;
    std::weak_ptr<boost::asio::signal_set> set;
    void operator()(const boost::system::error_code& ec, int) const {
      if (ec) return;  // cancelled at the end of run
      self->request_stop();
      if (auto s = set.lock()) s->async_wait(*this);
    }
  };
  signals->async_wait(rearm{this, signals});
  signals_ = signals;
  // One io thread serialises everything already; with several, main needs a strand so that
  // its cancellation is emitted in its own execution context.
  return options_.io_threads == 1 ? boost::asio::any_io_executor(io_.get_executor())
                                  : boost::asio::any_io_executor(boost::asio::make_strand(io_));
}

void runtime::publish_run(const boost::asio::any_io_executor& ex) {
  detail::lock_guard lock(run_mutex_);
  active_executor_ = ex;
  if (stop_requested_early_) {
    stop_requested_early_ = false;
    post_stop_locked();
  }
}

void runtime::finish_run(run_state& state, std::exception_ptr error) {
  detail::lock_guard lock(state.mutex);
  state.error = std::move(error);
  state.done = true;
  state.cv.notify_all();
}

void runtime::end_run(run_state& state) {
  {
    detail::unique_lock lock(state.mutex);
    state.cv.wait(lock.native(), [&]() FERRY_REQUIRES(state.mutex) { return state.done; });
  }
  std::shared_ptr<void> signals;
  {
    detail::lock_guard lock(run_mutex_);
    active_run_.reset();
    active_executor_ = boost::asio::any_io_executor();
    signals = std::move(signals_);
  }
  // The signal_set belongs to the loop: destroy it there, then put back the dispositions it
  // replaced (unless another signal_set still watches the signal), and only then return.
  std::promise<void> removed;
  boost::asio::post(io_, [&removed, &state, signals = std::move(signals)]() mutable {
    static_cast<boost::asio::signal_set*>(signals.get())->cancel();
    signals.reset();
    for (std::size_t i = 0; i < std::size(watched_signals); ++i) {
      struct sigaction now {};
      ::sigaction(watched_signals[i], nullptr, &now);
      if (now.sa_handler == SIG_DFL) ::sigaction(watched_signals[i], &state.previous[i], nullptr);
    }
    removed.set_value();
  });
  removed.get_future().wait();
  if (state.error) std::rethrow_exception(state.error);
}

void runtime::request_stop() {
  detail::lock_guard lock(run_mutex_);
  if (!active_run_) return;
  if (!active_executor_) {
    stop_requested_early_ = true;  // main is being started: publish_run delivers it
    return;
  }
  post_stop_locked();
}

void runtime::post_stop_locked() {
  boost::asio::post(active_executor_, [state = active_run_] {
    state->cancel.emit(boost::asio::cancellation_type::terminal);
  });
}

namespace detail {

std::atomic<std::size_t>* foreign_posters(boost::asio::execution_context& ctx,
                                          const boost::asio::execution_context& target) noexcept {
  runtime* rt = current_runtime;
  if (rt == nullptr || &ctx != &rt->io_) {
    try {
      if (!boost::asio::has_service<runtime_link>(ctx)) return nullptr;
      rt = boost::asio::use_service<runtime_link>(ctx).owner();
    } catch (...) {
      return nullptr;
    }
    if (rt == nullptr || &ctx != &rt->io_) return nullptr;
  }
  const bool own_pool = &target == rt->cpu_.get() || &target == rt->blocking_.get();
  return own_pool ? nullptr : &rt->foreign_posters_;
}

loop_inbox* current_inbox(const boost::asio::execution_context& ctx,
                          const cpu_pool& pool) noexcept {
  runtime* rt = current_runtime;
  if (rt == nullptr || &ctx != &rt->io_ || &pool != rt->cpu_.get()) return nullptr;
  return &rt->inbox_;
}

namespace {

runtime* runtime_of(boost::asio::execution_context& ctx) {
  if (!boost::asio::has_service<runtime_link>(ctx)) return nullptr;
  return boost::asio::use_service<runtime_link>(ctx).owner();
}

}  // namespace

cpu_pool& cpu_pool_for(boost::asio::execution_context& ctx) {
  if (runtime* rt = current_runtime; rt != nullptr && &ctx == &rt->io_context()) return rt->cpu();
  if (cpu_pool* pool = cpu_pool::current(); pool != nullptr && &ctx == pool) return *pool;
  // Slow paths (the contexts' service registry lock): a strand or executor of another thread.
  if (runtime* rt = runtime_of(ctx)) return rt->cpu();
  if (cpu_pool* pool = pool_from_context<cpu_pool>(ctx)) return *pool;
  return default_cpu_pool();
}

blocking_pool& blocking_pool_for(boost::asio::execution_context& ctx) {
  if (runtime* rt = current_runtime; rt != nullptr && &ctx == &rt->io_context()) {
    return rt->blocking();
  }
  if (runtime* rt = runtime_of(ctx)) return rt->blocking();
  if (blocking_pool* pool = pool_from_context<blocking_pool>(ctx)) return *pool;
  return default_blocking_pool();
}

}  // namespace detail
}  // namespace ferry
