// ferry/bridge/detail/bound_call.hpp — `f` plus arguments as one offloadable callable, and the
// rule that splits `offload(f, args..., token)` into the call and its completion token.
//
// bound_call<F, Args...> owns decay-copies of `f` and the arguments (as `std::thread` and
// `std::bind_front` do) and is invoked once, as an rvalue, with the arguments moved in. When `f`
// is invocable as `f(std::stop_token, args...)` it exposes only `operator()(std::stop_token)`, so
// the operation passes its stop token first (as `std::jthread` does); otherwise only
// `operator()()`. It is built inside the library from forwarded arguments, never in the caller's
// `co_await` expression.
//
// The token rule, shared by offload, to_thread and run_in_executor: in `op(f, a1, ..., an)` the
// last argument `an` is the completion token iff `f(a1, ..., an-1)` (with or without a leading
// stop token) is a valid call and `an` is a `boost::asio::completion_token_for` that call's
// completion signature — Asio's own tokens, and any callable accepting the signature (a
// callback). Otherwise every argument goes to `f` and the token is `use_awaitable`. To pass such
// a callable to `f` as its last argument, give the token explicitly after it.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstddef>
#include <functional>
#include <stop_token>
#include <tuple>
#include <type_traits>
#include <utility>

#include "ferry/bridge/detail/offload_op.hpp"

namespace ferry::detail {

template <class F, class... Args>
class bound_call {
 public:
  static constexpr bool with_stop_token = std::is_invocable_v<F&&, std::stop_token, Args&&...>;
  static constexpr bool without_stop_token =
      !with_stop_token && std::is_invocable_v<F&&, Args&&...>;

  template <class G, class... A>
  explicit bound_call(std::in_place_t, G&& f, A&&... args)
      : f_(std::forward<G>(f)), args_(std::forward<A>(args)...) {}

  auto operator()() && ->
      typename std::conditional_t<without_stop_token,
                                  std::invoke_result<F&&, Args&&...>,
                                  std::type_identity<void>>::type requires without_stop_token {
    return std::apply(std::move(f_), std::move(args_));
  }

  auto operator()(std::stop_token st) && ->
      typename std::conditional_t<with_stop_token,
                                  std::invoke_result<F&&, std::stop_token, Args&&...>,
                                  std::type_identity<void>>::type requires with_stop_token {
    return std::apply(
        [&](Args&&... args) -> decltype(auto) {
          return std::invoke(std::move(f_), std::move(st), std::move(args)...);
        },
        std::move(args_));
  }

 private:
  [[no_unique_address]] F f_;
  [[no_unique_address]] std::tuple<Args...> args_;
};

/// The callable an operation on `f(args...)` runs: `F` itself when there are no arguments.
template <class F, class... Args>
struct call_of {
  using type = bound_call<std::decay_t<F>, std::decay_t<Args>...>;
};

template <class F>
struct call_of<F> {
  using type = F;
};

template <class F, class... Args>
using call_of_t = typename call_of<F, Args...>::type;

/// `f(args...)` can be offloaded: f and every argument decay-copy (and move), and the call is
/// valid with or without a leading stop token.
template <class F, class... Args>
concept offloadable_call =
    (sizeof...(Args) == 0 && offloadable<F>) ||
    (sizeof...(Args) > 0 && std::is_constructible_v<std::decay_t<F>, F> &&
     std::is_move_constructible_v<std::decay_t<F>> &&
     (std::is_constructible_v<std::decay_t<Args>, Args> && ...) &&
     (std::is_move_constructible_v<std::decay_t<Args>> && ...) &&
     (std::is_invocable_v<std::decay_t<F>&&, std::decay_t<Args>&&...> ||
      std::is_invocable_v<std::decay_t<F>&&,
                          std::stop_token,
                          std::decay_t<Args>&&...>)&&offloadable<call_of_t<F, Args...>>);

template <std::size_t N, class... Ts>
using nth_t = std::tuple_element_t<N, std::tuple<Ts...>>;

template <class F,
          class Tuple,
          class Token,
          class = std::make_index_sequence<std::tuple_size_v<Tuple>>>
struct last_is_token_impl : std::false_type {};

template <class F, class... Args, class Token, std::size_t... I>
struct last_is_token_impl<F, std::tuple<Args...>, Token, std::index_sequence<I...>> {
  static constexpr bool value = [] {
    if constexpr (offloadable_call<F, Args...>) {
      return boost::asio::completion_token_for<Token, offload_signature_t<call_of_t<F, Args...>>>;
    } else {
      return false;
    }
  }();
};

template <class Tuple, class Seq>
struct init_of;

template <class... Ts, std::size_t... I>
struct init_of<std::tuple<Ts...>, std::index_sequence<I...>> {
  using type = std::tuple<nth_t<I, Ts...>...>;
};

/// In `op(f, rest...)`, the last of `rest` is the completion token (see the file comment).
template <class F, class... Rest>
inline constexpr bool last_is_token_v = [] {
  if constexpr (sizeof...(Rest) == 0) {
    return false;
  } else {
    using init =
        typename init_of<std::tuple<Rest...>, std::make_index_sequence<sizeof...(Rest) - 1>>::type;
    return last_is_token_impl<F, init, nth_t<sizeof...(Rest) - 1, Rest...>>::value;
  }
}();

/// `op(f, rest...)` is valid: either the last of `rest` is the token, or all of `rest` are f's.
template <class F, class... Rest>
concept offload_arguments = last_is_token_v<F, Rest...> || offloadable_call<F, Rest...>;

// Starts the operation on f(args...) with `token`.
template <class Initiation, class Token, class F, class... Args>
auto initiate_call(Initiation&& init, Token&& token, F&& f, Args&&... args) {
  using call = call_of_t<F, Args...>;
  check_offload_result<call>();
  if constexpr (sizeof...(Args) == 0) {
    return boost::asio::async_initiate<Token, offload_signature_t<call>>(
        std::forward<Initiation>(init), token, std::forward<F>(f));
  } else {
    return boost::asio::async_initiate<Token, offload_signature_t<call>>(
        std::forward<Initiation>(init),
        token,
        call(std::in_place, std::forward<F>(f), std::forward<Args>(args)...));
  }
}

/// Applies the token rule to `op(f, rest...)` and starts the operation.
template <class Initiation, class F, class... Rest>
auto initiate_with_arguments(Initiation&& init, F&& f, Rest&&... rest) {
  if constexpr (last_is_token_v<F, Rest...>) {
    auto refs = std::forward_as_tuple(std::forward<Rest>(rest)...);
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      constexpr std::size_t last = sizeof...(Rest) - 1;
      return initiate_call(std::forward<Initiation>(init),
                           std::forward<nth_t<last, Rest...>>(std::get<last>(refs)),
                           std::forward<F>(f),
                           std::forward<nth_t<I, Rest...>>(std::get<I>(refs))...);
    }
    (std::make_index_sequence<sizeof...(Rest) - 1>{});
  } else {
    boost::asio::use_awaitable_t<> token;
    return initiate_call(
        std::forward<Initiation>(init), token, std::forward<F>(f), std::forward<Rest>(rest)...);
  }
}

}  // namespace ferry::detail
