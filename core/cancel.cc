#include "core/cancel.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace warden {

CancellationToken::CancellationToken() { fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

CancellationToken::~CancellationToken() {
  if (fd_ >= 0) ::close(fd_);
}

void CancellationToken::Cancel(const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_.load()) return;
    reason_ = reason;
    cancelled_.store(true, std::memory_order_release);
  }
  if (fd_ >= 0) {
    uint64_t one = 1;
    // The eventfd counter only needs to become non-zero; a failed write means it already is.
    [[maybe_unused]] ssize_t n = ::write(fd_, &one, sizeof one);
  }
}

std::string CancellationToken::reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reason_;
}

}  // namespace warden
