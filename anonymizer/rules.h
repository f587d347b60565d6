// anonymizer/rules.h: the layer-1 rule engine (internal to the anonymizer).
//
// A Rule is an RE2 pattern whose group 1 (or whole match) is a candidate span,
// optional triggers that every match contains, and an optional check that may
// reject the candidate or move its bounds (extend a secret to its token
// boundary, read a quoted value). Rules see the ORIGINAL text only.
//
// Speed: one scan for all triggers (triggers.h) tells on which lines each rule
// can match, and only those run there (or, when every match starts at a
// trigger, only there). Rules marked multiline (PEM keys) run over the whole text.
// Base64 candidates are decoded and the decoded text is searched again, once.
#pragma once

#include <re2/re2.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "anonymizer/anonymizer.h"
#include "anonymizer/triggers.h"

namespace warden::anonymizer {

// Candidates, when a rule has it, is a hand-written finder of where a match of
// the rule's pattern can start: the first position in [pos, end) where one may
// start (`end` when none), never skipping one where the pattern matches. In
// *skip it says where to look next when the pattern does not match there
// (every start in between is known not to match; at least the position + 1).
// The pattern then runs anchored at those positions only, which finds what the
// unanchored search finds; tests/unit/anonymizer_candidates_test.cc holds each
// finder to that.
using Candidates = size_t (*)(std::string_view text, size_t pos, size_t end, size_t* skip);
// AnchoredMatch, when a rule has it (with candidates), stands in for RE2 at a
// candidate: the pattern's leftmost-first match starting at `s` within [s, end),
// as [*mb, *me) and its group 1 as [*gb, *ge): 1 when there is one, 0 when there
// is none, -1 when it cannot tell (RE2 decides). Held to RE2 by the same test as
// the finders.
using AnchoredMatch = int (*)(std::string_view text, size_t s, size_t end, size_t* mb, size_t* me, size_t* gb,
                              size_t* ge);

// Check may reject a candidate (return false) or adjust [*b, *e). It sees the
// whole text, so it can look at the context around the candidate.
using Check = std::function<bool(std::string_view text, size_t* b, size_t* e)>;

struct Rule {
  std::string name;
  std::string category;
  Kind kind = Kind::kSecret;
  std::vector<Trigger> triggers;  // see triggers.h; none: the rule runs everywhere
  std::string pattern;
  Check check;
  int priority = 0;
  bool multiline = false;
  bool base64_candidate = false;  // candidates are decoded and searched again, not reported as such
  Candidates candidates = nullptr;
  AnchoredMatch anchored = nullptr;
  // Every match starts where one of the rule's triggers begins ("AKIA...",
  // "sshpass -p ..."): the pattern runs anchored at the triggers the scan
  // found, not over the lines around them.
  bool starts_at_trigger = false;
};

class RuleEngine final : public SpanSource {
 public:
  // REQUIRES: every pattern compiles (built-in rules are a build defect
  // otherwise; operator patterns are checked by ValidatePattern first).
  // `use_candidates` false: every pattern runs unanchored (the reference the tests compare with).
  explicit RuleEngine(std::vector<Rule> rules, bool use_candidates = true);
  void Find(std::string_view text, std::vector<Span>* out) const override;

 private:
  // FindAll runs every rule over `text`; `decoded` marks text decoded from base64 (no second decoding).
  void FindAll(std::string_view text, std::vector<Span>* out, bool decoded) const;
  // RunRule: rule i over [begin, end); with `starts`, only at those positions (ascending).
  void RunRule(size_t i, std::string_view text, size_t begin, size_t end, std::vector<Span>* out, bool decoded,
               const std::vector<size_t>* starts = nullptr) const;
  void ExpandBase64(std::string_view text, const Span& candidate, std::vector<Span>* out) const;

  std::vector<Rule> rules_;
  std::vector<std::unique_ptr<RE2>> compiled_;
  std::vector<std::pair<std::string_view, std::string_view>> names_;  // rule -> interned (category, name)
  TriggerGate gate_;
  std::vector<std::vector<size_t>> trigger_rules_;  // trigger id -> rules it enables
  std::vector<char> always_;                        // rule -> runs everywhere (no trigger to scan for)
  std::vector<char> multiline_of_, starts_at_;      // rule -> its flags, kept close together for the scan
  bool use_candidates_ = true;
};

// BuiltinRules: Warden's own rule set (secrets and identifiers).
// `zones`: extra internal DNS zones from the config ("example.net").
std::vector<Rule> BuiltinRules(const std::vector<std::string>& zones);

// ValidatePattern: an operator's pattern compiles and has at most one group.
Status ValidatePattern(const std::string& pattern);

}  // namespace warden::anonymizer
