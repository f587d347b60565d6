// core/cancel.h: cooperative cancellation for running tool calls.
//
// A CancellationToken is set once (by notifications/cancelled, a timeout owned
// by the server, or shutdown) and read by the code running the call. Runners
// that block in poll() add wake_fd() to their poll set so that cancellation
// wakes them at once instead of at their next timeout.
//
// Thread safety: all members may be called from any thread.
#pragma once

#include <atomic>
#include <mutex>
#include <string>

namespace warden {

class CancellationToken {
 public:
  CancellationToken();
  ~CancellationToken();
  CancellationToken(const CancellationToken&) = delete;
  CancellationToken& operator=(const CancellationToken&) = delete;

  // Cancel marks the token cancelled with a reason (first reason wins) and wakes pollers.
  void Cancel(const std::string& reason);
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  std::string reason() const;
  // wake_fd is readable (POLLIN) once Cancel() was called; never read from it.
  int wake_fd() const { return fd_; }

 private:
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mu_;
  std::string reason_;  // GUARDED_BY(mu_)
  int fd_ = -1;         // eventfd
};

}  // namespace warden
