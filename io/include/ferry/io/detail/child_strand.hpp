// ferry/io/detail/child_strand.hpp — a strand of any executor that fits in an any_io_executor.
//
// Children of gather, race, timeout and task_group run each on a strand of the scope's executor
// (detail/child.hpp). For an io_context executor that is `strand<io_context::executor_type>`,
// which any_io_executor stores inline. A `strand<any_io_executor>` (for a cpu_pool executor, say)
// is 72 bytes: any_io_executor would keep it in a heap "shared target" whose reference count
// is released with `fetch_sub(release)` + `atomic_thread_fence(acquire)` — correct, but
// ThreadSanitizer does not model fences and reports a race on every such executor crossing
// threads. `child_strand` holds the strand behind one std::shared_ptr (whose count TSan
// understands) and is stored inline.
//
// Properties: blocking (never / possibly) and relationship (fork / continuation) are kept in the
// handle and applied when a function is submitted; outstanding_work (tracked / untracked) is
// forwarded to the inner executor (a new shared strand object, same strand implementation);
// queries are forwarded. Every copy and every variant share one strand: functions submitted
// through any of them never run concurrently.
//
// Thread safety: like asio::strand — copies may be used from any thread.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/require.hpp>
#include <boost/asio/strand.hpp>
#include <memory>
#include <utility>

namespace ferry::detail {

class child_strand {
 public:
  using inner_type = boost::asio::strand<boost::asio::any_io_executor>;

  /// Wraps `s`, whose inner executor must not track outstanding work (a strand's default:
  /// possibly blocking, fork, untracked).
  explicit child_strand(inner_type s) : s_(std::make_shared<const inner_type>(std::move(s))) {}

  /// True when the calling thread is running a function of this strand.
  bool running_in_this_thread() const noexcept { return s_->running_in_this_thread(); }

  // --- queries ---------------------------------------------------------------------------
  boost::asio::execution_context& query(boost::asio::execution::context_t) const noexcept {
    return boost::asio::query(*s_, boost::asio::execution::context);
  }
  boost::asio::execution::blocking_t query(boost::asio::execution::blocking_t) const noexcept {
    return never_ ? boost::asio::execution::blocking_t(boost::asio::execution::blocking.never)
                  : boost::asio::execution::blocking_t(boost::asio::execution::blocking.possibly);
  }
  boost::asio::execution::relationship_t query(
      boost::asio::execution::relationship_t) const noexcept {
    return continuation_
               ? boost::asio::execution::relationship_t(
                     boost::asio::execution::relationship.continuation)
               : boost::asio::execution::relationship_t(boost::asio::execution::relationship.fork);
  }
  boost::asio::execution::outstanding_work_t query(
      boost::asio::execution::outstanding_work_t) const noexcept {
    return tracked_ ? boost::asio::execution::outstanding_work_t(
                          boost::asio::execution::outstanding_work.tracked)
                    : boost::asio::execution::outstanding_work_t(
                          boost::asio::execution::outstanding_work.untracked);
  }

  // --- requirements and preferences ------------------------------------------------------
  child_strand require(boost::asio::execution::blocking_t::never_t) const noexcept {
    child_strand c(*this);
    c.never_ = true;
    return c;
  }
  child_strand require(boost::asio::execution::blocking_t::possibly_t) const noexcept {
    child_strand c(*this);
    c.never_ = false;
    return c;
  }
  child_strand prefer(boost::asio::execution::relationship_t::fork_t) const noexcept {
    child_strand c(*this);
    c.continuation_ = false;
    return c;
  }
  child_strand prefer(boost::asio::execution::relationship_t::continuation_t) const noexcept {
    child_strand c(*this);
    c.continuation_ = true;
    return c;
  }
  child_strand prefer(boost::asio::execution::outstanding_work_t::tracked_t) const {
    if (tracked_) return *this;
    return child_strand(
        *this, boost::asio::prefer(*s_, boost::asio::execution::outstanding_work.tracked), true);
  }
  child_strand prefer(boost::asio::execution::outstanding_work_t::untracked_t) const {
    if (!tracked_) return *this;
    return child_strand(
        *this, boost::asio::prefer(*s_, boost::asio::execution::outstanding_work.untracked), false);
  }

  // --- submission ------------------------------------------------------------------------
  template <class F>
  void execute(F&& f) const {
    namespace execution = boost::asio::execution;
    inner_type s = never_ ? inner_type(boost::asio::require(*s_, execution::blocking.never))
                          : inner_type(boost::asio::prefer(*s_, execution::blocking.possibly));
    if (continuation_) s = boost::asio::prefer(s, execution::relationship.continuation);
    s.execute(std::forward<F>(f));
  }

  friend bool operator==(const child_strand& a, const child_strand& b) noexcept {
    return *a.s_ == *b.s_ && a.never_ == b.never_ && a.continuation_ == b.continuation_;
  }
  friend bool operator!=(const child_strand& a, const child_strand& b) noexcept {
    return !(a == b);
  }

 private:
  child_strand(const child_strand& base, inner_type s, bool tracked)
      : s_(std::make_shared<const inner_type>(std::move(s))),
        never_(base.never_),
        continuation_(base.continuation_),
        tracked_(tracked) {}

  std::shared_ptr<const inner_type> s_;
  bool never_ = false;
  bool continuation_ = false;
  bool tracked_ = false;
};

}  // namespace ferry::detail
