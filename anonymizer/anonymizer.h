// anonymizer/anonymizer.h: turns untrusted tool output into text that may
// leave the trusted zone.
//
// Input: Untrusted: bytes from targets, valid UTF-8 (the pipeline repairs
// encoding first). Output: the same text with every secret replaced by an
// irreversible typed placeholder ([PRIVKEY_REDACTED], [PASSWORD_REDACTED]) and
// every identifier replaced by a session token ([IP_1], [EMAIL_2]) that is
// stable for the session and resolvable only inside Warden (TokenMap).
//
// Engine: every SpanSource (layer-1 regex rules now; a local-LLM span
// classifier later) reports spans on the ORIGINAL text; overlaps are resolved
// once, deterministically (secrets before identifiers, then longer spans, then
// earlier spans), and the text is rewritten in a single pass. Rules never see
// each other's output.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/config.h"
#include "core/result.h"

namespace warden::anonymizer {

enum class Kind { kSecret, kIdentifier };

// Category and rule are names, never text: string literals or InternName()
// views, which live as long as the process (a Span outlives the anonymizer
// that found it). A Span is copied freely, so it holds no strings of its own.
struct Span {
  size_t begin = 0;
  size_t end = 0;                 // exclusive
  Kind kind = Kind::kSecret;
  std::string_view category;      // "private_key", "password", "ip", "email", ...
  std::string_view rule;          // which rule found it (for --explain; never the value)
  int priority = 0;               // higher wins an overlap before length does (a more specific rule)
  size_t length() const { return end - begin; }
};

// InternName returns a view of a copy of `name` that lives as long as the
// process: for rule and category names built at run time (config patterns,
// dictionary categories). Names only, a bounded set; never text.
std::string_view InternName(std::string_view name);

// Placeholder prefix for a category: identifiers get numbered tokens
// ("IP" -> [IP_3]); secrets get a fixed irreversible marker ([PRIVKEY_REDACTED]).
std::string TokenPrefix(std::string_view category);
std::string SecretPlaceholder(std::string_view category);

// TokenMap: the per-session, in-memory mapping between identifiers and tokens.
// Never persisted, never logged. Thread safe.
//
// IP addresses become "[IP_n]" by default; in prefix-preserving mode they
// become Crypto-PAn pseudonyms (keyed per session, random key) that keep
// subnet structure: two addresses sharing a /24 share a pseudonym /24.
class TokenMap {
 public:
  enum class IpMode { kNumbered, kPrefixPreserving };
  explicit TokenMap(IpMode ip_mode = IpMode::kNumbered);
  ~TokenMap();
  TokenMap(const TokenMap&) = delete;
  TokenMap& operator=(const TokenMap&) = delete;

  // AppendToken appends the session's token for (prefix, value) to `out`,
  // creating the token on first sight.
  void AppendToken(std::string_view prefix, std::string_view value, std::string* out);
  // Resolve returns the real value of a token (or pseudonym) this session issued, or nullopt.
  std::optional<std::string> Resolve(std::string_view token) const;
  size_t size() const;
  IpMode ip_mode() const { return ip_mode_; }

 private:
  std::string Pseudonym(std::string_view ip);

  IpMode ip_mode_;
  std::string key_;  // Crypto-PAn key (32 bytes), wiped on destruction
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::string> forward_;  // prefix '\0' value -> token
  std::unordered_map<std::string, std::string> reverse_;  // token -> value
  std::unordered_map<std::string, int> next_;             // prefix -> last number issued
};

// IpModeOf reads `anonymizer.ip_mode` from the config.
TokenMap::IpMode IpModeOf(const AnonymizerConfig& config);

// SpanSource finds spans in text. Implementations must be thread safe (const).
class SpanSource {
 public:
  virtual ~SpanSource() = default;
  virtual void Find(std::string_view text, std::vector<Span>* out) const = 0;
};

// StageReport: what a second stage (layer 2) did for one Anonymize call, for
// the audit row. Counts and timings only, never text.
struct StageReport {
  bool ran = false;           // a second stage is configured and was asked
  std::string mode;           // "layer2" | "regex_only" (layer 2 unavailable, layer 1 alone by config)
  std::string error;          // why layer 2 gave no answer (empty when it did)
  int chunks = 0, cache_hits = 0, model_calls = 0, spans = 0;
  std::map<std::string, int> dropped;  // reason -> spans of the model that were not used
  int64_t model_ms = 0;       // summed over the model requests
  int64_t tokens_in = 0, tokens_out = 0;
  int64_t stage_us = 0;       // wall time in the stage, model requests included
  std::string model;
  std::string breaker;        // set when this call opened the circuit breaker: the reason
  void Merge(const StageReport& o);
};

// SecondStage runs after layer 1 and sees its spans: layer 2, the local-LLM
// span classifier (anonymizer/layer2.h). Thread safe (const).
class SecondStage {
 public:
  virtual ~SecondStage() = default;
  // Find adds spans on `text` (offsets into `text`). `layer1` are layer 1's
  // resolved spans. An error means the text must not leave (fail closed).
  virtual Status Find(std::string_view text, const std::vector<Span>& layer1, std::vector<Span>* out,
                      StageReport* report) const = 0;
};

struct Sanitized {
  std::string text;
  std::map<std::string, int> counts;  // category -> spans replaced
  std::vector<Span> spans;            // the spans applied, on the input's offsets
  // Where each applied span's replacement sits in `text` (parallel to spans).
  std::vector<std::pair<size_t, size_t>> output_ranges;
};

// OutputOffset maps an offset of the input to the offset in `s.text` where
// the input from there on begins. An offset inside a replaced span maps to
// the start of its replacement.
size_t OutputOffset(const Sanitized& s, size_t input_offset);

class Anonymizer {
 public:
  explicit Anonymizer(std::vector<std::unique_ptr<SpanSource>> sources, std::vector<std::string> keep = {});
  // Anonymize rewrites `text` once with the resolved spans of all sources
  // (layer 1 only: for Warden's own messages, arguments and targets).
  Sanitized Anonymize(std::string_view text, TokenMap& tokens) const;
  // AnonymizeChecked is Anonymize with the second stage (layer 2) when one is
  // set: its spans join layer 1's before the one rewrite. It fails when the
  // stage does (layer 2 unavailable and `on_unavailable: block`, or its
  // circuit breaker open): nothing of `text` may leave then. `report` may be null.
  Result<Sanitized> AnonymizeChecked(std::string_view text, TokenMap& tokens, StageReport* report = nullptr) const;
  // SetSecondStage installs layer 2; call it before the anonymizer is shared.
  void SetSecondStage(std::shared_ptr<const SecondStage> stage) { stage_ = std::move(stage); }
  bool has_second_stage() const { return stage_ != nullptr; }

 private:
  std::vector<Span> FindLayer1(std::string_view text) const;  // unresolved, kept terms dropped
  void DropKept(std::string_view text, std::vector<Span>* spans) const;
  Sanitized Rewrite(std::string_view text, std::vector<Span> spans, TokenMap& tokens) const;

  std::vector<std::unique_ptr<SpanSource>> sources_;
  std::vector<std::string> keep_;  // sorted
  std::shared_ptr<const SecondStage> stage_;
};

// ResolveSpans merges overlapping secret spans into one over their union (no
// secret rule un-redacts another's find), then sorts and drops overlapping
// spans: secrets beat identifiers, then higher priority, then longer, then
// earlier. Exposed for tests.
std::vector<Span> ResolveSpans(std::vector<Span> spans);

// MakeAnonymizer builds layer 1 (built-in rules, operator patterns, the
// dictionary of names from infra.yml and the config). Errors name the file
// and what is wrong (an unreadable infra.yml, a pattern that does not compile).
Result<std::unique_ptr<Anonymizer>> MakeAnonymizer(const AnonymizerConfig& config);

// MakeDefaultAnonymizer: built-in rules only.
std::unique_ptr<Anonymizer> MakeDefaultAnonymizer();

// Detokenize replaces every session token ("[IP_3]") in `s` with its real
// value. A token-shaped string this session never issued is NotFound: an
// invented token is refused, never passed through. Secret placeholders have no
// reverse mapping and are left as they are.
Status Detokenize(std::string* s, const TokenMap& tokens);

}  // namespace warden::anonymizer
