// canary/canary.h: known-fake sensitive values that prove, call after call,
// that the output pipeline redacts.
//
// The catalog has at least one canary per layer-1 rule family (cloud keys,
// vendor tokens, passwords, private keys, password hashes, bearer tokens,
// connection strings, addresses, e-mail, people, phones, IBANs, cards), in
// the formats real ones have, generated afresh per process: an attacker
// cannot special-case a fixed string. Each canary is a line as a target
// would print it, and says which parts must be redacted and as what.
//
// Two uses, one check (Verify):
// - inline: the pipeline appends a canary to every text stream of every tool
//   call before anonymizing, verifies it afterwards and strips it before the
//   envelope; a miss is a leak and halts Warden;
// - self-test (`warden canary`, and at startup): every canary of the catalog
//   through the whole configured pipeline.
//
// Canary values are fake; still, Verdict details name the family and the
// category, never the value.
//
// Thread safety: Guard may be used from any thread.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "anonymizer/anonymizer.h"
#include "core/result.h"

namespace warden::canary {

// Part of a canary line that must not survive. A secret must be covered by
// secret spans (irreversible placeholders; which secret category does not
// matter); an identifier by tokens of one of `categories`, or by secret spans
// (over-redaction is not a leak).
struct Sensitive {
  std::string value;
  std::vector<std::string> categories;  // the first is the one it is meant to be found as
  bool secret = true;
};

struct Canary {
  std::string family;               // the rule family it exercises, e.g. "cloud_credential"
  std::string text;                 // one or more lines, as a target would print them
  std::vector<Sensitive> sensitive; // each occurs in `text`
};

// GenerateCatalog makes the catalog, with fresh random values on each call.
std::vector<Canary> GenerateCatalog();

struct Verdict {
  std::string family;
  bool passed = false;
  std::string detail;  // why it failed: the category expected and what happened; never the value
};

// Verify checks a canary that was anonymized as part of a larger input, at
// input offset `at`: every sensitive part must be wholly covered by applied
// spans that redact it as it needs (see Sensitive).
Verdict Verify(const Canary& canary, size_t at, const anonymizer::Sanitized& sanitized);

// Guard holds the catalog and the process's halt flag.
class Guard {
 public:
  Guard();
  explicit Guard(std::vector<Canary> catalog);

  const std::vector<Canary>& catalog() const { return catalog_; }
  // Next returns the canary for the next inline use, cycling through the catalog.
  const Canary& Next();
  // Check is the last line of defence: it scans text about to leave for any
  // canary's sensitive value and returns FailedPrecondition naming the family.
  // It does not halt: the caller halts and records the halt in one step.
  Status Check(std::string_view sanitized) const;

  // Halted returns the halt as a refusal for every later call, or OK.
  Status Halted() const;
  // Halt sets the halt (the first reason wins); Lift clears it.
  void Halt(const std::string& reason);
  void Lift();

 private:
  std::vector<Canary> catalog_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> halted_{false};
  mutable std::mutex mu_;
  std::string reason_;  // GUARDED_BY(mu_)
};

// HaltMessage is the refusal every tool call gets while Warden is halted.
std::string HaltMessage(const std::string& reason);

}  // namespace warden::canary
