// ferry/bridge/src/runtime.cpp — the runtime: io threads, pools, run, signals, shutdown.
#include "ferry/bridge/runtime.hpp"

#include <oneapi/tbb/info.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <cstdio>
#include <future>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>

#include "ferry/bridge/detail/context_lookup.hpp"
#include "ferry/bridge/detail/runtime_link.hpp"
#include "ferry/core/detail/pool_tag.hpp"
#include "ferry/core/detail/spin.hpp"

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

using detail::now_ns;

void print_slow_callback(const slow_callback_report& r) {
  std::ostringstream who;
  if (r.thread == std::thread::id()) {
    who << "every io thread";
  } else {
    who << "io thread " << r.thread;
  }
  const double ms = std::chrono::duration<double, std::milli>(r.blocked_for).count();
  std::fprintf(stderr,
               "ferry: slow callback: %s %s %.1f ms%s%s\n",
               who.str().c_str(),
               r.ongoing ? "has not returned to the loop for" : "was blocked for",
               ms,
               r.where.empty() ? "" : " in ",
               r.where.c_str());
}

}  // namespace

// The loop's own instruments: a timer that measures how late it fires (lag), and a watchdog
// thread that posts a probe to the loop and reports when the probe waits longer than the
// threshold (a handler has not returned).
class runtime::monitor {
 public:
  explicit monitor(runtime& rt)
      : rt_(rt),
        timer_(rt.io_),
        interval_(rt.options_.lag_probe_interval),
        threshold_ns_(std::chrono::nanoseconds(rt.options_.slow_callback_threshold).count()) {
    if (interval_.count() > 0) arm_lag_probe();
  }

  // After the io threads have started (the watchdog reports the thread of a single one).
  void start_watchdog(std::thread::id single_io_thread) {
    if (threshold_ns_ == 0) return;
    io_thread_ = single_io_thread;
    report_ = rt_.options_.on_slow_callback
                  ? rt_.options_.on_slow_callback
                  : std::function<void(const slow_callback_report&)>(&print_slow_callback);
    watchdog_ = std::thread([this] { watch(); });
  }

  ~monitor() {
    if (watchdog_.joinable()) {
      {
        std::lock_guard lock(mutex_);
        stopping_ = true;
      }
      cv_.notify_all();
      watchdog_.join();
    }
  }

  void fill(loop_stats& s) const {
    s.lag = lag_.snapshot();
    s.slow_callbacks = slow_callbacks_.load(std::memory_order_relaxed);
    s.longest_stall = std::chrono::nanoseconds(longest_stall_ns_.load(std::memory_order_relaxed));
  }

 private:
  // --- lag probe: one timer, rearmed by its own handler (one writer of lag_ at a time) -------
  void arm_lag_probe() {
    due_ = std::chrono::steady_clock::now() + interval_;
    timer_.expires_at(due_);
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      lag_.record(std::chrono::steady_clock::now() - due_);
      arm_lag_probe();
    });
  }

  // --- watchdog ---------------------------------------------------------------------------
  void watch() {
    const auto tick = std::clamp(std::chrono::nanoseconds(threshold_ns_ / 4),
                                 std::chrono::nanoseconds(std::chrono::milliseconds(1)),
                                 std::chrono::nanoseconds(std::chrono::milliseconds(250)));
    std::int64_t posted = 0;  // when the outstanding probe was posted (0: none)
    bool reported = false;    // the outstanding probe's stall was reported
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      const std::int64_t now = now_ns();
      if (posted != 0) {
        const std::int64_t ran = probe_ran_ns_.load(std::memory_order_acquire);
        if (ran != 0) {
          if (reported) {
            const std::int64_t stall = ran - posted;
            if (stall > longest_stall_ns_.load(std::memory_order_relaxed)) {
              longest_stall_ns_.store(stall, std::memory_order_relaxed);
            }
            send(lock, std::chrono::nanoseconds(stall), false);
          }
          posted = 0;
          reported = false;
        } else if (!reported && now - posted > threshold_ns_) {
          slow_callbacks_.fetch_add(1, std::memory_order_relaxed);
          reported = true;
          send(lock, std::chrono::nanoseconds(now - posted), true);
        }
      }
      if (posted == 0 && !stopping_) {
        posted = now_ns();
        probe_ran_ns_.store(0, std::memory_order_relaxed);
        boost::asio::post(rt_.io_,
                          [this] { probe_ran_ns_.store(now_ns(), std::memory_order_release); });
      }
      cv_.wait_for(lock, tick, [this] { return stopping_; });
    }
  }

  void send(std::unique_lock<std::mutex>& lock, std::chrono::nanoseconds blocked, bool ongoing) {
    slow_callback_report r;
    r.blocked_for = blocked;
    r.thread = io_thread_;
    r.ongoing = ongoing;
    lock.unlock();
    try {
      report_(r);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ferry: on_slow_callback threw: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "ferry: on_slow_callback threw\n");
    }
    lock.lock();
  }

  runtime& rt_;
  boost::asio::steady_timer timer_;
  const std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point due_;
  latency_histogram lag_;

  const std::int64_t threshold_ns_;
  std::thread::id io_thread_;
  std::function<void(const slow_callback_report&)> report_;
  std::thread watchdog_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::atomic<std::int64_t> probe_ran_ns_{0};
  std::atomic<std::uint64_t> slow_callbacks_{0};
  std::atomic<std::int64_t> longest_stall_ns_{0};
};

runtime::runtime(runtime_options options)
    : options_(validated(std::move(options))),
      io_(static_cast<int>(options_.io_threads)),
      cpu_(std::make_unique<cpu_pool>(
          options_.cpu_threads, options_.max_offloads_in_flight, options_.spin, options_.cpu_nice)),
      blocking_(std::make_unique<blocking_pool>(options_.blocking_threads)),
      inbox_(io_, options_.spin, cpu_->concurrency()) {
  // Lets offload(f)/to_thread(f) find this runtime's pools from any executor on its contexts.
  boost::asio::add_service(io_, new detail::runtime_link(io_, this));
  boost::asio::add_service(*cpu_, new detail::runtime_link(*cpu_, this));
  work_.emplace(io_.get_executor());
  monitor_ = std::make_unique<monitor>(*this);
  threads_.reserve(options_.io_threads);
  try {
    for (std::size_t i = 0; i < options_.io_threads; ++i) {
      threads_.emplace_back([this] { io_thread_main(); });
    }
    monitor_->start_watchdog(threads_.size() == 1 ? threads_.front().get_id() : std::thread::id());
  } catch (...) {
    io_.stop();
    for (auto& t : threads_) t.join();
    monitor_.reset();
    throw;
  }
}

runtime::~runtime() {
  work_.reset();
  io_.stop();
  for (auto& t : threads_) t.join();
  monitor_.reset();  // joins the watchdog; its timer's and probes' handlers die with io_
  // The loop is stopped: completions the pools post now wait in the io_context's queue and are
  // destroyed with it. Drain the pools first, so no pool thread touches a destroyed context.
  blocking_.reset();
  cpu_.reset();
  inbox_.discard();  // completions that arrived after the loop stopped: destroyed, like io_'s
  // io_ is destroyed last (member order): it destroys the handlers that never ran.
}

void runtime::io_thread_main() {
  current_runtime = this;
  // A name to find the loop by in top -H, gdb, chrt (15 characters at most).
  pthread_setname_np(pthread_self(), "ferry-io");
  for (;;) {
    try {
      io_.run();
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

boost::asio::any_io_executor runtime::begin_run(const std::shared_ptr<run_state>& state) {
  if (running_in_this_thread()) {
    throw std::logic_error(
        "ferry::runtime::run called from one of the runtime's own io threads (it would wait "
        "for itself); co_await the task instead");
  }
  std::lock_guard lock(run_mutex_);
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
  std::lock_guard lock(run_mutex_);
  active_executor_ = ex;
  if (stop_requested_early_) {
    stop_requested_early_ = false;
    post_stop_locked();
  }
}

void runtime::finish_run(run_state& state, std::exception_ptr error) {
  std::lock_guard lock(state.mutex);
  state.error = std::move(error);
  state.done = true;
  state.cv.notify_all();
}

void runtime::end_run(run_state& state) {
  {
    std::unique_lock lock(state.mutex);
    state.cv.wait(lock, [&] { return state.done; });
  }
  std::shared_ptr<void> signals;
  {
    std::lock_guard lock(run_mutex_);
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
  std::lock_guard lock(run_mutex_);
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
