// core/raw_output.h: what a tool hands to the output pipeline.
//
// Untrusted: every byte in RawOutput comes from a target (a host, an
// instance, a repository) and may hold secrets or hostile text. Only the
// output pipeline (server/pipeline.h) reads it; tools never turn it into a
// response themselves, and nothing writes it to disk or to a log.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace warden {

struct CapturedStream {
  std::string bytes;       // what was kept, at most the capture cap
  uint64_t total = 0;      // bytes the command produced, including those dropped past the cap
  bool capped() const { return total > bytes.size(); }
};

struct RawOutput {
  CapturedStream out;                      // stdout
  CapturedStream err;                      // stderr
  std::optional<int> exit_status;          // absent when killed by a signal or never finished
  std::optional<std::string> exit_signal;  // "KILL", "TERM", ...
  bool timed_out = false;
  bool cancelled = false;
  std::chrono::milliseconds duration{0};
  // Tool-specific facts for the audit row's `details` (never secrets, never
  // output): e.g. "operation", a certificate's serial and key id.
  std::map<std::string, std::string> metadata;

  // Completed means the command ran to its end (any exit status).
  bool completed() const { return exit_status.has_value() && !timed_out && !cancelled; }
};

}  // namespace warden
