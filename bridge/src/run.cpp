// ferry/bridge/src/run.cpp — runtime::run's non-template part: one run at a time, SIGINT and
// SIGTERM watched while it is in progress, request_stop, and the hand-back of main's outcome.
#include <signal.h>

#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <future>
#include <stdexcept>

#include "ferry/bridge/runtime.hpp"
#include "runtime_impl.hpp"

namespace ferry {
namespace detail {

constexpr std::array<int, 2> watched_signals{SIGINT, SIGTERM};

struct run_signals {
  explicit run_signals(boost::asio::io_context& io) : set(io) {}

  boost::asio::signal_set set;
  // Asio resets a signal to SIG_DFL when its last signal_set goes: what was there before run.
  std::array<struct sigaction, watched_signals.size()> previous{};
};

}  // namespace detail

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

  auto signals = std::make_shared<detail::run_signals>(io_);
  for (std::size_t i = 0; i < detail::watched_signals.size(); ++i) {
    ::sigaction(detail::watched_signals[i], nullptr, &signals->previous[i]);
  }
  for (int sig : detail::watched_signals) signals->set.add(sig);
  struct rearm {
    runtime* self;
    std::weak_ptr<detail::run_signals> signals;
    void operator()(const boost::system::error_code& ec, int) const {
      if (ec) return;  // cancelled at the end of run
      self->request_stop();
      if (auto s = signals.lock()) s->set.async_wait(*this);
    }
  };
  signals->set.async_wait(rearm{this, signals});
  impl_->signals = std::move(signals);
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
  std::shared_ptr<detail::run_signals> signals;
  {
    detail::lock_guard lock(run_mutex_);
    active_run_.reset();
    active_executor_ = boost::asio::any_io_executor();
    signals = std::move(impl_->signals);
  }
  // The signal_set belongs to the loop: destroy it there, then put back the dispositions it
  // replaced (unless another signal_set still watches the signal), and only then return.
  std::promise<void> removed;
  boost::asio::post(io_, [&removed, signals = std::move(signals)]() mutable {
    signals->set.cancel();
    const auto previous = signals->previous;
    signals.reset();
    for (std::size_t i = 0; i < detail::watched_signals.size(); ++i) {
      struct sigaction now {};
      ::sigaction(detail::watched_signals[i], nullptr, &now);
      if (now.sa_handler == SIG_DFL) ::sigaction(detail::watched_signals[i], &previous[i], nullptr);
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

}  // namespace ferry
