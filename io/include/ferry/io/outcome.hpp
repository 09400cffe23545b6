// ferry/io/outcome.hpp — a value or the exception that stands in for it.
//
//   auto [a, b] = co_await ferry::gather_settled(fetch(x), fetch(y));
//   if (a.has_value()) use(a.value());             // value() rethrows when it holds an error
//   else log(a.error());                           // the std::exception_ptr
//
// What `gather_settled` gives per child (asyncio's `gather(..., return_exceptions=True)`), and a
// small vocabulary type of its own: `outcome<T>` holds either a `T` or a non-null
// `std::exception_ptr`; `outcome<void>` holds either nothing (success) or the exception.
//
// Thread safety: distinct objects: safe. Shared objects: const member functions may be called
// concurrently; anything else needs external synchronisation (like any standard value type).
//
// Errors: `value()` rethrows the stored exception, type intact. `failure(nullptr)` throws
// std::invalid_argument: a failed outcome always carries its exception.
#pragma once

#include <exception>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>

namespace ferry {

/// A value of type `T`, or the exception thrown instead of producing it.
template <class T>
class outcome {
  static_assert(!std::is_reference_v<T>, "ferry::outcome<T>: T must not be a reference");

 public:
  using value_type = T;

  /// A successful outcome holding `value`.
  outcome(const T& value) : state_(std::in_place_index<0>, value) {}
  outcome(T&& value) : state_(std::in_place_index<0>, std::move(value)) {}

  /// A successful outcome whose value is constructed from `args`.
  template <class... Args>
  explicit outcome(std::in_place_t, Args&&... args)
      : state_(std::in_place_index<0>, std::forward<Args>(args)...) {}

  /// A failed outcome. Throws std::invalid_argument when `error` is null.
  static outcome failure(std::exception_ptr error) {
    if (!error) throw std::invalid_argument("ferry::outcome::failure: null exception_ptr");
    return outcome(failure_tag{}, std::move(error));
  }

  bool has_value() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  /// The value; rethrows the stored exception when there is none.
  T& value() & {
    check();
    return *std::get_if<0>(&state_);
  }
  const T& value() const& {
    check();
    return *std::get_if<0>(&state_);
  }
  T&& value() && {
    check();
    return std::move(*std::get_if<0>(&state_));
  }

  /// The stored exception; null when the outcome holds a value.
  std::exception_ptr error() const noexcept {
    const std::exception_ptr* e = std::get_if<1>(&state_);
    return e != nullptr ? *e : std::exception_ptr();
  }

 private:
  struct failure_tag {};
  outcome(failure_tag, std::exception_ptr error)
      : state_(std::in_place_index<1>, std::move(error)) {}

  void check() const {
    if (const std::exception_ptr* e = std::get_if<1>(&state_)) std::rethrow_exception(*e);
  }

  std::variant<T, std::exception_ptr> state_;
};

/// Success (nothing), or the exception thrown instead.
template <>
class outcome<void> {
 public:
  using value_type = void;

  /// A successful outcome.
  outcome() noexcept = default;

  /// A failed outcome. Throws std::invalid_argument when `error` is null.
  static outcome failure(std::exception_ptr error) {
    if (!error) throw std::invalid_argument("ferry::outcome::failure: null exception_ptr");
    outcome o;
    o.error_ = std::move(error);
    return o;
  }

  bool has_value() const noexcept { return !error_; }
  explicit operator bool() const noexcept { return has_value(); }

  /// Returns on success; rethrows the stored exception otherwise.
  void value() const {
    if (error_) std::rethrow_exception(error_);
  }

  /// The stored exception; null on success.
  std::exception_ptr error() const noexcept { return error_; }

 private:
  std::exception_ptr error_;
};

}  // namespace ferry
