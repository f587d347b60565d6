// core/result.h: Warden's one error vocabulary.
//
// Status carries a code and a human reason, kept apart (the code decides what
// the caller does, the reason is for people). Result<T> carries a value or a
// non-OK Status. Both are [[nodiscard]]: an ignored error is a bug.
//
//   Result<Config> c = load_config(path);
//   if (!c.ok()) return c.status();
//   use(c.value());
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace warden {

enum class Code {
  kOk,
  kInvalidArgument,     // the caller's input is wrong; retrying it unchanged will fail again
  kNotFound,            // a named thing (repo, host, tool, token) does not exist
  kPermissionDenied,    // the request is understood and refused by policy
  kFailedPrecondition,  // the system is not in a state to do this (halted, not initialized)
  kDeadlineExceeded,    // a timeout fired
  kCancelled,           // the caller cancelled
  kResourceExhausted,   // a limit was reached (concurrency, size)
  kUnavailable,         // a dependency (database, target) cannot be reached
  kInternal,            // a bug or an unexpected fault of Warden itself
};

// CodeName returns a stable lower-case name ("invalid_argument") for audit rows and logs.
const char* CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // ToString gives "code_name: message".
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status PermissionDenied(std::string m) { return {Code::kPermissionDenied, std::move(m)}; }
inline Status FailedPrecondition(std::string m) { return {Code::kFailedPrecondition, std::move(m)}; }
inline Status DeadlineExceeded(std::string m) { return {Code::kDeadlineExceeded, std::move(m)}; }
inline Status Cancelled(std::string m) { return {Code::kCancelled, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {Code::kResourceExhausted, std::move(m)}; }
inline Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    if (status_.ok()) status_ = Internal("Result constructed from an OK status without a value");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  // REQUIRES: ok()
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace warden
