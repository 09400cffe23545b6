// ferry/core/detail/pool_executor.hpp — the Asio executor shared by cpu_pool and blocking_pool.
//
// A pool_executor is a light handle (one pointer and one flag) that satisfies Asio's standard
// executor requirements, so `asio::post`, `asio::dispatch`, `asio::defer` and `asio::co_spawn`
// accept it. `Pool` must derive from `boost::asio::execution_context` and provide
// `void submit(detail::job*)` (called through detail::pool_access, so it may be private) and
// `bool running_in_this_thread() const noexcept`.
//
// Thread safety: distinct and shared objects are safe; copies may be used from any thread.
#pragma once

#include <boost/asio/execution.hpp>
#include <memory>
#include <type_traits>
#include <utility>

#include "ferry/core/detail/job.hpp"
#include "ferry/core/detail/pool_access.hpp"

namespace ferry::detail {

// A heap-allocated job that owns a nullary function. The function must not throw: an exception
// escaping a function submitted through an executor calls std::terminate, as it would escape a
// std::thread (coroutines started with co_spawn deliver their exceptions to their handler).
template <class F>
struct function_job final : job {
  explicit function_job(F&& f) : job(&do_run), fn_(std::move(f)) {}
  explicit function_job(const F& f) : job(&do_run), fn_(f) {}

  static job_outcome do_run(job* base) noexcept {
    std::unique_ptr<function_job> self(static_cast<function_job*>(base));
    F fn(std::move(self->fn_));
    self.reset();  // free before the upcall, so the function may submit again without growth
    std::move(fn)();
    return job_outcome::ran;
  }

  F fn_;
};

template <class Pool>
class pool_executor {
 public:
  explicit pool_executor(Pool& pool) noexcept : pool_(&pool) {}

  /// The pool this executor submits to.
  Pool& context() const noexcept { return *pool_; }

  // --- Asio standard executor properties -------------------------------------------------
  Pool& query(boost::asio::execution::context_t) const noexcept { return *pool_; }

  boost::asio::execution::blocking_t query(boost::asio::execution::blocking_t) const noexcept {
    return possibly_ ? boost::asio::execution::blocking_t(boost::asio::execution::blocking.possibly)
                     : boost::asio::execution::blocking_t(boost::asio::execution::blocking.never);
  }

  static constexpr boost::asio::execution::relationship_t query(
      boost::asio::execution::relationship_t) noexcept {
    return boost::asio::execution::relationship.fork;
  }

  pool_executor require(boost::asio::execution::blocking_t::never_t) const noexcept {
    return pool_executor(*pool_, false);
  }

  pool_executor require(boost::asio::execution::blocking_t::possibly_t) const noexcept {
    return pool_executor(*pool_, true);
  }

  /// Runs `f` on the pool. With `blocking.possibly` (the default, as for asio::thread_pool;
  /// `asio::post` requires blocking.never) and when called from one of this pool's own threads,
  /// `f` runs inline before `execute` returns.
  template <class F>
  void execute(F&& f) const {
    if (possibly_ && pool_->running_in_this_thread()) {
      std::decay_t<F> fn(std::forward<F>(f));
      std::move(fn)();
      return;
    }
    auto j = std::make_unique<function_job<std::decay_t<F>>>(std::forward<F>(f));
    pool_access::submit(*pool_, j.get());
    j.release();  // the pool runs it; run() frees it
  }

  /// True when the calling thread is one of the pool's threads.
  bool running_in_this_thread() const noexcept { return pool_->running_in_this_thread(); }

  friend bool operator==(const pool_executor& a, const pool_executor& b) noexcept {
    return a.pool_ == b.pool_ && a.possibly_ == b.possibly_;
  }
  friend bool operator!=(const pool_executor& a, const pool_executor& b) noexcept {
    return !(a == b);
  }

 private:
  pool_executor(Pool& pool, bool possibly) noexcept : pool_(&pool), possibly_(possibly) {}

  Pool* pool_;
  bool possibly_ = true;  // as asio::thread_pool's executor: dispatch may run inline
};

}  // namespace ferry::detail
