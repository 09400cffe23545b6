// Configure-time probe (FerryCompilerCheck.cmake): does the compiler destroy a temporary twice
// when a capturing lambda with a non-trivial destructor is written inside the `co_await` of an
// Asio operation? g++ 11 and 12 do (GCC PR 100611); the shape needs only Asio, not ferry.
// Exit 0: every object was destroyed exactly once. Exit 1: some were destroyed twice.
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdio>
#include <exception>
#include <type_traits>
#include <utility>

namespace asio = boost::asio;

namespace {

int constructed = 0;
int destroyed = 0;

struct counted {
  counted() { ++constructed; }
  counted(const counted&) { ++constructed; }
  counted(counted&&) noexcept { ++constructed; }
  counted& operator=(const counted&) = default;
  ~counted() { ++destroyed; }
  int value = 7;
};

struct initiate_call {
  template <class Handler, class F>
  void operator()(Handler&& handler, F&& f) const {
    auto ex = asio::get_associated_executor(handler);
    asio::post(
        ex,
        [h = std::forward<Handler>(handler), g = std::decay_t<F>(std::forward<F>(f))]() mutable {
          const int v = std::move(g)();
          std::move(h)(v);
        });
  }
};

template <class F, class Token = asio::use_awaitable_t<>>
auto call(F&& f, Token&& token = {}) {
  return asio::async_initiate<Token, void(int)>(initiate_call{}, token, std::forward<F>(f));
}

asio::awaitable<int> body() {
  int sum = 0;
  for (int i = 0; i < 3; ++i) sum += co_await call([c = counted()] { return c.value; });
  co_return sum;
}

}  // namespace

int main() {
  int result = 0;
  {
    asio::io_context ioc;
    asio::co_spawn(ioc, body(), [&](std::exception_ptr, int v) { result = v; });
    ioc.run();
  }
  std::printf("constructed %d, destroyed %d, result %d\n", constructed, destroyed, result);
  return destroyed == constructed && result == 21 ? 0 : 1;
}
