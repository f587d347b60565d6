// tools/tool.h: the interface every Warden tool implements.
//
// A tool turns validated arguments into RawOutput: the raw bytes a target
// produced. It never builds an MCP response, never sanitizes, never logs the
// bytes: the server hands RawOutput to the one output pipeline
// (server/pipeline.h), so no tool can skip anonymization, the canary check,
// the envelope or the audit row.
//
// Arguments reach Run() already checked against spec().input_schema and with
// session tokens ([IP_3], [HOST_2]) resolved to real values; tools still check
// the semantics (a ref must not start with '-', a path must stay in the repo).
#pragma once

#include <boost/json.hpp>

#include <cstdint>
#include <functional>
#include <string>

#include "core/cancel.h"
#include "core/raw_output.h"
#include "core/result.h"

namespace warden::tools {

struct Annotations {
  bool read_only = true;
  bool destructive = false;
  bool idempotent = true;
  bool open_world = false;
};

struct ToolSpec {
  std::string name;
  std::string title;
  std::string description;          // must tell the model that output is untrusted data
  boost::json::object input_schema;
  boost::json::object output_schema;  // the pipeline's structuredContent (CommandOutputSchema)
  Annotations annotations;
};

// ProgressFn is called from the tool's thread with the bytes received so far;
// it must be cheap and must not block.
using ProgressFn = std::function<void(uint64_t bytes_so_far, const std::string& message)>;

struct CallContext {
  std::string session_id;
  std::string call_id;
  const CancellationToken* cancel = nullptr;  // never null while Run() executes
  ProgressFn progress;                        // may be empty
  uint64_t max_capture_bytes = 8u << 20;      // raw bytes kept per stream
};

class Tool {
 public:
  virtual ~Tool() = default;
  virtual const ToolSpec& spec() const = 0;
  // Target names what a call touches ("repo:demo"), for the audit row and the
  // envelope. Called after schema validation; must not fail.
  virtual std::string Target(const boost::json::object& args) const = 0;
  // Run executes the call. OK: the command ran, or was stopped by its timeout
  // or by cancellation (RawOutput says which). Error: the call was refused or
  // could not start; the message is shown to the model (after sanitizing), so
  // it says what to change.
  virtual Result<RawOutput> Run(const boost::json::object& args, CallContext& ctx) = 0;
};

// CommandOutputSchema is the outputSchema of every command-running tool: the
// structuredContent that the output pipeline builds from RawOutput.
boost::json::object CommandOutputSchema();

// The limits every command-running tool takes as arguments, with one schema.
constexpr int64_t kMaxOutputBytes = int64_t{64} << 20;  // largest max_output_bytes a call may ask for
// DefaultTimeout is a tool's configured default timeout, kept within [1, max].
int DefaultTimeout(int timeout_seconds, int max_timeout_seconds);
// TimeoutProperty: `timeout_seconds`, from 1 to `max_seconds`, defaulting to `default_seconds`.
boost::json::object TimeoutProperty(int default_seconds, int max_seconds, const char* description);
// MaxOutputProperty: `max_output_bytes`, from 1 to kMaxOutputBytes.
boost::json::object MaxOutputProperty();

// UntrustedNotice is the sentence every tool description ends with.
extern const char* const kUntrustedNotice;

}  // namespace warden::tools
