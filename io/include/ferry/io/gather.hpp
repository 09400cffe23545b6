// ferry/io/gather.hpp — asyncio.gather: run tasks concurrently and collect their results.
//
//   auto [user, orders] = co_await ferry::gather(load_user(id), load_orders(id));
//   std::vector<int> sizes = co_await ferry::gather(std::move(tasks));     // vector<task<int>>
//   auto [a, b] = co_await ferry::gather_settled(fetch(x), fetch(y));        // outcome<T> each
//
// Executors: every child is co_spawned on the caller's executor. When that executor is a strand
// (a user's strand, the strand `runtime::run` gives main on several io threads, or the strand a
// ferry child itself runs on), the children run directly on it: they interleave with each other
// and with the caller, as code sharing that strand does. Otherwise each child gets a strand of
// its own on that executor: on a multi-threaded io_context or a cpu_pool the children run in
// parallel, and each one's cancellation is serialised with its code. `co_await
// this_coro::executor` in a child yields the strand it runs on. A child starts once the caller
// has suspended, never inline in the call. Results keep argument order; a `void` child gives
// `std::monostate`.
//
// gather: the first child to fail (by completion order) makes gather ask the others to stop
// (terminal cancellation); gather waits until every child has finished, then rethrows that first
// failure. Otherwise it returns every value.
// gather_settled: never stops a child because another failed; returns every child's
// `ferry::outcome<T>` (asyncio's `return_exceptions=True`). It does not throw for a child's
// failure.
//
// Thread safety: the functions may be called from any coroutine; each call is independent.
// Children may run on several threads at once (see above): what they share needs its own
// synchronisation, as with `co_spawn`.
//
// Resumes on: the caller's executor, by post, once every child has finished.
//
// Cancellation: a cancellation of the awaiting coroutine (terminal, partial or total — what its
// filter lets through; Asio's default is terminal) is forwarded to every unfinished child as a
// terminal cancellation, emitted in the child's own execution context. A child that had not
// started yet still starts and is cancelled at its first suspension point (every task handed to
// gather is attempted; one that finishes without suspending keeps its outcome). gather and
// gather_settled still wait until every child has finished — nothing they started outlives them —
// and then complete with the children's outcomes, exactly as without cancellation: gather rethrows
// the first failure (typically `system_error(operation_aborted)` from a cancelled child; values if
// every child still succeeded), gather_settled returns the outcomes (cancelled children hold
// operation_aborted) and does not throw. The awaiting coroutine stays cancelled: with Asio's
// default `throw_if_cancelled`, its next `co_await` throws operation_aborted. A child must
// respond to cancellation in a timely manner for gather to return promptly.
//
// Lifetime: the tasks are moved in; what they borrow must outlive the `co_await` (it does when
// it lives in the awaiting frame). No child outlives the call.
//
// Errors: gather: the first child's exception, type intact. gather_settled: none of its own
// (std::bad_alloc aside). A gather of no tasks completes at once (by post).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstddef>
#include <exception>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "ferry/io/detail/fan_op.hpp"
#include "ferry/io/outcome.hpp"
#include "ferry/io/task.hpp"

namespace ferry {
namespace detail {

template <class T>
outcome<T> outcome_of(child<T>& c) {
  if (c.error) return outcome<T>::failure(c.error);
  if constexpr (std::is_void_v<T>) {
    return outcome<void>();
  } else {
    return outcome<T>(std::move(*c.value));
  }
}

template <class... T>
struct gather_tuple {
  using result_type = std::tuple<stored_t<T>...>;
  static std::optional<result_type> collect(tuple_children<T...>& children,
                                            const fan_summary& summary,
                                            std::exception_ptr& error) {
    if (summary.first_error) {
      error = summary.first_error;
      return std::nullopt;
    }
    return values(children, std::index_sequence_for<T...>());
  }
  template <std::size_t... I>
  static std::optional<result_type> values(tuple_children<T...>& children,
                                           std::index_sequence<I...>) {
    return std::optional<result_type>(std::in_place,
                                      std::move(*children.template get<I>().value)...);
  }
};

template <class... T>
struct settle_tuple {
  using result_type = std::tuple<outcome<T>...>;
  static std::optional<result_type> collect(tuple_children<T...>& children,
                                            const fan_summary&,
                                            std::exception_ptr&) {
    return outcomes(children, std::index_sequence_for<T...>());
  }
  template <std::size_t... I>
  static std::optional<result_type> outcomes(tuple_children<T...>& children,
                                             std::index_sequence<I...>) {
    return std::optional<result_type>(std::in_place, outcome_of(children.template get<I>())...);
  }
};

template <class T>
using gather_vector_t = std::conditional_t<std::is_void_v<T>, void, std::vector<T>>;

template <class T>
struct gather_vector {
  using result_type = std::conditional_t<std::is_void_v<T>, std::monostate, std::vector<T>>;
  static std::optional<result_type> collect(vector_children<T>& children,
                                            const fan_summary& summary,
                                            std::exception_ptr& error) {
    if (summary.first_error) {
      error = summary.first_error;
      return std::nullopt;
    }
    std::optional<result_type> result(std::in_place);
    if constexpr (!std::is_void_v<T>) {
      result->reserve(children.size());
      for (std::size_t i = 0; i < children.size(); ++i) {
        result->push_back(std::move(*children[i].value));
      }
    }
    return result;
  }
};

template <class T>
struct settle_vector {
  using result_type = std::vector<outcome<T>>;
  static std::optional<result_type> collect(vector_children<T>& children,
                                            const fan_summary&,
                                            std::exception_ptr&) {
    std::optional<result_type> result(std::in_place);
    result->reserve(children.size());
    for (std::size_t i = 0; i < children.size(); ++i) result->push_back(outcome_of(children[i]));
    return result;
  }
};

}  // namespace detail

/// Runs `children` concurrently; returns their values in argument order (void → monostate), or
/// rethrows the first failure after every child has finished (see the file comment).
template <class... T>
task<std::tuple<detail::stored_t<T>...>> gather(task<T>... children) {
  const boost::asio::any_io_executor ex = co_await boost::asio::this_coro::executor;
  auto op = detail::async_fan<detail::tuple_children<T...>, detail::gather_tuple<T...>>(
      ex,
      std::tuple<task<T>...>(std::move(children)...),
      detail::fan_policy::fail_fast,
      std::nullopt,
      boost::asio::use_awaitable);
  auto result = co_await std::move(op);
  co_return std::move(*result);
}

/// Runs every task of `children` concurrently; returns their values in order, or rethrows the
/// first failure after every child has finished. For `task<void>` children it returns
/// `task<void>` (a vector of monostate would carry nothing).
template <class T>
task<detail::gather_vector_t<T>> gather(std::vector<task<T>> children) {
  const boost::asio::any_io_executor ex = co_await boost::asio::this_coro::executor;
  auto op = detail::async_fan<detail::vector_children<T>, detail::gather_vector<T>>(
      ex,
      std::move(children),
      detail::fan_policy::fail_fast,
      std::nullopt,
      boost::asio::use_awaitable);
  [[maybe_unused]] auto result = co_await std::move(op);
  if constexpr (std::is_void_v<T>) {
    co_return;
  } else {
    co_return std::move(*result);
  }
}

/// Runs `children` concurrently and returns each one's outcome, in argument order; never throws
/// for a child's failure.
template <class... T>
task<std::tuple<outcome<T>...>> gather_settled(task<T>... children) {
  const boost::asio::any_io_executor ex = co_await boost::asio::this_coro::executor;
  auto op = detail::async_fan<detail::tuple_children<T...>, detail::settle_tuple<T...>>(
      ex,
      std::tuple<task<T>...>(std::move(children)...),
      detail::fan_policy::settle,
      std::nullopt,
      boost::asio::use_awaitable);
  auto result = co_await std::move(op);
  co_return std::move(*result);
}

/// Runs every task of `children` concurrently and returns each one's outcome, in order.
template <class T>
task<std::vector<outcome<T>>> gather_settled(std::vector<task<T>> children) {
  const boost::asio::any_io_executor ex = co_await boost::asio::this_coro::executor;
  auto op = detail::async_fan<detail::vector_children<T>, detail::settle_vector<T>>(
      ex,
      std::move(children),
      detail::fan_policy::settle,
      std::nullopt,
      boost::asio::use_awaitable);
  auto result = co_await std::move(op);
  co_return std::move(*result);
}

}  // namespace ferry
