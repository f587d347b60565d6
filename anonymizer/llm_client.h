// anonymizer/llm_client.h: the client of the local model server (trusted
// zone), used by layer 2 (span classification) and the local_* tools.
//
// Two APIs, one request shape: Ollama's POST /api/chat (a JSON schema in
// `format`) and the OpenAI-compatible POST /v1/chat/completions
// (`response_format` json_schema), which llama.cpp's server, vLLM and LM
// Studio speak. Streaming is off; temperature 0.
//
// Transport: HTTP/1.1 (Boost.Beast) to llm.endpoint only, a fresh connection
// per request, no redirect followed, no proxy. https verifies the server
// against llm.tls_ca_file (chain and host name) or its pinned certificate
// (llm.tls_server_cert_sha256, checked in the handshake). A bearer token is
// read once from llm.bearer_token_file. Every request has a deadline
// (llm.timeout_seconds, connect included) and stops at the call's
// cancellation. At most llm.max_concurrency requests are in flight, over all
// callers; the others wait for a slot (the wait counts against the deadline).
//
// Trust: the model's answer is untrusted text (a model can be talked into
// anything by the data it reads). This client returns it to its caller and
// never logs it; error messages never quote it.
//
// CircuitBreaker (D5): one per client, shared by layer 2 and the local
// tools. Once open (an anomaly: injection phrases in an answer, an answer
// size far above the baseline, too many dropped spans) every use of the model
// is refused until Warden restarts.
//
// Thread safety: Chat and the breaker may be used from any thread.
#pragma once

#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/cancel.h"
#include "core/config.h"
#include "core/result.h"

namespace warden::anonymizer {

struct ChatRequest {
  std::string system;                         // trusted instructions
  std::string user;                           // the data (in an envelope) and the question
  std::optional<boost::json::object> schema;  // JSON schema the answer must follow; none: free text
  int max_tokens = 1024;
};

struct ChatAnswer {
  std::string content;        // the model's text (untrusted)
  std::string model;          // as the server names it
  int64_t tokens_in = 0;      // prompt tokens, as the server counts them (0 when not reported)
  int64_t tokens_out = 0;
  int64_t latency_ms = 0;     // request sent to answer read, slot wait excluded
  uint64_t response_bytes = 0;  // the HTTP body
};

class CircuitBreaker {
 public:
  // Check is OK while closed; FailedPrecondition naming the reason once open.
  Status Check() const;
  // Trip opens the breaker (the first reason is kept) and logs it (critical).
  void Trip(const std::string& reason);
  bool open() const { return open_.load(); }
  // ObserveSize feeds the baseline of answer sizes; true when `bytes` is an
  // anomaly (after 8 answers, more than 10x the mean and over 4 KiB).
  bool ObserveSize(uint64_t bytes);

 private:
  std::atomic<bool> open_{false};
  mutable std::mutex mu_;
  std::string reason_;   // GUARDED_BY(mu_)
  uint64_t seen_ = 0;    // GUARDED_BY(mu_)
  double mean_ = 0;      // GUARDED_BY(mu_)
};

class LlmClient {
 public:
  // Create reads the bearer token and loads the TLS material; it does not connect.
  static Result<std::unique_ptr<LlmClient>> Create(const LlmConfig& config);
  ~LlmClient();
  LlmClient(const LlmClient&) = delete;
  LlmClient& operator=(const LlmClient&) = delete;

  // Chat sends one request. Unavailable: no connection, an HTTP error, an
  // answer that is not the API's JSON or holds no content; DeadlineExceeded;
  // Cancelled; FailedPrecondition when the breaker is open.
  Result<ChatAnswer> Chat(const ChatRequest& request, const CancellationToken* cancel = nullptr);

  CircuitBreaker& breaker() { return breaker_; }
  const LlmConfig& config() const { return config_; }
  // Describe is "ollama model at http://host:port", for messages and logs.
  std::string Describe() const;

  struct Impl;

 private:
  LlmClient(LlmConfig config, std::unique_ptr<Impl> impl);
  // A slot among llm.max_concurrency; false when the deadline or the cancellation came first.
  bool Acquire(std::chrono::steady_clock::time_point deadline, const CancellationToken* cancel);
  void Release();

  LlmConfig config_;
  std::unique_ptr<Impl> impl_;
  CircuitBreaker breaker_;
  std::mutex slot_mu_;
  std::condition_variable slot_cv_;
  int in_flight_ = 0;  // GUARDED_BY(slot_mu_)
};

// RequestBody builds the JSON body for `api` ("ollama" | "openai"). Exposed for tests.
boost::json::object RequestBody(const std::string& api, const std::string& model, const ChatRequest& request);
// ParseAnswer reads an API response body into `out` (content, model, token counts).
Status ParseAnswer(const std::string& api, const std::string& body, ChatAnswer* out);

}  // namespace warden::anonymizer
