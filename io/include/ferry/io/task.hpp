// ferry/io/task.hpp — the coroutine type of ferry handlers.
#pragma once

#include <boost/asio/awaitable.hpp>

namespace ferry {

/// A ferry handler is an ordinary Asio coroutine: `task<T>` is `boost::asio::awaitable<T>`, so
/// every Asio operation, `co_spawn`, the awaitable operators and ferry's own operations mix freely.
template <class T = void>
using task = boost::asio::awaitable<T>;

}  // namespace ferry
