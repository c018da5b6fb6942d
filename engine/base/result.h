// Result<T>: a value or an Error, for failures a caller is expected to handle (bad input, a refused write).
// Exceptions are kept for start-up failures and broken invariants. An Error carries a code beside its message, so
// callers decide by kind (retry, refuse, report) and never by the message's text; http::status_for maps codes to
// statuses in one place.
//
//   if (!found) return base::make_error(base::ErrorCode::not_found, "no session " + id);
//   if (r.error().code == base::ErrorCode::timed_out) ...
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace statefold::base {

// What kind of failure, as far as the caller should care. `unknown` is the default for errors that name no kind
// (treated like `internal` by those that map codes).
enum class ErrorCode : std::uint8_t {
  unknown,
  invalid_argument,    // the input is wrong: fixing it is the caller's job
  not_found,           // what was named does not exist (for this caller)
  conflict,            // the state changed or is not what the request expected
  unavailable,         // a dependency (Kafka, the store) cannot take it now; retrying later may work
  timed_out,           // gave up waiting; the operation may still complete
  upstream_failed,     // a remote service answered wrongly or not at all
  resource_exhausted,  // a limit, quota or the disk
  permission_denied,
  internal,            // a broken invariant or a bug
};
std::string_view error_code_name(ErrorCode code);

struct Error {
  std::string message;
  ErrorCode code = ErrorCode::unknown;
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
inline Error make_error(ErrorCode code, std::string message) { return Error{std::move(message), code}; }

inline std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::unknown: return "unknown";
    case ErrorCode::invalid_argument: return "invalid_argument";
    case ErrorCode::not_found: return "not_found";
    case ErrorCode::conflict: return "conflict";
    case ErrorCode::unavailable: return "unavailable";
    case ErrorCode::timed_out: return "timed_out";
    case ErrorCode::upstream_failed: return "upstream_failed";
    case ErrorCode::resource_exhausted: return "resource_exhausted";
    case ErrorCode::permission_denied: return "permission_denied";
    case ErrorCode::internal: return "internal";
  }
  return "unknown";
}

}  // namespace statefold::base
