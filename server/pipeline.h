// server/pipeline.h: the ONE output pipeline. Every tools/call result is
// built here and nowhere else.
//
// Order, fixed: anonymize -> canary check -> envelope -> audit -> respond.
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
  // Refusal builds an isError result for a call that Begin refused (nothing to audit beyond the attempt).
  boost::json::object Refusal(const CallInfo& call, const Status& why, anonymizer::TokenMap& tokens) const;

 private:
  struct Stream;
  Stream Prepare(const CapturedStream& raw, anonymizer::TokenMap& tokens, std::map<std::string, int>* counts) const;
  std::string SanitizeText(std::string_view text, anonymizer::TokenMap& tokens) const;

  const anonymizer::Anonymizer& anonymizer_;
  canary::Guard& guard_;
  storage::AuditStore& audit_;
  OutputConfig output_;
  int retention_seconds_;
  const Clock& clock_;
};

// ErrorResult is a CallToolResult with isError and one text block.
boost::json::object ErrorResult(const std::string& text);

}  // namespace warden::server
