// tools/local_tools.h: local-first work. The agent delegates to the local
// model (trusted zone) and gets back only the model's answer, through the
// same output pipeline as any tool output (layer 1, layer 2, inline canary,
// envelope, audit).
//
// local_analyze runs one git / ssh_run / incus_exec command (the same tool
// objects, with the same checks), hands the RAW output and the agent's
// question to the local model, and returns the answer. local_generate,
// local_review, local_fix and local_test (the mcp-ollama-coder set) hand a
// code task to the local model.
//
// D1: fixed system prompts compiled into the binary; the data goes inside
// <UNTRUSTED_DATA boundary="random">. D3: every answer goes through
// anonymizer::ValidateAnswer before it is returned; a blocked answer is
// dropped, and the call returns RawOutput with metadata "blocked" (the
// pipeline records status "blocked" and shows only the reason). D4: the
// model has no tools; Warden alone runs the command the agent asked for.
// D5: an instruction-like phrase in an answer also opens the client's
// circuit breaker.
//
// Audit details (RawOutput.metadata): model, tokens_in, tokens_out,
// latency_ms, blocked (the reason) and blocked_check, and for local_analyze
// the inner tool, its target and exit status, and the bytes shown to the model.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "anonymizer/anonymizer.h"
#include "anonymizer/llm_client.h"
#include "anonymizer/validation.h"
#include "tools/tool.h"

namespace warden::tools {

// The most raw bytes local_analyze shows the model (the end of the output is kept).
inline constexpr size_t kMaxAnalyzeInput = 256 * 1024;

class LocalAnalyzeTool : public Tool {
 public:
  // `sources`: the tools it may run, by name (git, ssh_run, incus_exec), owned by the caller.
  LocalAnalyzeTool(std::shared_ptr<anonymizer::LlmClient> client, const anonymizer::Anonymizer& layer1,
                   std::map<std::string, Tool*> sources);
  const ToolSpec& spec() const override { return spec_; }
  // Target is "<source>:<the inner tool's target>".
  std::string Target(const boost::json::object& args) const override;
  Result<RawOutput> Run(const boost::json::object& args, CallContext& ctx) override;

 private:
  std::shared_ptr<anonymizer::LlmClient> client_;
  const anonymizer::Anonymizer& layer1_;
  std::map<std::string, Tool*> sources_;
  ToolSpec spec_;
};

class LocalCodeTool : public Tool {
 public:
  enum class Task { kGenerate, kReview, kFix, kTest };
  LocalCodeTool(Task task, std::shared_ptr<anonymizer::LlmClient> client, const anonymizer::Anonymizer& layer1);
  const ToolSpec& spec() const override { return spec_; }
  // Target is "model:<model>".
  std::string Target(const boost::json::object& args) const override;
  Result<RawOutput> Run(const boost::json::object& args, CallContext& ctx) override;

 private:
  Task task_;
  std::shared_ptr<anonymizer::LlmClient> client_;
  const anonymizer::Anonymizer& layer1_;
  ToolSpec spec_;
};

// AskAndValidate sends `request` and validates the answer against `raw_input`
// (D3). Exposed for tests. Errors: the client's (model unavailable, timeout,
// breaker open). OK: RawOutput with the answer on stdout, or blocked.
Result<RawOutput> AskAndValidate(anonymizer::LlmClient& client, const anonymizer::Anonymizer& layer1,
                                 const anonymizer::ChatRequest& request, std::string_view raw_input,
                                 const anonymizer::AnswerLimits& limits, const CancellationToken* cancel);

}  // namespace warden::tools
