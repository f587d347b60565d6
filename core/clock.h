// core/clock.h: the seams where time and randomness enter Warden.
//
// Production code takes a Clock& so that tests can move time (certificate
// validity, purge times) without sleeping. RandomBytes draws from OpenSSL's
// CSPRNG; there is deliberately no seedable variant.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace warden {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::system_clock::time_point Now() const = 0;
  // Monotonic time for durations and deadlines; not injectable on purpose.
  static std::chrono::steady_clock::time_point Steady() { return std::chrono::steady_clock::now(); }
};

class SystemClock final : public Clock {
 public:
  std::chrono::system_clock::time_point Now() const override { return std::chrono::system_clock::now(); }
};

// A clock that stays where a test puts it.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::chrono::system_clock::time_point t) : t_(t) {}
  std::chrono::system_clock::time_point Now() const override { return t_; }
  void Set(std::chrono::system_clock::time_point t) { t_ = t; }
  void Advance(std::chrono::system_clock::duration d) { t_ += d; }

 private:
  std::chrono::system_clock::time_point t_;
};

// Milliseconds since the Unix epoch.
int64_t UnixMillis(std::chrono::system_clock::time_point t);

// RandomBytes returns n bytes from OpenSSL's CSPRNG; aborts if the CSPRNG fails
// (continuing with weak randomness would be worse than stopping).
std::string RandomBytes(size_t n);
// RandomToken returns n random bytes as lower-case hex (2n characters).
std::string RandomHex(size_t n);
// RandomId returns a 128-bit id in base32-like lower-case form, for session and call ids.
std::string RandomId();

}  // namespace warden
