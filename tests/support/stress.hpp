// tests/support/stress.hpp — what the io primitives' stress tests share.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <exception>
#include <ferry/ferry.hpp>
#include <memory>
#include <optional>
#include <random>
#include <utility>
#include <variant>

#include "ferry_test.hpp"

namespace ferry::test {

/// The counts every stress test keeps: acquisitions, attempts that were cancelled, outcomes no
/// contract allows, and the worker coroutines that have finished.
struct stress_counts {
  std::atomic<long> acquired{0};
  std::atomic<long> cancelled{0};
  std::atomic<int> unexpected{0};
  std::atomic<int> finished{0};

  /// The completion of a worker coroutine: counts it as finished, and an exception as unexpected.
  auto on_finished() {
    return [this](std::exception_ptr e) {
      if (e) ++unexpected;
      ++finished;
    };
  }
};

// g++ 12 at -O1 inlines Asio's coroutine frame allocation (aligned_alloc) into these coroutines
// and then cannot match it with the frame's sized operator delete (which frees it correctly).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

/// `acquire` (a task producing a guard) raced against a sleep of under 50 µs: the guard, or
/// nothing when the sleep won and the acquisition was cancelled.
template <class Guard>
ferry::task<std::optional<Guard>> before_a_short_sleep(ferry::task<Guard> acquire,
                                                       std::mt19937& rng) {
  using namespace boost::asio::experimental::awaitable_operators;
  const auto delay = std::chrono::microseconds(rng() % 50);
  auto r = co_await (std::move(acquire) || ferry::sleep(delay));
  if (r.index() != 0) co_return std::nullopt;
  co_return std::move(std::get<0>(r));
}

/// Starts `async_op(token)` and cancels it from `ex` after 0 to 3 trips through it, with a random
/// cancellation type: the error it completed with (none when it was granted first).
template <class AsyncOp>
ferry::task<std::exception_ptr> cancelled_at_random(boost::asio::any_io_executor ex,
                                                    std::mt19937& rng,
                                                    AsyncOp async_op) {
  auto signal = std::make_shared<boost::asio::cancellation_signal>();
  emit_after(ex, signal, rng() % 4, random_cancellation_type(rng));
  auto [e] = co_await async_op(boost::asio::bind_cancellation_slot(
      signal->slot(), boost::asio::as_tuple(boost::asio::use_awaitable)));
  co_return e;
}

#pragma GCC diagnostic pop

}  // namespace ferry::test
