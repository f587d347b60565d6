#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "anonymizer/checks.h"
#include "anonymizer/rules.h"

namespace warden::anonymizer {
namespace {

RE2::Options Re2Options(bool case_insensitive = false) {
  RE2::Options o;
  o.set_log_errors(false);
  o.set_max_mem(64 << 20);
  o.set_case_sensitive(!case_insensitive);
  return o;
}

constexpr size_t kBlock = 256;

}  // namespace

bool MultilineWanted(const Rule& r, std::string_view text);

Status ValidatePattern(const std::string& pattern) {
  RE2 re(pattern, Re2Options());
  if (!re.ok()) return InvalidArgument("pattern does not compile: " + re.error());
  if (re.NumberOfCapturingGroups() > 1)
    return InvalidArgument("pattern may have at most one capturing group (the span to replace)");
  return Status::Ok();
}

RuleEngine::RuleEngine(std::vector<Rule> rules, bool use_candidates)
    : rules_(std::move(rules)), use_candidates_(use_candidates) {
  keywords_ = std::make_unique<RE2::Set>(Re2Options(true), RE2::UNANCHORED);
  for (size_t i = 0; i < rules_.size(); ++i) {
    const Rule& r = rules_[i];
    names_.emplace_back(InternName(r.category), InternName(r.name));
    compiled_.push_back(std::make_unique<RE2>(r.pattern, Re2Options()));
    if (!compiled_.back()->ok()) {
      std::fprintf(stderr, "warden: rule %s does not compile: %s\n", r.name.c_str(), compiled_.back()->error().c_str());
      std::abort();
    }
    if (r.multiline) {
      multiline_.push_back(i);
      continue;
    }
    for (const std::string& k : r.keywords) {
      std::string err;
      int idx = keywords_->Add(k, &err);
      if (idx < 0) {
        std::fprintf(stderr, "warden: keyword %s of rule %s: %s\n", k.c_str(), r.name.c_str(), err.c_str());
        std::abort();
      }
      keyword_rules_.resize(static_cast<size_t>(idx) + 1);
      keyword_rules_[static_cast<size_t>(idx)].push_back(i);
    }
  }
  if (!keywords_->Compile()) std::abort();
}

void RuleEngine::RunRule(size_t i, std::string_view text, size_t begin, size_t end, std::vector<Span>* out,
                         bool decoded) const {
  const RE2& re = *compiled_[i];
  const Rule& rule = rules_[i];
  int groups = std::min(1, re.NumberOfCapturingGroups());
  re2::StringPiece input(text.data(), text.size()), m[2];
  const Candidates candidates = use_candidates_ ? rule.candidates : nullptr;
  size_t pos = begin;
  while (pos < end) {
    if (candidates) {
      // Anchored at the places a match can start only: the same leftmost match
      // as the unanchored search, without running the automaton over the bytes between.
      size_t skip = 0;
      size_t s = candidates(text, pos, end, &skip);
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

void RuleEngine::FindGated(std::string_view text, std::vector<Span>* out, bool decoded) const {
  const size_t begin = 0, end = text.size();
  // Pass 1: one keyword-set scan per small block says which rules can match
  // there. Pass 2: each rule runs once over every run of consecutive blocks in
  // which it can match, so a rule costs nothing where its trigger is absent.
  // Scratch kept per thread, one set per depth (the outer text, and base64 it
  // decodes): the vectors keep their capacity from call to call.
  struct Scratch {
    std::vector<std::pair<size_t, size_t>> blocks;
    std::vector<std::vector<size_t>> ranges_of;  // rule -> indexes into blocks, ascending
    std::vector<int> hits;
    std::vector<char> run;
  };
  thread_local Scratch scratch[2];
  Scratch& sc = scratch[decoded ? 1 : 0];
  std::vector<std::pair<size_t, size_t>>& blocks = sc.blocks;
  std::vector<std::vector<size_t>>& ranges_of = sc.ranges_of;
  std::vector<int>& hits = sc.hits;
  std::vector<char>& run = sc.run;
  blocks.clear();
  if (ranges_of.size() < rules_.size()) ranges_of.resize(rules_.size());
  for (size_t r = 0; r < rules_.size(); ++r) ranges_of[r].clear();
  run.assign(rules_.size(), 0);
  for (size_t b = begin; b < end;) {
    size_t e = std::min(end, b + kBlock);
    if (e < end) {  // end blocks at a line end, so single-line rules see whole lines
      size_t nl = text.find('\n', e);
      e = nl == std::string_view::npos || nl >= end ? end : nl + 1;
    }
    hits.clear();
    if (keywords_->Match(re2::StringPiece(text.data() + b, e - b), &hits)) {
      // Each rule the block's triggers enable, once (a rule may have several triggers).
      for (int h : hits)
        for (size_t r : keyword_rules_[static_cast<size_t>(h)])
          if (!run[r]) {
            run[r] = 1;
            ranges_of[r].push_back(blocks.size());
          }
      for (int h : hits)
        for (size_t r : keyword_rules_[static_cast<size_t>(h)]) run[r] = 0;
    }
    blocks.emplace_back(b, e);
    b = e;
  }
  for (size_t r = 0; r < rules_.size(); ++r) {
    if (rules_[r].keywords.empty() && !rules_[r].multiline) {  // no trigger: every block, one run over the whole text
      if (!blocks.empty()) RunRule(r, text, begin, end, out, decoded);
      continue;
    }
    const std::vector<size_t>& idx = ranges_of[r];
    for (size_t i = 0; i < idx.size();) {
      size_t j = i;
      while (j + 1 < idx.size() && idx[j + 1] == idx[j] + 1) ++j;
      RunRule(r, text, blocks[idx[i]].first, blocks[idx[j]].second, out, decoded);
      i = j + 1;
    }
  }
}

// MultilineWanted: a multiline rule's keywords are plain literals, looked up
// once in the whole text (they are rare: "PRIVATE KEY").
bool MultilineWanted(const Rule& r, std::string_view text) {
  if (r.keywords.empty()) return true;
  for (const std::string& k : r.keywords)
    if (text.find(k) != std::string_view::npos) return true;
  return false;
}

void RuleEngine::FindAll(std::string_view text, std::vector<Span>* out, bool decoded) const {
  for (size_t i : multiline_)
    if (MultilineWanted(rules_[i], text)) RunRule(i, text, 0, text.size(), out, decoded);
  FindGated(text, out, decoded);
}

void RuleEngine::Find(std::string_view text, std::vector<Span>* out) const { FindAll(text, out, false); }

}  // namespace warden::anonymizer
