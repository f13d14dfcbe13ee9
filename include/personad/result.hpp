// Result<T>: a value or an Error with a kind and a message for an operator. Used at every module
// boundary instead of exceptions, so that nothing thrown ever crosses the event loop.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace personad {

// What kind of failure, so callers decide on the kind and never on the text.
enum class ErrorKind {
  internal,     // a bug or an unexpected condition
  io,           // the disk, the database or another local resource failed
  invalid,      // bad input: a file, a request, an argument
  not_found,    // no such key or object
  conflict,     // not allowed in the object's current state (or it changed meanwhile)
  unavailable,  // nobody answers there (no daemon on the socket, no server)
};

std::string_view to_string(ErrorKind k);

struct Error {
  std::string message;
  ErrorKind kind = ErrorKind::internal;
};

template <class T>
class [[nodiscard]] Result {
 public:
  // Empty: an internal error. Coroutine machinery (co_spawn's completion after an exception)
  // needs a default; real results always carry a value or a described error.
  Result() : v_(std::in_place_index<1>, Error{"no result", ErrorKind::internal}) {}
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<1>(v_); }
  const std::string& message() const { return error().message; }
  ErrorKind kind() const { return error().kind; }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }
  const std::string& message() const { return error_.message; }
  ErrorKind kind() const { return error_.kind; }

 private:
  Error error_;
  bool ok_ = true;
};

inline Error make_error(std::string message) { return Error{std::move(message)}; }
inline Error make_error(ErrorKind kind, std::string message) {
  return Error{std::move(message), kind};
}

inline std::string_view to_string(ErrorKind k) {
  switch (k) {
    case ErrorKind::internal: return "internal";
    case ErrorKind::io: return "io";
    case ErrorKind::invalid: return "invalid";
    case ErrorKind::not_found: return "not_found";
    case ErrorKind::conflict: return "conflict";
    case ErrorKind::unavailable: return "unavailable";
  }
  return "internal";
}

}  // namespace personad
