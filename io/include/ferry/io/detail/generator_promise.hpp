// ferry/io/detail/generator_promise.hpp — the coroutine machinery behind ferry::generator<T>.
//
// The body is a coroutine of its own (not an asio::awaitable): the promise accepts `co_yield`,
// and through await_transform three kinds of `co_await`:
//  - `asio::this_coro::executor`: the executor the body runs on;
//  - an `asio::awaitable<U, any_io_executor>` (= ferry::task<U>): co_spawned on that executor,
//    the body resumes from its completion;
//  - an Asio asynchronous operation object (`asio::deferred` and the like): launched with a
//    handler that resumes the body.
//
// One step = one `next()`: the consumer's handler is stored (type-erased), the body is resumed
// by a post to the handler's associated executor, and it runs, awaiting whatever it awaits with
// handlers bound to that executor, until `co_yield` (deliver the value), `co_return` (deliver
// end) or an exception (deliver it). The delivery is a post of the consumer's handler, made as
// the last action of the step, so the consumer may call next() again or destroy the generator
// at once.
//
// Cancellation: next()'s cancellation slot receives a handler that records the request and
// forwards it (same type) to an inner signal, which is the cancellation slot of whatever the body
// awaits now. A request that arrives while the body is not awaiting makes its next co_await
// throw operation_aborted.
//
// Abandonment: if the execution context drops a step's resumption (the post of the body, or an
// awaited operation's handler) without running it, the consumer's handler is destroyed too, as
// Asio does with an awaitable whose handler is destroyed; the consumer (a coroutine frame that
// usually owns the generator) goes with it. Nothing is leaked.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>
#include <concepts>
#include <coroutine>
#include <exception>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace ferry {

template <class T>
class generator;

namespace detail {

/// A type-erased completion handler with signature `void(std::exception_ptr, std::optional<T>)`,
/// allocated with the handler's associated allocator. Destroying it unused destroys the handler.
template <class T>
class generator_consumer {
 public:
  generator_consumer() noexcept = default;
  template <class Handler>
  explicit generator_consumer(Handler&& handler)
      : impl_(impl<std::decay_t<Handler>>::create(std::forward<Handler>(handler))) {}
  generator_consumer(generator_consumer&& other) noexcept
      : impl_(std::exchange(other.impl_, nullptr)) {}
  generator_consumer& operator=(generator_consumer&& other) noexcept {
    generator_consumer(std::move(other)).swap(*this);
    return *this;
  }
  ~generator_consumer() {
    if (impl_ != nullptr) impl_->destroy();
  }

  explicit operator bool() const noexcept { return impl_ != nullptr; }
  void swap(generator_consumer& other) noexcept { std::swap(impl_, other.impl_); }

  void operator()(std::exception_ptr error, std::optional<T> value) && {
    std::exchange(impl_, nullptr)->invoke(std::move(error), std::move(value));
  }

 private:
  struct base {
    virtual void invoke(std::exception_ptr error, std::optional<T> value) = 0;
    virtual void destroy() noexcept = 0;

   protected:
    ~base() = default;
  };

  template <class Handler>
  struct impl final : base {
    using handler_allocator =
        boost::asio::associated_allocator_t<Handler, boost::asio::recycling_allocator<void>>;
    using allocator =
        typename std::allocator_traits<handler_allocator>::template rebind_alloc<impl>;

    impl(Handler&& h, const handler_allocator& a) : handler(std::move(h)), alloc(a) {}

    static impl* create(Handler handler) {
      handler_allocator base_alloc =
          boost::asio::get_associated_allocator(handler, boost::asio::recycling_allocator<void>());
      allocator a(base_alloc);
      impl* p = std::allocator_traits<allocator>::allocate(a, 1);
      try {
        ::new (static_cast<void*>(p)) impl(std::move(handler), base_alloc);
      } catch (...) {
        std::allocator_traits<allocator>::deallocate(a, p, 1);
        throw;
      }
      return p;
    }

    void invoke(std::exception_ptr error, std::optional<T> value) override {
      Handler h(std::move(handler));
      destroy();
      std::move(h)(std::move(error), std::move(value));
    }

    void destroy() noexcept override {
      allocator a(alloc);
      this->~impl();
      std::allocator_traits<allocator>::deallocate(a, this, 1);
    }

    Handler handler;
    handler_allocator alloc;
  };

  base* impl_ = nullptr;
};

// What an awaited operation's completion arguments become at the co_await: a leading
// error_code or exception_ptr is thrown when set and dropped; no value left → void, one → it,
// several → a tuple (the conventions of asio::use_awaitable).
template <class... Rest>
auto generator_values(std::tuple<Rest...>&& values) {
  if constexpr (sizeof...(Rest) == 0) {
    return;
  } else if constexpr (sizeof...(Rest) == 1) {
    return std::get<0>(std::move(values));
  } else {
    return std::move(values);
  }
}

template <class First, class... Rest>
auto generator_result(std::tuple<First, Rest...>&& args) {
  constexpr bool error_code_first = std::is_same_v<First, boost::system::error_code>;
  constexpr bool exception_first = std::is_same_v<First, std::exception_ptr>;
  if constexpr (error_code_first || exception_first) {
    if (const auto& error = std::get<0>(args)) {
      if constexpr (error_code_first) {
        throw boost::system::system_error(error);
      } else {
        std::rethrow_exception(error);
      }
    }
    return generator_values(std::apply(
        [](First&, Rest&... rest) { return std::tuple<Rest...>(std::move(rest)...); }, args));
  } else {
    return generator_values(std::move(args));
  }
}

inline void generator_result(std::tuple<>&&) {}

template <class Signature>
struct generator_signature;
template <class R, class... Args>
struct generator_signature<R(Args...)> {
  using tuple = std::tuple<std::decay_t<Args>...>;
};

/// The "no more values" result. Out of line: g++ 12, seeing a constant empty optional moved
/// through inlined Asio code, reports the engaged member as maybe-uninitialized (a false
/// positive, e.g. for std::optional<std::unique_ptr<U>>).
template <class T>
[[gnu::noinline]] std::optional<T> generator_end() noexcept {
  return std::nullopt;
}

inline std::exception_ptr generator_aborted() {
  return std::make_exception_ptr(
      boost::system::system_error(boost::asio::error::operation_aborted));
}

template <class A>
struct is_any_io_awaitable : std::false_type {};
template <class U>
struct is_any_io_awaitable<boost::asio::awaitable<U, boost::asio::any_io_executor>>
    : std::true_type {};

/// An Asio asynchronous operation object, e.g. `timer.async_wait(asio::deferred)`.
template <class Op>
concept generator_async_operation = boost::asio::is_async_operation<std::decay_t<Op>>::value;

/// What a generator body may not co_await (see generator.hpp).
template <class A>
concept generator_unsupported_await =
    !std::is_same_v<std::decay_t<A>, boost::asio::this_coro::executor_t> &&
    !is_any_io_awaitable<std::decay_t<A>>::value && !generator_async_operation<A>;

template <class T>
class generator_promise {
 public:
  using handle_type = std::coroutine_handle<generator_promise>;

  generator_promise() = default;
  generator_promise(const generator_promise&) = delete;
  generator_promise& operator=(const generator_promise&) = delete;

  generator<T> get_return_object() noexcept {
    return generator<T>(handle_type::from_promise(*this));
  }

  std::suspend_always initial_suspend() noexcept { return {}; }

  auto final_suspend() noexcept {
    struct final_awaiter {
      bool await_ready() const noexcept { return false; }
      void await_suspend(handle_type h) noexcept {
        generator_promise& p = h.promise();
        p.deliver(std::exchange(p.error_, nullptr), std::nullopt);
      }
      void await_resume() const noexcept {}
    };
    return final_awaiter{};
  }

  void return_void() noexcept {}
  void unhandled_exception() noexcept { error_ = std::current_exception(); }

  template <class U = T>
  requires std::constructible_from<T, U&&>
  auto yield_value(U&& value) {
    yielded_.emplace(std::forward<U>(value));  // copied/moved now: the temporary may go
    struct yield_awaiter {
      bool await_ready() const noexcept { return false; }
      void await_suspend(handle_type h) noexcept {
        generator_promise& p = h.promise();
        std::optional<T> value(std::move(p.yielded_));
        p.yielded_.reset();
        p.deliver(nullptr, std::move(value));
      }
      void await_resume() const noexcept {}
    };
    return yield_awaiter{};
  }

  // co_await asio::this_coro::executor
  auto await_transform(boost::asio::this_coro::executor_t) noexcept {
    struct executor_awaiter {
      boost::asio::any_io_executor ex;
      bool await_ready() const noexcept { return true; }
      void await_suspend(std::coroutine_handle<>) const noexcept {}
      boost::asio::any_io_executor await_resume() const noexcept { return ex; }
    };
    return executor_awaiter{ex_};
  }

  // co_await task<U>: co_spawned on the body's executor.
  template <class U>
  auto await_transform(boost::asio::awaitable<U, boost::asio::any_io_executor> task) {
    throw_if_cancelled();
    // co_spawn's completion passes U{} on failure, so a U that is not default-constructible
    // travels as std::optional<U> (one more coroutine frame).
    constexpr bool wrap = !std::is_void_v<U> && !std::is_default_constructible_v<U>;
    using spawned = std::conditional_t<wrap, std::optional<U>, U>;
    using tuple = std::conditional_t<std::is_void_v<U>,
                                     std::tuple<std::exception_ptr>,
                                     std::tuple<std::exception_ptr, spawned>>;
    struct task_awaiter {
      boost::asio::awaitable<U, boost::asio::any_io_executor> task;
      generator_promise* p;
      std::optional<tuple> result;

      bool await_ready() const noexcept { return false; }
      void await_suspend(std::coroutine_handle<>) {
        auto handler = make_resume_handler(p, &result, static_cast<tuple*>(nullptr));
        if constexpr (wrap) {
          boost::asio::co_spawn(p->ex_, as_optional(std::move(task)), std::move(handler));
        } else {
          boost::asio::co_spawn(p->ex_, std::move(task), std::move(handler));
        }
      }
      U await_resume() {
        if constexpr (wrap) {
          return *generator_result(std::move(*result));
        } else {
          return generator_result(std::move(*result));
        }
      }
    };
    return task_awaiter{std::move(task), this, std::nullopt};
  }

  // co_await of an Asio asynchronous operation object (e.g. `timer.async_wait(asio::deferred)`).
  template <generator_async_operation Op>
  auto await_transform(Op&& op) {
    throw_if_cancelled();
    using tuple = typename generator_signature<
        typename boost::asio::completion_signature_of<std::decay_t<Op>>::type>::tuple;
    struct op_awaiter {
      std::decay_t<Op> op;
      generator_promise* p;
      std::optional<tuple> result;

      bool await_ready() const noexcept { return false; }
      void await_suspend(std::coroutine_handle<>) {
        std::move(op)(make_resume_handler(p, &result, static_cast<tuple*>(nullptr)));
      }
      auto await_resume() { return generator_result(std::move(*result)); }
    };
    return op_awaiter{std::forward<Op>(op), this, std::nullopt};
  }

  // Anything else: a readable error instead of a page of overload candidates.
  template <generator_unsupported_await A>
  void await_transform(A&&) {
    static_assert(sizeof(A) == 0,
                  "a ferry::generator body may co_await: asio::this_coro::executor, a "
                  "ferry::task<U> / asio::awaitable<U, any_io_executor> (e.g. ferry::sleep, "
                  "ferry::offload(f), gen.next()), or an Asio operation launched with "
                  "asio::deferred (e.g. timer.async_wait(asio::deferred))");
  }

 private:
  friend class generator<T>;

  template <class U>
  static boost::asio::awaitable<std::optional<U>, boost::asio::any_io_executor> as_optional(
      boost::asio::awaitable<U, boost::asio::any_io_executor> task) {
    co_return std::optional<U>(co_await std::move(task));
  }

  // Resumes the body with the completion arguments of an awaited operation. Associated with
  // the body's executor and with the inner cancellation slot. Destroyed without being invoked,
  // it abandons the step (see the file comment).
  template <class... Args>
  class resume_handler {
   public:
    using executor_type = boost::asio::any_io_executor;
    using cancellation_slot_type = boost::asio::cancellation_slot;

    resume_handler(generator_promise* p, std::optional<std::tuple<Args...>>* result) noexcept
        : p_(p), result_(result) {}
    resume_handler(resume_handler&& other) noexcept
        : p_(std::exchange(other.p_, nullptr)), result_(other.result_) {}
    resume_handler& operator=(resume_handler&&) = delete;
    ~resume_handler() {
      if (p_ != nullptr) p_->abandon();
    }

    executor_type get_executor() const noexcept { return p_->ex_; }
    cancellation_slot_type get_cancellation_slot() const noexcept { return p_->inner_.slot(); }

    template <class... Actual>
    void operator()(Actual&&... args) {
      result_->emplace(std::forward<Actual>(args)...);
      generator_promise* p = std::exchange(p_, nullptr);
      p->inner_.slot().clear();  // the operation is over: drop its cancellation handler
      handle_type::from_promise(*p).resume();
    }

   private:
    generator_promise* p_;
    std::optional<std::tuple<Args...>>* result_;
  };

  template <class... Args>
  static resume_handler<Args...> make_resume_handler(generator_promise* p,
                                                     std::optional<std::tuple<Args...>>* result,
                                                     std::tuple<Args...>*) {
    return resume_handler<Args...>(p, result);
  }

  // Resumes the body at the start of a step (posted). Dropped unrun, it abandons the step.
  class resume_step {
   public:
    explicit resume_step(generator_promise* p) noexcept : p_(p) {}
    resume_step(resume_step&& other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
    resume_step& operator=(resume_step&&) = delete;
    ~resume_step() {
      if (p_ != nullptr) p_->abandon();
    }
    void operator()() { handle_type::from_promise(*std::exchange(p_, nullptr)).resume(); }

   private:
    generator_promise* p_;
  };

  // Forwards next()'s cancellation to what the body awaits.
  struct consumer_cancellation {
    explicit consumer_cancellation(generator_promise* p) noexcept : p_(p) {}
    void operator()(boost::asio::cancellation_type_t type) const {
      using ct = boost::asio::cancellation_type;
      type = type & (ct::terminal | ct::partial | ct::total);
      if (type == ct::none) return;
      p_->cancelled_ = p_->cancelled_ | type;
      p_->inner_.emit(type);
    }
    generator_promise* p_;
  };

  // Starts a step for `handler` (from the initiation of generator::async_next).
  template <class Handler>
  void start_step(Handler&& handler) {
    ex_ = boost::asio::get_associated_executor(handler);
    consumer_slot_ = boost::asio::get_associated_cancellation_slot(handler);
    cancelled_ = boost::asio::cancellation_type::none;
    consumer_ = generator_consumer<T>(std::forward<Handler>(handler));
    if (consumer_slot_.is_connected()) consumer_slot_.template emplace<consumer_cancellation>(this);
    boost::asio::post(ex_, resume_step(this));
  }

  bool step_pending() const noexcept { return static_cast<bool>(consumer_); }
  bool abandoned() const noexcept { return abandoned_; }

  void throw_if_cancelled() const {
    if (cancelled_ != boost::asio::cancellation_type::none) {
      throw boost::system::system_error(boost::asio::error::operation_aborted);
    }
  }

  // Ends the step: posts the consumer's completion. The last thing the step does.
  void deliver(std::exception_ptr error, std::optional<T> value) noexcept {
    if (consumer_slot_.is_connected()) consumer_slot_.clear();
    consumer_slot_ = {};
    generator_consumer<T> consumer(std::move(consumer_));
    boost::asio::any_io_executor ex = ex_;
    try {
      boost::asio::post(
          ex, [consumer = std::move(consumer), error, value = std::move(value)]() mutable {
            std::move(consumer)(std::move(error), std::move(value));
          });
    } catch (...) {
      // Out of memory for the post: the consumer's handler is destroyed unrun (abandoned).
    }
  }

  // The execution context dropped the step: destroy the consumer's handler (which may own, and
  // so destroy, this generator). Touches nothing after that.
  void abandon() noexcept {
    abandoned_ = true;
    if (consumer_slot_.is_connected()) consumer_slot_.clear();
    consumer_slot_ = {};
    generator_consumer<T> consumer(std::move(consumer_));
  }

  std::optional<T> yielded_;
  std::exception_ptr error_;
  generator_consumer<T> consumer_;
  boost::asio::any_io_executor ex_;
  boost::asio::cancellation_slot consumer_slot_;
  boost::asio::cancellation_signal inner_;
  boost::asio::cancellation_type_t cancelled_ = boost::asio::cancellation_type::none;
  bool abandoned_ = false;
};

}  // namespace detail
}  // namespace ferry
