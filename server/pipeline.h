// server/pipeline.h: the ONE output pipeline. Every tools/call result is
// built here and nowhere else.
//
// Order, fixed: anonymize (with an inline canary) -> canary check -> envelope
// -> audit -> respond. A canary that is not redacted as expected halts Warden.
// Begin() writes the audit row before anything runs and refuses the call when
// Warden is halted or the row cannot be written (no unaudited access).
// Finish() turns a tool's RawOutput (Untrusted: bytes from a target) or its
// refusal into the MCP CallToolResult; if the final audit write fails, the
// output is withheld (fail closed).
//
// Thread safety: Begin/Finish may run concurrently for different calls.
#pragma once

#include <boost/json.hpp>

#include <chrono>
#include <mutex>
#include <vector>
#include <string>

#include "anonymizer/anonymizer.h"
#include "canary/canary.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/raw_output.h"
#include "core/result.h"
#include "storage/audit_store.h"

namespace warden::server {

struct CallInfo {
  std::string session_id;
  std::string call_id;
  std::string tool;
  std::string target;
  boost::json::value arguments;  // as the client sent them (sanitized before they are stored)
  std::chrono::steady_clock::time_point started;
};

class Pipeline {
 public:
  Pipeline(const anonymizer::Anonymizer& anonymizer, canary::Guard& guard, storage::AuditStore& audit,
           const OutputConfig& output, int retention_seconds, const Clock& clock);

  // Begin admits a call: refuses when halted, then writes its audit row.
  Status Begin(const CallInfo& call, anonymizer::TokenMap& tokens);
  // Finish builds the CallToolResult for an admitted call and completes its audit row.
  boost::json::object Finish(const CallInfo& call, const Result<RawOutput>& outcome, anonymizer::TokenMap& tokens);
  // Refusal builds an isError result for a call that Begin refused (Begin audited the attempt).
  boost::json::object Refusal(const CallInfo& call, const Status& why, anonymizer::TokenMap& tokens) const;

  // SelfTest runs every canary of the catalog through the same anonymizing
  // stage as tool output, records the run (`source` names who ran it) and, if
  // any canary fails, halts Warden and records the halt. Returns the verdicts.
  std::vector<canary::Verdict> SelfTest(const std::string& source);

  // CheckHalt is the halt state for a new call. The audit database is the
  // source of truth: a halt recorded by another process (the self-test
  // CronJob, another replica) stops this one too, and a halt an operator
  // lifted there (`warden canary --reset`) is lifted here. A halt that could
  // not be recorded holds until restart.
  Status CheckHalt();

 private:
  struct Stream;
  // Prepare fails when layer 2 is required and unavailable (`report` says what it did).
  Result<Stream> Prepare(const CapturedStream& raw, anonymizer::TokenMap& tokens, std::map<std::string, int>* counts,
                         canary::Verdict* canary, anonymizer::StageReport* report) const;
  // AnonymizeWithCanary anonymizes `text` with `canary` appended (layers 1 and 2), checks the
  // canary and returns the sanitized text without it; `counts` gets the spans of `text` only.
  Result<std::string> AnonymizeWithCanary(std::string text, const canary::Canary& canary,
                                          anonymizer::TokenMap& tokens, std::map<std::string, int>* counts,
                                          canary::Verdict* verdict, anonymizer::StageReport* report) const;
  std::string SanitizeText(std::string_view text, anonymizer::TokenMap& tokens) const;
  // Halt halts this process and records the halt (critical) in the audit database.
  void Halt(const std::string& reason, const std::string& source, const std::string& call_id);

  const anonymizer::Anonymizer& anonymizer_;
  canary::Guard& guard_;
  storage::AuditStore& audit_;
  OutputConfig output_;
  int retention_seconds_;
  const Clock& clock_;
  std::mutex halt_mu_;            // orders Halt against CheckHalt's lift
  bool halt_unrecorded_ = false;  // GUARDED_BY(halt_mu_)
};

// ErrorResult is a CallToolResult with isError and one text block.
boost::json::object ErrorResult(const std::string& text);

}  // namespace warden::server
