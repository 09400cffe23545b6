// ferry/io/race.hpp — the first task to finish wins; the others are cancelled and awaited.
//
//   auto r = co_await ferry::race(read_reply(sock), ferry::sleep(1s));
//   if (r.index() == 0) use(std::get<0>(r));
//
// asyncio's `wait(..., return_when=FIRST_COMPLETED)` followed by cancelling the pending tasks,
// in one structured step: every child is co_spawned on the caller's executor (on a strand of its
// own, or directly on the caller's executor when that is a strand; see gather.hpp), the first
// one to finish — with a value OR an exception, as FIRST_COMPLETED counts both — wins, the
// others are asked to stop (terminal cancellation, emitted in each child's own execution
// context; a loser that had not started yet still starts and is cancelled at its first
// suspension point), and race returns only once every loser has finished too (their destructors
// and `catch` blocks have run).
//
// Result: `std::variant<R...>` (void → `std::monostate`) holding the winner's value at the
// winner's index — the index tells which one won even when types repeat. If the winner threw,
// race rethrows its exception (type intact). The losers' outcomes, values or exceptions, are
// discarded: a loser that completes with a value despite the cancellation (an item taken from a
// queue, say) loses that value — race is for operations whose late results can be dropped.
// Prefer `timeout` when the other side is a deadline: it never drops the inner result.
//
// Thread safety: may be called from any coroutine; each call is independent. Children may run
// on several threads at once.
//
// Resumes on: the caller's executor, by post, once every child has finished.
//
// Cancellation: a cancellation of the awaiting coroutine (terminal, partial or total, what its
// filter lets through) asks every child to stop; the first child to finish afterwards still
// wins (usually with operation_aborted, which race then rethrows). race always waits for every
// child.
//
// Lifetime: the tasks are moved in; what they borrow must outlive the `co_await`.
//
// Errors: the winner's exception. race needs at least one task (checked at compile time).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstddef>
#include <exception>
#include <optional>
#include <tuple>
#include <utility>
#include <variant>

#include "ferry/io/detail/fan_op.hpp"
#include "ferry/io/task.hpp"

namespace ferry {
namespace detail {

template <class... T>
struct race_variant {
  using result_type = std::variant<stored_t<T>...>;
  static std::optional<result_type> collect(tuple_children<T...>& children,
                                            const fan_summary& summary,
                                            std::exception_ptr& error) {
    child_base& winner = children.at(summary.winner);
    if (winner.error) {
      error = winner.error;
      return std::nullopt;
    }
    std::optional<result_type> result;
    take(children, summary.winner, result, std::index_sequence_for<T...>());
    return result;
  }
  template <std::size_t... I>
  static void take(tuple_children<T...>& children,
                   std::size_t winner,
                   std::optional<result_type>& result,
                   std::index_sequence<I...>) {
    ((I == winner ? (void)result.emplace(std::in_place_index<I>,
                                         std::move(*children.template get<I>().value))
                  : (void)0),
     ...);
  }
};

}  // namespace detail

/// Runs `children` concurrently; the first to finish wins, the others are cancelled and
/// awaited; returns the winner's value at its index or rethrows its exception.
template <class... T>
task<std::variant<detail::stored_t<T>...>> race(task<T>... children) {
  static_assert(sizeof...(T) > 0, "ferry::race needs at least one task");
  const boost::asio::any_io_executor ex = co_await boost::asio::this_coro::executor;
  auto op = detail::async_fan<detail::tuple_children<T...>, detail::race_variant<T...>>(
      ex,
      std::tuple<task<T>...>(std::move(children)...),
      detail::fan_policy::first_wins,
      std::nullopt,
      boost::asio::use_awaitable);
  auto result = co_await std::move(op);
  co_return std::move(*result);
}

}  // namespace ferry
