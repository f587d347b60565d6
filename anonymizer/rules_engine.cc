#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "anonymizer/checks.h"
#include "anonymizer/rules.h"

namespace warden::anonymizer {
namespace {

RE2::Options Re2Options() {
  RE2::Options o;
  o.set_log_errors(false);
  o.set_max_mem(64 << 20);
  return o;
}

}  // namespace

Status ValidatePattern(const std::string& pattern) {
  RE2 re(pattern, Re2Options());
  if (!re.ok()) return InvalidArgument("pattern does not compile: " + re.error());
  if (re.NumberOfCapturingGroups() > 1)
    return InvalidArgument("pattern may have at most one capturing group (the span to replace)");
  return Status::Ok();
}

RuleEngine::RuleEngine(std::vector<Rule> rules, bool use_candidates)
    : rules_(std::move(rules)), use_candidates_(use_candidates) {
  always_.assign(rules_.size(), 0);
  for (size_t i = 0; i < rules_.size(); ++i) {
    const Rule& r = rules_[i];
    multiline_of_.push_back(r.multiline);
    starts_at_.push_back(r.starts_at_trigger);
    names_.emplace_back(InternName(r.category), InternName(r.name));
    compiled_.push_back(std::make_unique<RE2>(r.pattern, Re2Options()));
    if (!compiled_.back()->ok()) {
      std::fprintf(stderr, "warden: rule %s does not compile: %s\n", r.name.c_str(), compiled_.back()->error().c_str());
      std::abort();
    }
    if (r.triggers.empty()) always_[i] = 1;
    for (const Trigger& t : r.triggers) {
      std::string err;
      int id = gate_.Add(t, &err);
      if (id < 0) {
        // A trigger that cannot be scanned for (a configured zone with many
        // letters RE2 folds beyond ASCII): the rule runs everywhere instead.
        std::fprintf(stderr, "warden: trigger %s of rule %s: %s; the rule runs ungated\n", t.pattern.c_str(),
                     r.name.c_str(), err.c_str());
        always_[i] = 1;
        continue;
      }
      trigger_rules_.resize(static_cast<size_t>(id) + 1);
      trigger_rules_[static_cast<size_t>(id)].push_back(i);
    }
  }
  gate_.Finish();
}

void RuleEngine::RunRule(size_t i, std::string_view text, size_t begin, size_t end, std::vector<Span>* out,
                         bool decoded, const std::vector<size_t>* starts) const {
  const RE2& re = *compiled_[i];
  const Rule& rule = rules_[i];
  int groups = std::min(1, re.NumberOfCapturingGroups());
  re2::StringPiece input(text.data(), text.size()), m[2];
  const Candidates candidates = use_candidates_ ? rule.candidates : nullptr;
  size_t pos = begin, next_start = 0;
  while (pos < end) {
    if (candidates || starts) {
      // Anchored at the places a match can start only: the same leftmost match
      // as the unanchored search, without running the automaton over the bytes between.
      size_t skip = 0, s = end;
      if (starts) {
        while (next_start < starts->size() && (*starts)[next_start] < pos) ++next_start;
        if (next_start < starts->size()) s = (*starts)[next_start];
        skip = s + 1;
      } else {
        s = candidates(text, pos, end, &skip);
      }
      if (s >= end) break;
      size_t mb, me, gb, ge;
      int known = rule.anchored ? rule.anchored(text, s, end, &mb, &me, &gb, &ge) : -1;
      bool found = known > 0;
      if (found) {
        m[0] = re2::StringPiece(input.data() + mb, me - mb);
        m[1] = re2::StringPiece(input.data() + gb, ge - gb);
      } else if (known < 0) {
        found = re.Match(input, s, end, RE2::ANCHOR_START, m, groups + 1);
      }
      if (!found) {
        pos = std::max(skip, s + 1);
        continue;
      }
    } else if (!re.Match(input, pos, end, RE2::UNANCHORED, m, groups + 1)) {
      break;
    }
    size_t wb = static_cast<size_t>(m[0].data() - input.data());
    size_t we = wb + m[0].size();
    pos = we > wb ? we : we + 1;
    re2::StringPiece s = groups ? m[1] : m[0];
    if (s.data() == nullptr) continue;
    size_t b = static_cast<size_t>(s.data() - input.data()), e = b + s.size();
    if (rule.check && !rule.check(text, &b, &e)) {
      // A rejected candidate may hide a valid one that starts inside it.
      if (we > wb + 1) pos = wb + 1;
      continue;
    }
    if (e <= b) continue;
    Span span{b, e, rule.kind, names_[i].first, names_[i].second, rule.priority};
    if (rule.base64_candidate) {
      if (!decoded) ExpandBase64(text, span, out);
      continue;
    }
    out->push_back(span);
    pos = std::max(pos, e);
  }
}

// ExpandBase64 decodes a candidate; when the decoded text holds a secret (or is
// credentials "user:pass", or a private key), the whole encoded value is one.
// Identifiers in the decoded text do not count (FindAll does not look for them there).
void RuleEngine::ExpandBase64(std::string_view text, const Span& c, std::vector<Span>* out) const {
  std::optional<std::string> decoded = Base64Decode(text.substr(c.begin, c.length()));
  if (!decoded || decoded->size() < 6 || !MostlyPrintable(*decoded)) return;
  std::vector<Span> inner;
  FindAll(*decoded, &inner, true);
  std::string_view category;
  for (const Span& s : inner)
    if (s.kind == Kind::kSecret) category = s.category == "private_key" ? "private_key" : "encoded_secret";
  size_t colon = decoded->find(':');
  bool credentials = colon != std::string::npos && colon > 0 && colon + 1 < decoded->size() &&
                     decoded->find_first_of(" \n\t{}\"") == std::string::npos;  // user:pass, not JSON
  if (category.empty() && credentials) category = "auth_header";
  if (category.empty()) return;
  out->push_back({c.begin, c.end, Kind::kSecret, category, "base64-decoded", 2});
}

void RuleEngine::FindAll(std::string_view text, std::vector<Span>* out, bool decoded) const {
  const size_t end = text.size();
  if (end == 0) return;
  // Pass 1: one scan for every rule's triggers says on which lines each rule
  // can match (or, for a rule that starts at its triggers, where). Pass 2: each
  // rule runs once over every run of such lines, so a rule costs nothing where
  // its triggers are absent. Multiline rules run over the whole text when one
  // of their triggers is anywhere in it.
  // Scratch kept per thread, one set per depth (the outer text, and base64 it
  // decodes): the vectors keep their capacity from call to call.
  struct Scratch {
    std::vector<std::vector<std::pair<size_t, size_t>>> lines_of;  // rule -> runs of lines, [begin, end)
    std::vector<std::vector<size_t>> starts_of;                    // rule (starts_at_trigger) -> trigger starts
  };
  thread_local Scratch scratch[2];
  Scratch& sc = scratch[decoded ? 1 : 0];
  auto& lines_of = sc.lines_of;
  auto& starts_of = sc.starts_of;
  if (lines_of.size() < rules_.size()) lines_of.resize(rules_.size());
  if (starts_of.size() < rules_.size()) starts_of.resize(rules_.size());
  for (size_t r = 0; r < rules_.size(); ++r) {
    lines_of[r].clear();
    starts_of[r].clear();
  }
  const bool at_starts_ok = use_candidates_;
  auto known = [&](size_t r, size_t start) {  // the rule already runs over the line at `start`
    if (multiline_of_[r]) return !lines_of[r].empty();
    const auto& lines = lines_of[r];
    return !lines.empty() && start >= lines.back().first && start < lines.back().second;
  };
  gate_.Scan(
      text,
      [&](int id, size_t start) {
        for (size_t r : trigger_rules_[static_cast<size_t>(id)])
          if ((at_starts_ok && starts_at_[r]) || !known(r, start)) return true;
        return false;
      },
      [&](int id, size_t start) {
        for (size_t r : trigger_rules_[static_cast<size_t>(id)]) {
          if (at_starts_ok && starts_at_[r]) {
            starts_of[r].push_back(start);
            continue;
          }
          if (known(r, start)) continue;
          auto& lines = lines_of[r];
          if (multiline_of_[r]) {  // the whole text
            lines.emplace_back(0, end);
            continue;
          }
          // The line the trigger starts on: single-line rules see whole lines.
          const void* nl_before = start > 0 ? memrchr(text.data(), '\n', start) : nullptr;
          size_t b = nl_before ? static_cast<size_t>(static_cast<const char*>(nl_before) - text.data()) + 1 : 0;
          size_t nl = text.find('\n', start);
          size_t e = nl == std::string_view::npos ? end : nl + 1;
          if (!lines.empty() && b == lines.back().second) lines.back().second = e;  // the next line: one run
          else lines.emplace_back(b, e);
        }
      });
  // In text decoded from base64 only secrets count (ExpandBase64): identifier rules are skipped there.
  auto skip = [&](size_t r) { return decoded && rules_[r].kind != Kind::kSecret; };
  auto run = [&](size_t r) {
    if (always_[r]) {  // no trigger: one run over the whole text
      RunRule(r, text, 0, end, out, decoded);
    } else if (at_starts_ok && starts_at_[r]) {
      std::vector<size_t>& at = starts_of[r];
      if (at.empty()) return;
      if (!std::is_sorted(at.begin(), at.end())) std::sort(at.begin(), at.end());
      at.erase(std::unique(at.begin(), at.end()), at.end());
      RunRule(r, text, 0, end, out, decoded, &at);
    } else {
      auto& lines = lines_of[r];
      if (!std::is_sorted(lines.begin(), lines.end())) {  // a trigger anchored past its line's end, seen late
        std::sort(lines.begin(), lines.end());
        size_t k = 0;
        for (size_t i = 1; i < lines.size(); ++i) {
          if (lines[i].first <= lines[k].second) lines[k].second = std::max(lines[k].second, lines[i].second);
          else lines[++k] = lines[i];
        }
        lines.resize(k + 1);
      }
      for (const auto& [b, e] : lines) RunRule(r, text, b, e, out, decoded);
    }
  };
  for (size_t r = 0; r < rules_.size(); ++r)
    if (multiline_of_[r] && !skip(r)) run(r);
  for (size_t r = 0; r < rules_.size(); ++r)
    if (!multiline_of_[r] && !skip(r)) run(r);
}

void RuleEngine::Find(std::string_view text, std::vector<Span>* out) const { FindAll(text, out, false); }

}  // namespace warden::anonymizer
