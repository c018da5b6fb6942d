// Result<T>: a value or an Error, for failures a caller is expected to handle (bad input, a refused write).
// Exceptions are kept for start-up failures and broken invariants.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace statefold::base {

struct Error {
  std::string message;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : _v(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : _v(std::move(error)) {}  // NOLINT

  bool ok() const { return _v.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(_v); }
  const T& value() const& { return std::get<0>(_v); }
  T&& value() && { return std::get<0>(std::move(_v)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const { return std::get<1>(_v); }

 private:
  std::variant<T, Error> _v;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : _error(std::move(error)), _ok(false) {}  // NOLINT
  bool ok() const { return _ok; }
  explicit operator bool() const { return _ok; }
  const Error& error() const { return _error; }

 private:
  Error _error;
  bool _ok = true;
};

inline Error make_error(std::string message) { return Error{std::move(message)}; }

}  // namespace statefold::base
