// tests/support/ferry_test.hpp — helpers shared by ferry's tests.
//
// Brings `asio` (boost::asio) and std::chrono_literals into the including file.
//
// FERRY_CO_TEST(Suite, Name) { ... co_await ...; } defines a GoogleTest test whose body is a
// coroutine run to completion on a fresh ferry::runtime (io_threads = 1). Inside a coroutine use
// EXPECT_* (ASSERT_* would `return` from a coroutine); co_return early where needed.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/require.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/system_error.hpp>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <ferry/ferry.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#define FERRY_CO_TEST(suite, name)                                \
  ::ferry::task<void> suite##_##name##_co_body();                 \
  TEST(suite, name) { ::ferry::run(suite##_##name##_co_body()); } \
  ::ferry::task<void> suite##_##name##_co_body()

// The names every test spells the same way.
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace ferry::test {

/// True when `e` holds `boost::system::system_error(operation_aborted)`: a cancelled operation.
inline bool is_operation_aborted(const std::exception_ptr& e) {
  try {
    if (e) std::rethrow_exception(e);
  } catch (const boost::system::system_error& error) {
    return error.code() == boost::asio::error::operation_aborted;
  } catch (...) {
  }
  return false;
}

/// what() of the std::exception in `e` ("" when empty or not a std::exception).
inline std::string message_of(const std::exception_ptr& e) {
  try {
    if (e) std::rethrow_exception(e);
  } catch (const std::exception& error) {
    return error.what();
  } catch (...) {
  }
  return "";
}

/// How long any wait in the tests may last before the test fails instead of hanging (a hang
/// guard, never a timing assertion: a correct test is done long before it).
inline constexpr std::chrono::seconds hang_guard{60};

/// Polls `pred` until it holds; false after `guard` (a hang guard, not a timing assertion).
inline bool wait_until(const std::function<bool()>& pred,
                       std::chrono::milliseconds guard = hang_guard) {
  const auto deadline = std::chrono::steady_clock::now() + guard;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

/// A door that pool functions wait at until the test opens it. `wait` returns false only when
/// the hang guard (`hang_guard`) ran out first.
class gate {
 public:
  bool wait() {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, hang_guard, [&] { return open_; });
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

/// A coroutine started by `spawn_checked`. An exception escaping the coroutine fails the test
/// where it escapes, with its message and the line of the spawn. When the handle is destroyed
/// (at the end of the test's scope) the test fails unless the coroutine ran to its end, so a
/// check at the end of a coroutine that never got there cannot pass silently. A coroutine meant
/// to stay suspended (destroyed with its context) says so with `may_not_finish()`.
class [[nodiscard]] spawned {
 public:
  struct state {
    std::atomic<bool> ended{false};  // returned or threw
    std::atomic<bool> threw{false};
  };

  spawned(std::shared_ptr<state> s, ferry::spawn_location where) noexcept
      : state_(std::move(s)), where_(where) {}
  spawned(spawned&& other) noexcept
      : state_(std::move(other.state_)),
        where_(other.where_),
        may_not_finish_(other.may_not_finish_) {}
  spawned& operator=(spawned&&) = delete;
  ~spawned() {
    if (state_ != nullptr && !may_not_finish_ && !state_->ended.load()) {
      ADD_FAILURE_AT(where_.file, static_cast<int>(where_.line))
          << "the coroutine spawned here never ran to its end";
    }
  }

  /// The coroutine returned or threw (a throw has failed the test already).
  bool ended() const noexcept { return state_->ended.load(); }
  /// The coroutine returned.
  bool returned() const noexcept { return ended() && !state_->threw.load(); }
  /// The coroutine may still be suspended when the handle is destroyed (its context destroys it).
  void may_not_finish() noexcept { may_not_finish_ = true; }

 private:
  std::shared_ptr<state> state_;
  ferry::spawn_location where_;
  bool may_not_finish_ = false;
};

/// Every coroutine of `coros` returned or threw (for a test that waits until they have).
inline bool all_ended(const std::vector<spawned>& coros) {
  for (const auto& c : coros)
    if (!c.ended()) return false;
  return true;
}

namespace detail {

template <class Where, class F, class Token>
void spawn_reporting(Where&& where,
                     F&& f,
                     std::shared_ptr<spawned::state> s,
                     ferry::spawn_location at,
                     Token&& bind) {
  boost::asio::co_spawn(
      std::forward<Where>(where),
      std::forward<F>(f),
      bind([s = std::move(s), at](std::exception_ptr e, auto&&...) {
        if (e) {
          s->threw.store(true);
          ADD_FAILURE_AT(at.file, static_cast<int>(at.line))
              << "the coroutine spawned here threw: "
              << (message_of(e).empty() ? "(not a std::exception)" : message_of(e));
        }
        s->ended.store(true);
      }));
}

}  // namespace detail

/// Starts the coroutine `f` (a callable returning a task, or a task) on `where` (an execution
/// context or executor); see `spawned` for what the test is told. Keep the handle for as long as
/// the coroutine may run: `auto c = spawn_checked(io, ...); io.run();`.
template <class Where, class F>
spawned spawn_checked(Where&& where,
                      F&& f,
                      ferry::spawn_location at = ferry::spawn_location::current()) {
  auto s = std::make_shared<spawned::state>();
  detail::spawn_reporting(
      std::forward<Where>(where), std::forward<F>(f), s, at, [](auto h) { return h; });
  return spawned(std::move(s), at);
}

/// spawn_checked whose coroutine is cancelled through `slot` (a cancellation_signal's slot): the
/// test emits on the signal. The coroutine is expected to handle the cancellation and run to its
/// end; a cancellation that escapes it fails the test like any exception.
template <class Where, class F>
spawned spawn_checked(Where&& where,
                      F&& f,
                      boost::asio::cancellation_slot slot,
                      ferry::spawn_location at = ferry::spawn_location::current()) {
  auto s = std::make_shared<spawned::state>();
  detail::spawn_reporting(std::forward<Where>(where), std::forward<F>(f), s, at, [slot](auto h) {
    return boost::asio::bind_cancellation_slot(slot, std::move(h));
  });
  return spawned(std::move(s), at);
}

/// Runs `t` on `io` until it and everything it started have finished; returns its outcome.
template <class T>
ferry::outcome<T> run(boost::asio::io_context& io, ferry::task<T> t) {
  std::optional<ferry::outcome<T>> result;
  auto body = [&result](ferry::task<T> t) -> ferry::task<void> {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(t);
      result.emplace();
    } else {
      T value = co_await std::move(t);
      result.emplace(std::move(value));
    }
  };
  boost::asio::co_spawn(io, body(std::move(t)), [&](std::exception_ptr e) {
    if (e) result.emplace(ferry::outcome<T>::failure(e));
  });
  io.run();
  io.restart();
  return std::move(*result);
}

/// Sets a flag when destroyed: proves a coroutine frame has been unwound.
struct set_on_exit {
  bool& flag;
  ~set_on_exit() { flag = true; }
};

/// What a test coroutine records: it started, it finished (unwound), it saw operation_aborted.
struct probe {
  bool started = false;
  bool finished = false;
  bool aborted = false;
};

/// Waits (practically) forever; records in `p` that it started, saw operation_aborted and
/// unwound. `T` is the type it would produce (it never does).
template <class T = void>
ferry::task<T> wait_forever(probe& p) {
  p.started = true;
  set_on_exit exit{p.finished};
  try {
    co_await ferry::sleep(std::chrono::hours(1));
  } catch (const boost::system::system_error& e) {
    p.aborted = e.code() == boost::asio::error::operation_aborted;
    throw;
  }
  if constexpr (!std::is_void_v<T>) co_return T{};
}

/// Waits (practically) forever and, when cancelled, cleans up asynchronously (a 2 ms sleep it does
/// not let the cancellation interrupt) before setting `cleanup_done`: a child that takes time to
/// stop. True when it was cancelled.
inline ferry::task<bool> stop_slowly(bool& cleanup_done) {
  bool cancelled = false;
  try {
    co_await ferry::sleep(std::chrono::hours(1));
  } catch (const boost::system::system_error&) {
    cancelled = true;
  }
  if (cancelled) {
    co_await boost::asio::this_coro::reset_cancellation_state();
    co_await ferry::sleep(std::chrono::milliseconds(2));  // asynchronous clean-up
    cleanup_done = true;
  }
  co_return cancelled;
}

/// What the awaiter of a composite saw when it was cancelled (see cancel_the_awaiter).
struct awaiter_cancellation {
  bool started_before_cancel = false;  ///< `started()` held when the cancellation was emitted
  bool completed = false;              ///< the awaiter's completion ran
  std::exception_ptr error;            ///< what it completed with
};

/// Starts `op` on `io`, runs what is ready (its children start), emits a terminal cancellation on
/// its awaiter's slot, then runs `io` until everything has finished.
template <class Op>
awaiter_cancellation cancel_the_awaiter(boost::asio::io_context& io,
                                        Op op,
                                        const std::function<bool()>& started) {
  awaiter_cancellation r;
  boost::asio::cancellation_signal signal;
  boost::asio::co_spawn(
      io,
      std::move(op),
      boost::asio::bind_cancellation_slot(signal.slot(), [&r](std::exception_ptr e, auto&&...) {
        r.error = e;
        r.completed = true;
      }));
  io.poll();
  r.started_before_cancel = started();
  signal.emit(boost::asio::cancellation_type::terminal);
  io.run();
  return r;
}

/// The completion of an operation the test may cancel: bound to `signal`'s slot and, by
/// `handler(io)`, to `io`; counts its calls and keeps the error it completed with (whatever the
/// operation's values).
struct cancellable_completion {
  boost::asio::cancellation_signal signal;
  int calls = 0;
  std::exception_ptr error;

  auto handler(boost::asio::io_context& io) {
    return boost::asio::bind_cancellation_slot(
        signal.slot(), boost::asio::bind_executor(io, [this](std::exception_ptr e, auto&&...) {
          ++calls;
          error = e;
        }));
  }
  void cancel(boost::asio::cancellation_type type = boost::asio::cancellation_type::terminal) {
    signal.emit(type);
  }
};

/// A completion handler for an operation producing an int, run on `io`: stores the value in `out`,
/// or -1 when the operation failed.
inline auto value_into(boost::asio::io_context& io, int& out) {
  return boost::asio::bind_executor(io, [&out](std::exception_ptr e, int v) { out = e ? -1 : v; });
}

/// A completion handler run on `io` that keeps the error the operation completed with.
inline auto error_into(boost::asio::io_context& io, std::exception_ptr& out) {
  return boost::asio::bind_executor(io, [&out](std::exception_ptr e, auto&&...) { out = e; });
}

/// A function for a pool that sets `ran` (a bool or std::atomic<bool>) and returns `v`.
template <class Flag>
auto mark_and_return(Flag& ran, int v) {
  return [&ran, v] {
    ran = true;
    return v;
  };
}

/// Checks that `pool.get_executor()` is an Asio executor of `pool` that may block (like
/// asio::thread_pool's), can be required never to, and is not running on the calling thread.
template <class Pool>
void expect_asio_executor_of(Pool& pool) {
  namespace execution = boost::asio::execution;
  auto ex = pool.get_executor();
  EXPECT_EQ(&boost::asio::query(ex, execution::context), &pool);
  EXPECT_EQ(&ex.context(), &pool);
  EXPECT_EQ(boost::asio::query(ex, execution::blocking), execution::blocking.possibly);
  EXPECT_EQ(
      boost::asio::query(boost::asio::require(ex, execution::blocking.never), execution::blocking),
      execution::blocking.never);
  EXPECT_TRUE(ex == pool.get_executor());
  EXPECT_FALSE(ex.running_in_this_thread());
}

/// Produces `v` once it holds a permit of `gate`.
inline ferry::task<int> value_after(ferry::semaphore& gate, int v) {
  auto permit = co_await gate.acquire();
  co_return v;
}

/// Produces `v` after one trip through the loop.
inline ferry::task<int> value_soon(int v) {
  co_await ferry::sleep(std::chrono::milliseconds(0));
  co_return v;
}

/// Throws std::runtime_error(what) after one trip through the loop.
template <class T = int>
ferry::task<T> fail_soon(std::string what) {
  co_await ferry::sleep(std::chrono::milliseconds(0));
  throw std::runtime_error(what);
}

/// A random cancellation type among terminal, partial and total (for stress tests).
inline boost::asio::cancellation_type random_cancellation_type(std::mt19937& rng) {
  const boost::asio::cancellation_type types[] = {boost::asio::cancellation_type::terminal,
                                                  boost::asio::cancellation_type::partial,
                                                  boost::asio::cancellation_type::total};
  return types[rng() % 3];
}

/// Emits `type` on `signal` from `ex` after `hops` trips through it (a cancellation that lands at
/// a random point of an operation running on `ex`).
inline void emit_after(boost::asio::any_io_executor ex,
                       std::shared_ptr<boost::asio::cancellation_signal> signal,
                       unsigned hops,
                       boost::asio::cancellation_type type) {
  boost::asio::post(ex, [ex, signal = std::move(signal), hops, type]() mutable {
    if (hops == 0) {
      signal->emit(type);
    } else {
      emit_after(ex, std::move(signal), hops - 1, type);
    }
  });
}

/// Collects the runtime's slow-callback reports (`runtime_options::on_slow_callback = log.sink()`).
struct report_log {
  std::mutex mutex;
  std::vector<ferry::slow_callback_report> reports;
  std::atomic<bool> ongoing_seen{false};  ///< a report of a stall still in progress arrived

  std::function<void(const ferry::slow_callback_report&)> sink() {
    return [this](const ferry::slow_callback_report& r) {
      std::lock_guard lock(mutex);
      reports.push_back(r);
      if (r.ongoing) ongoing_seen.store(true);
    };
  }
  std::vector<ferry::slow_callback_report> copy() {
    std::lock_guard lock(mutex);
    return reports;
  }
  /// A report of a stall that has ended arrived.
  bool has_final() {
    for (const auto& r : copy())
      if (!r.ongoing) return true;
    return false;
  }
};

}  // namespace ferry::test
