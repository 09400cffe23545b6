// The coroutine forms of the primitives' waits (`co_await m.lock()`, `co_await e.wait()`, ...).
// They are defined here, once, rather than inline in the headers: g++ emits the body of an inline
// coroutine in every translation unit that includes its header, used or not, and with it the
// instantiations of the Asio operation it awaits (about 2 s of compile time per translation unit
// that includes <ferry/ferry.hpp>). Templates stay in the headers.
#include <boost/asio/use_awaitable.hpp>
#include <cstddef>
#include <mutex>
#include <optional>

#include "ferry/io/barrier.hpp"
#include "ferry/io/condition.hpp"
#include "ferry/io/event.hpp"
#include "ferry/io/mutex.hpp"
#include "ferry/io/semaphore.hpp"
#include "ferry/io/task_group.hpp"

namespace ferry {

task<void> event::wait() {
  if (!is_set()) co_await async_wait(boost::asio::use_awaitable);
}

task<mutex::guard> mutex::lock() {
  if (!try_lock()) co_await async_lock(boost::asio::use_awaitable);
  co_return guard(*this, std::adopt_lock);
}

task<semaphore::guard> semaphore::acquire() {
  if (!try_acquire()) co_await async_acquire(boost::asio::use_awaitable);
  co_return guard(*this);
}

task<std::size_t> barrier::arrive_and_wait() {
  if (std::optional<std::size_t> index = try_trip()) co_return *index;
  co_return co_await async_arrive_and_wait(boost::asio::use_awaitable);
}

task<void> condition::wait(ferry::mutex::guard& guard) {
  co_await async_wait(guard, boost::asio::use_awaitable);
}

task<void> task_group::join() { return async_join(boost::asio::use_awaitable); }

task<void> task_group::join_scope() {
  return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&,
                                     void(std::exception_ptr)>(
      detail::noted("task_group::scope", initiate_join{state_.get(), true}),
      boost::asio::use_awaitable);
}

}  // namespace ferry
