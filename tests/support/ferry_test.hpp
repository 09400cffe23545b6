// tests/support/ferry_test.hpp — helpers shared by ferry's tests.
//
// FERRY_CO_TEST(Suite, Name) { ... co_await ...; } defines a GoogleTest test whose body is a
// coroutine run to completion on a fresh ferry::runtime (io_threads = 1). Inside a coroutine use
// EXPECT_* (ASSERT_* would `return` from a coroutine); co_return early where needed.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
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
#include <vector>

#define FERRY_CO_TEST(suite, name)                                \
  ::ferry::task<void> suite##_##name##_co_body();                 \
  TEST(suite, name) { ::ferry::run(suite##_##name##_co_body()); } \
  ::ferry::task<void> suite##_##name##_co_body()

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
