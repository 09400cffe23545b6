// tests/bridge/offload_args_test.cpp — `f` plus arguments: offload(f, args...),
// offload(pool, f, args...), to_thread(f, args...), to_thread(pool, f, args...) and
// run_in_executor(ex, f, args...), with every completion token, and the rule that tells the
// completion token from an argument.
//
// The arguments are written inline in the co_await on purpose: that is the form that must stay
// safe on every compiler (see docs/guide.md, "Known compiler issues"); under AddressSanitizer a
// double destruction or a use after free fails the test.
#include <gtest/gtest.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <ferry/ferry.hpp>
#include <functional>
#include <future>
#include <memory>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "ferry_test.hpp"

namespace {

using ferry::test::message_of;

// One way to start the operation; each forwards f, the arguments and the token (if any).
struct via_offload {
  template <class... A>
  auto operator()(A&&... a) {
    return ferry::offload(std::forward<A>(a)...);
  }
};

struct via_offload_pool {
  ferry::cpu_pool pool{1};
  template <class... A>
  auto operator()(A&&... a) {
    return ferry::offload(pool, std::forward<A>(a)...);
  }
};

struct via_to_thread {
  template <class... A>
  auto operator()(A&&... a) {
    return ferry::to_thread(std::forward<A>(a)...);
  }
};

struct via_to_thread_pool {
  ferry::blocking_pool pool{1};
  template <class... A>
  auto operator()(A&&... a) {
    return ferry::to_thread(pool, std::forward<A>(a)...);
  }
};

struct via_run_in_executor {
  asio::thread_pool pool{1};
  template <class... A>
  auto operator()(A&&... a) {
    return ferry::run_in_executor(pool.get_executor(), std::forward<A>(a)...);
  }
};

template <class Via>
class OffloadArguments : public ::testing::Test {
 protected:
  Via op;
};

using all_ways = ::testing::
    Types<via_offload, via_offload_pool, via_to_thread, via_to_thread_pool, via_run_in_executor>;

struct way_names {
  template <class T>
  static std::string GetName(int) {
    if (std::is_same_v<T, via_offload>) return "offload";
    if (std::is_same_v<T, via_offload_pool>) return "offload_pool";
    if (std::is_same_v<T, via_to_thread>) return "to_thread";
    if (std::is_same_v<T, via_to_thread_pool>) return "to_thread_pool";
    return "run_in_executor";
  }
};

TYPED_TEST_SUITE(OffloadArguments, all_ways, way_names);

int twice(std::unique_ptr<int> p) { return *p * 2; }

}  // namespace

TYPED_TEST(OffloadArguments, MovesAUniquePtrWrittenInTheCoAwaitIntoTheCall) {
  auto& op = this->op;
  const int v = ferry::run([&]() -> ferry::task<int> {
    co_return co_await op([](std::unique_ptr<int> p) { return *p * 2; }, std::make_unique<int>(21));
  }());
  EXPECT_EQ(v, 42);
}

TYPED_TEST(OffloadArguments, AFunctionPointerTakesArgumentsToo) {
  auto& op = this->op;
  const int v = ferry::run(
      [&]() -> ferry::task<int> { co_return co_await op(&twice, std::make_unique<int>(4)); }());
  EXPECT_EQ(v, 8);
}

TYPED_TEST(OffloadArguments, MovesAVectorOfStringsAndATemporaryString) {
  auto& op = this->op;
  const std::size_t total = ferry::run([&]() -> ferry::task<std::size_t> {
    const std::size_t n = co_await op(
        [](std::vector<std::string> v, std::string s) { return v.size() + v[1].size() + s.size(); },
        std::vector<std::string>(2, std::string(100, 'x')),  // (g++ 12 rejects a braced list here)
        std::string(200, 'y'));
    co_return n;
  }());
  EXPECT_EQ(total, 2U + 100U + 200U);
}

TYPED_TEST(OffloadArguments, HandsAMoveOnlyArgumentBackAsTheResult) {
  auto& op = this->op;
  const int v = ferry::run([&]() -> ferry::task<int> {
    auto back = co_await op([](std::unique_ptr<int> p) { return p; }, std::make_unique<int>(7));
    co_return back ? *back : -1;
  }());
  EXPECT_EQ(v, 7);
}

TYPED_TEST(OffloadArguments, PassesTheOperationsStopTokenFirst) {
  auto& op = this->op;
  const std::size_t v = ferry::run([&]() -> ferry::task<std::size_t> {
    const std::size_t n = co_await op(
        [](std::stop_token st, std::unique_ptr<int> p, std::string s) -> std::size_t {
          if (!st.stop_possible() || st.stop_requested()) return 0;
          return static_cast<std::size_t>(*p) + s.size();
        },
        std::make_unique<int>(2),
        std::string(300, 's'));
    co_return n;
  }());
  EXPECT_EQ(v, 302U);
}

TYPED_TEST(OffloadArguments, CopiesLvalueArgumentsAndStdRefPassesAReference) {
  auto& op = this->op;
  std::string kept(50, 'k');
  std::string shared(50, 'r');
  ferry::run([&]() -> ferry::task<void> {
    const std::string changed = co_await op(
        [](std::string s) {
          s += '!';
          return s;
        },
        kept);
    EXPECT_EQ(changed.size(), 51U);
    co_await op([](std::string& s) { s += '!'; }, std::ref(shared));
  }());
  EXPECT_EQ(kept, std::string(50, 'k'));
  EXPECT_EQ(shared.size(), 51U);
}

TYPED_TEST(OffloadArguments, DeliversTheExceptionOfACallWithArguments) {
  auto& op = this->op;
  const std::string what = ferry::run([&]() -> ferry::task<std::string> {
    try {
      co_await op([](std::string s) -> int { throw std::runtime_error(s); }, std::string(64, 'e'));
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
    co_return "not thrown";
  }());
  EXPECT_EQ(what, std::string(64, 'e'));
}

TYPED_TEST(OffloadArguments, CompletesThroughUseAwaitableDeferredAndAsTuple) {
  auto& op = this->op;
  ferry::run([&]() -> ferry::task<void> {
    const int a =
        co_await op([](std::unique_ptr<int> p, std::string s) { return *p + int(s.size()); },
                    std::make_unique<int>(1),
                    std::string(40, 'a'),
                    asio::use_awaitable);
    EXPECT_EQ(a, 41);

    auto deferred = op([](std::unique_ptr<int> p, std::string s) { return *p + int(s.size()); },
                       std::make_unique<int>(2),
                       std::string(40, 'd'),
                       asio::deferred);
    const int d = co_await std::move(deferred)(asio::use_awaitable);
    EXPECT_EQ(d, 42);

    auto [error, t] =
        co_await op([](std::stop_token, std::vector<std::string> v) { return int(v.size()); },
                    std::vector<std::string>(3, std::string(90, 'z')),
                    asio::as_tuple(asio::use_awaitable));
    EXPECT_FALSE(error);
    EXPECT_EQ(t, 3);

    auto [failure, u] = co_await op([](std::string s) -> int { throw std::runtime_error(s); },
                                    std::string(70, 'f'),
                                    asio::as_tuple(asio::use_awaitable));
    EXPECT_EQ(message_of(failure), std::string(70, 'f'));
    EXPECT_EQ(u, 0);
  }());
}

TYPED_TEST(OffloadArguments, CompletesThroughUseFutureAndACallback) {
  auto& op = this->op;
  auto future = op([](std::unique_ptr<int> p, std::string s) { return *p + int(s.size()); },
                   std::make_unique<int>(3),
                   std::string(40, 'u'),
                   asio::use_future);
  EXPECT_EQ(future.get(), 43);

  asio::io_context ioc;
  int called = 0;
  int value = 0;
  op([](std::stop_token, std::unique_ptr<int> p) { return *p; },
     std::make_unique<int>(44),
     asio::bind_executor(ioc.get_executor(), [&](std::exception_ptr e, int v) {
       ++called;
       EXPECT_FALSE(e);
       value = v;
     }));
  ioc.run();  // the operation holds work on ioc until the callback ran
  EXPECT_EQ(called, 1);
  EXPECT_EQ(value, 44);
}

// The idiom that g++ 11/12 miscompile (a capturing lambda with a non-trivial destructor written
// inside the co_await): checked where the compiler gets it right.
TYPED_TEST(OffloadArguments, ACapturingLambdaWrittenInTheCoAwaitIsDestroyedOnce) {
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
  GTEST_SKIP() << "g++ " << __GNUC__
               << " destroys a capturing lambda written inside a co_await twice (GCC PR 100611); "
                  "this form is tested with clang";
#else
  auto& op = this->op;
  const std::size_t total = ferry::run([&]() -> ferry::task<std::size_t> {
    std::string text(200, 't');
    std::vector<std::string> lines{"one", std::string(100, 'l')};
    auto shared = std::make_shared<std::string>(120, 's');
    auto up = co_await op([p = std::make_unique<int>(7)]() mutable { return std::move(p); });
    const std::size_t a = co_await op([text] { return text.size(); });
    const std::size_t b =
        co_await op([lines = std::move(lines)] { return lines.size() + lines[1].size(); });
    const std::size_t c = co_await op([shared](std::stop_token) { return shared->size(); });
    co_return (up ? std::size_t(*up) : 0) + a + b + c;
  }());
  EXPECT_EQ(total, 7U + 200U + 102U + 120U);
#endif
}

// --- which argument is the completion token ----------------------------------------------

namespace {

// Invocable with no argument and with one that is itself token-like.
struct either_way {
  int operator()() const { return 1; }
  int operator()(std::function<int(std::exception_ptr, int)> g) const { return g(nullptr, 21) * 2; }
};

}  // namespace

TEST(OffloadArgumentRule, ALastArgumentThatTakesTheCompletionSignatureIsTheHandler) {
  std::promise<int> handled;
  ferry::offload(
      [](int x) { return x + 1; }, 41, [&](std::exception_ptr, int v) { handled.set_value(v); });
  EXPECT_EQ(handled.get_future().get(), 42);

  std::promise<int> also;
  ferry::offload(either_way{}, [&](std::exception_ptr, int v) { also.set_value(v); });
  EXPECT_EQ(also.get_future().get(), 1);  // either_way() ran; the lambda was the handler
}

TEST(OffloadArgumentRule, ATokenGivenAfterItPassesATokenLikeCallableToTheFunction) {
  auto answer = [](std::exception_ptr, int v) { return v; };
  EXPECT_EQ(ferry::offload(either_way{}, answer, asio::use_future).get(), 42);
  EXPECT_EQ(ferry::to_thread(either_way{}, answer, asio::use_future).get(), 42);
}

TEST(OffloadArgumentRule, ATokenLikeCallableTheFunctionCannotTakeAloneIsAnArgument) {
  // f() is not a valid call, so the last argument cannot be the token: it goes to f.
  auto f = [](std::function<int(std::exception_ptr, int)> g) { return g(nullptr, 5) + 1; };
  const int v = ferry::run([&]() -> ferry::task<int> {
    co_return co_await ferry::offload(f, [](std::exception_ptr, int x) { return x; });
  }());
  EXPECT_EQ(v, 6);
}

TEST(OffloadArgumentRule, APoolPassedFirstIsThePoolAndAPoolArgumentNeedsStdRef) {
  ferry::cpu_pool pool(1);
  ferry::blocking_pool blocking(1);
  const auto where = ferry::offload(
                         pool,
                         [](int x) {
                           return std::pair{ferry::cpu_pool::current(), x};
                         },
                         5,
                         asio::use_future)
                         .get();
  EXPECT_EQ(where.first, &pool);
  EXPECT_EQ(where.second, 5);
  EXPECT_TRUE(
      ferry::to_thread(
          blocking, [&](int) { return blocking.running_in_this_thread(); }, 1, asio::use_future)
          .get());
  // A pool as an argument of f, not as the target: pass it with std::ref after f.
  ferry::cpu_pool* seen =
      ferry::offload([](ferry::cpu_pool& p) { return &p; }, std::ref(pool), asio::use_future).get();
  EXPECT_EQ(seen, &pool);
}

TEST(OffloadArgumentRule, ExecutorArgumentsGoToTheFunction) {
  asio::io_context ioc;
  asio::thread_pool legacy(1);
  const bool offloaded = ferry::run([&]() -> ferry::task<bool> {
    // An executor last, without a token: an argument, not a token.
    const asio::any_io_executor back = co_await ferry::offload(
        [](asio::any_io_executor ex) { return ex; }, asio::any_io_executor(ioc.get_executor()));
    co_return back == asio::any_io_executor(ioc.get_executor());
  }());
  EXPECT_TRUE(offloaded);
  const bool elsewhere =
      ferry::run_in_executor(
          legacy.get_executor(),
          [](asio::io_context::executor_type ex) { return !ex.running_in_this_thread(); },
          ioc.get_executor(),
          asio::use_future)
          .get();
  EXPECT_TRUE(elsewhere);
}

// The forms without arguments keep their meaning.
static_assert(!ferry::detail::last_is_token_v<int (*)()>);
static_assert(ferry::detail::last_is_token_v<int (*)(), asio::use_awaitable_t<>>);
static_assert(ferry::detail::last_is_token_v<int (*)(int), int, asio::use_future_t<>>);
static_assert(!ferry::detail::last_is_token_v<int (*)(int), int>);
static_assert(!ferry::detail::last_is_token_v<int (*)(std::string), std::string>);
