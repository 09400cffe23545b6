// ferry/detail/thread_annotations.hpp — clang's thread-safety annotations, and the mutex and
// locks they can see.
//
// Every mutex-guarded member is marked FERRY_GUARDED_BY(its mutex), every function that expects
// the lock held FERRY_REQUIRES(it); clang's -Wthread-safety (on in ferry's clang builds) then
// rejects an access without the lock at compile time. Other compilers ignore the annotations.
//
// The analysis only sees locks taken through annotated types: libstdc++'s std::mutex,
// std::lock_guard and std::unique_lock are not, hence `detail::mutex` (a std::mutex),
// `detail::lock_guard` and `detail::unique_lock` (a std::unique_lock<std::mutex>, whose
// `native()` is what a std::condition_variable waits on). They add nothing at run time.
#pragma once

#include <mutex>

#if defined(__clang__) && defined(__has_attribute)
#if __has_attribute(capability)
#define FERRY_THREAD_ANNOTATION(x) __attribute__((x))
#endif
#endif
#ifndef FERRY_THREAD_ANNOTATION
#define FERRY_THREAD_ANNOTATION(x)
#endif

/// A class whose objects are locks (`detail::mutex`).
#define FERRY_CAPABILITY(name) FERRY_THREAD_ANNOTATION(capability(name))
/// An RAII class that holds a capability for its lifetime (`detail::lock_guard`).
#define FERRY_SCOPED_CAPABILITY FERRY_THREAD_ANNOTATION(scoped_lockable)
/// A member read and written only with `m` held.
#define FERRY_GUARDED_BY(m) FERRY_THREAD_ANNOTATION(guarded_by(m))
/// A pointer member whose pointee is read and written only with `m` held.
#define FERRY_PT_GUARDED_BY(m) FERRY_THREAD_ANNOTATION(pt_guarded_by(m))
/// A function called with the capabilities held (and returning with them held).
#define FERRY_REQUIRES(...) FERRY_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
/// A function that acquires the capabilities (no argument: `this`).
#define FERRY_ACQUIRE(...) FERRY_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
/// A function that releases the capabilities (no argument: `this`).
#define FERRY_RELEASE(...) FERRY_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
/// A function that acquires the capabilities when it returns `result`.
#define FERRY_TRY_ACQUIRE(...) FERRY_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
/// A function called without the capabilities (it takes them itself).
#define FERRY_EXCLUDES(...) FERRY_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
/// A function the analysis does not check: say at the use why it cannot follow the locking.
#define FERRY_NO_THREAD_SAFETY_ANALYSIS FERRY_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace ferry::detail {

/// A std::mutex the analysis can see.
class FERRY_CAPABILITY("mutex") mutex {
 public:
  mutex() = default;
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;

  void lock() FERRY_ACQUIRE() { native_.lock(); }
  void unlock() FERRY_RELEASE() { native_.unlock(); }
  bool try_lock() FERRY_TRY_ACQUIRE(true) { return native_.try_lock(); }

  /// The std::mutex itself, for std::unique_lock (through `detail::unique_lock`).
  std::mutex& native() noexcept { return native_; }

 private:
  std::mutex native_;
};

/// std::lock_guard for `detail::mutex`.
class FERRY_SCOPED_CAPABILITY lock_guard {
 public:
  explicit lock_guard(mutex& m) FERRY_ACQUIRE(m) : mutex_(m) { m.lock(); }
  ~lock_guard() FERRY_RELEASE() { mutex_.unlock(); }
  lock_guard(const lock_guard&) = delete;
  lock_guard& operator=(const lock_guard&) = delete;

 private:
  mutex& mutex_;
};

/// std::unique_lock for `detail::mutex`: locked on construction, may be unlocked and locked
/// again, unlocked (if held) on destruction. `native()` is for std::condition_variable, whose
/// waits return with the lock held as they found it.
class FERRY_SCOPED_CAPABILITY unique_lock {
 public:
  explicit unique_lock(mutex& m) FERRY_ACQUIRE(m) : native_(m.native()) {}
  ~unique_lock() FERRY_RELEASE() = default;
  unique_lock(const unique_lock&) = delete;
  unique_lock& operator=(const unique_lock&) = delete;

  void lock() FERRY_ACQUIRE() { native_.lock(); }
  void unlock() FERRY_RELEASE() { native_.unlock(); }
  bool owns_lock() const noexcept { return native_.owns_lock(); }

  std::unique_lock<std::mutex>& native() noexcept { return native_; }

 private:
  std::unique_lock<std::mutex> native_;
};

}  // namespace ferry::detail
