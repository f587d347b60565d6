// canary/canary.h: known-fake sensitive values that prove the pipeline redacts.
//
// The catalog is generated per process (not fixed strings an attacker could
// special-case). Guard::Check looks for any canary value in text that is about
// to leave the trusted zone; a hit means redaction failed, and Guard halts:
// from then on every tool call is refused until an operator lifts the halt.
//
// This is the pipeline stage of the canary design; inline injection into each
// call's raw output and the `warden canary` self-test build on it.
//
// Thread safety: all members may be called from any thread.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace warden::canary {

struct Canary {
  std::string category;  // the anonymizer category it must be redacted as
  std::string value;     // the fake sensitive value
};

// GenerateCatalog makes one canary per layer-1 rule family, fresh each call.
std::vector<Canary> GenerateCatalog();

class Guard {
 public:
  Guard();
  explicit Guard(std::vector<Canary> catalog);

  const std::vector<Canary>& catalog() const { return catalog_; }
  // Check scans sanitized text; on a leak it halts and returns FailedPrecondition naming the category.
  Status Check(std::string_view sanitized);
  // Halted returns the halt as a refusal to use for every later call, or OK.
  Status Halted() const;
  void Halt(const std::string& reason);

 private:
  std::vector<Canary> catalog_;
  std::atomic<bool> halted_{false};
  mutable std::mutex mu_;
  std::string reason_;  // GUARDED_BY(mu_)
};

}  // namespace warden::canary
