// anonymizer/validation.h: D3, output validation of a local model's answer
// before it goes on (through the output pipeline) to the agent.
//
// The local model reads raw data in the trusted zone; its answer is untrusted
// (the data can talk it into anything). An answer is blocked when it:
// - copies a run of `max_verbatim_bytes` or more of the raw input verbatim;
// - carries base64 or hex that decodes to input data (6 bytes or more);
// - is longer than `max_answer_bytes` (the caller scales it to the question);
// - holds a secret layer 1 recognises (a password, key, token, ...);
// - holds an instruction-like phrase ("ignore previous instructions", an
//   envelope tag): also a D5 anomaly, the caller opens the circuit breaker.
// The reason names the check and sizes only, never the answer's or input's text.
#pragma once

#include <string>
#include <string_view>

#include "anonymizer/anonymizer.h"

namespace warden::anonymizer {

struct AnswerCheck {
  bool ok = true;
  std::string check;   // verbatim | encoded | length | sensitive | injection
  std::string reason;  // for the agent and the audit row; no data
};

struct AnswerLimits {
  uint64_t max_answer_bytes = 8192;
  uint64_t max_verbatim_bytes = 64;
};

AnswerCheck ValidateAnswer(std::string_view answer, std::string_view raw_input, const AnswerLimits& limits,
                           const Anonymizer& layer1);

// LongestCopiedRun is true when `answer` and `input` share a run of at least
// `min_bytes` bytes (windows made of fewer than 8 distinct bytes do not count:
// rulers, padding). Exposed for tests.
bool CopiesRun(std::string_view answer, std::string_view input, size_t min_bytes);

// DecodesToInput is true when a base64 or hex run of `answer` decodes to at
// least 6 bytes that occur in `input`.
bool DecodesToInput(std::string_view answer, std::string_view input);

}  // namespace warden::anonymizer
