#include "anonymizer/anonymizer.h"

#include <openssl/crypto.h>

#include <re2/re2.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <unordered_set>

#include "anonymizer/crypto_pan.h"
#include "anonymizer/iac.h"
#include "anonymizer/rules.h"
#include "core/clock.h"

namespace warden::anonymizer {

std::string TokenPrefix(std::string_view category) {
  static const std::map<std::string_view, std::string_view> kPrefix = {
      {"ip", "IP"},           {"email", "EMAIL"},     {"hostname", "HOST"}, {"instance", "HOST"},
      {"username", "USER"},   {"mac", "MAC"},         {"person", "PERSON"}, {"phone", "PHONE"},
      {"iban", "IBAN"},       {"card", "CARD"},       {"network", "NET"},   {"project", "PROJECT"},
      {"ssid", "WIFI"}};
  if (auto it = kPrefix.find(category); it != kPrefix.end()) return std::string(it->second);
  std::string p;
  for (char c : category) p.push_back(std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::toupper(c)) : '_');
  return p;
}

std::string SecretPlaceholder(std::string_view category) {
  static const std::map<std::string_view, std::string_view> kPlaceholder = {
      {"private_key", "[PRIVKEY_REDACTED]"},     {"password", "[PASSWORD_REDACTED]"},
      {"api_token", "[APIKEY_REDACTED]"},        {"cloud_credential", "[APIKEY_REDACTED]"},
      {"connection_string", "[CONNSTR_REDACTED]"}, {"jwt", "[JWT_REDACTED]"},
      {"auth_header", "[AUTH_REDACTED]"},         {"password_hash", "[PASSWORD_HASH_REDACTED]"},
      {"session_token", "[TOKEN_REDACTED]"},      {"generic_secret", "[SECRET_REDACTED]"},
      {"encoded_secret", "[ENCODED_SECRET_REDACTED]"}};
  if (auto it = kPlaceholder.find(category); it != kPlaceholder.end()) return std::string(it->second);
  return "[" + TokenPrefix(category) + "_REDACTED]";
}

TokenMap::TokenMap(IpMode ip_mode) : ip_mode_(ip_mode) {
  if (ip_mode_ == IpMode::kPrefixPreserving) key_ = RandomBytes(32);
}

TokenMap::~TokenMap() {
  if (!key_.empty()) OPENSSL_cleanse(key_.data(), key_.size());
}

void TokenMap::AppendToken(std::string_view prefix, std::string_view value, std::string* out) {
  thread_local std::string key;  // reused: no allocation per identifier
  key.assign(prefix).push_back('\0');
  key.append(value);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = forward_.find(key);
  if (it != forward_.end()) {
    out->append(it->second);
    return;
  }
  std::string token;
  if (ip_mode_ == IpMode::kPrefixPreserving && prefix == "IP") {
    // A CIDR's address part is pseudonymized; "/24" stays.
    std::optional<std::string> p = CryptoPan(key_, value);
    if (p && !reverse_.count(*p)) token = *p;
  }
  if (token.empty()) token = "[" + std::string(prefix) + "_" + std::to_string(++next_[std::string(prefix)]) + "]";
  out->append(token);
  forward_.emplace(key, token);
  reverse_.emplace(std::move(token), std::string(value));
}

std::optional<std::string> TokenMap::Resolve(std::string_view token) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = reverse_.find(std::string(token));
  if (it == reverse_.end()) return std::nullopt;
  return it->second;
}

TokenMap::IpMode IpModeOf(const AnonymizerConfig& config) {
  return config.ip_mode == "prefix_preserving" ? TokenMap::IpMode::kPrefixPreserving : TokenMap::IpMode::kNumbered;
}

size_t TokenMap::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reverse_.size();
}

std::string_view InternName(std::string_view name) {
  static std::mutex mu;
  // Never destroyed: views of it may be held until the process ends. Nodes do
  // not move, so a view stays valid as the set grows.
  static auto* names = new std::unordered_set<std::string>();
  std::lock_guard<std::mutex> lock(mu);
  return *names->emplace(name).first;
}

namespace {
// Wins: `a` is kept over `b` when they overlap. Secrets beat identifiers, then
// priority, then length, then the earlier span; names break the last ties so
// the outcome never depends on the order the rules reported in.
bool Wins(const Span& a, const Span& b) {
  if (a.kind != b.kind) return a.kind == Kind::kSecret;
  if (a.priority != b.priority) return a.priority > b.priority;
  if (a.length() != b.length()) return a.length() > b.length();
  if (a.begin != b.begin) return a.begin < b.begin;
  if (a.category != b.category) return a.category < b.category;
  return a.rule < b.rule;
}

// MergeSecrets turns each group of overlapping secret spans into one span over
// their union, named by its best member (priority, then length). A secret rule
// that wins an overlap must not un-redact what another secret rule found: a
// base64 rule that takes the first 12 characters of a password would otherwise
// leave the rest of it in the clear. `c` is in begin order; so is the result.
void MergeSecrets(std::vector<Span>* c) {
  std::vector<Span> out;
  out.reserve(c->size());
  const size_t n = c->size();
  std::vector<bool> used(n, false);
  for (size_t i = 0; i < n; ++i) {
    if (used[i]) continue;
    Span s = (*c)[i];
    if (s.kind == Kind::kSecret) {
      size_t end = s.end;
      Span best = s;
      for (size_t j = i + 1; j < n && (*c)[j].begin < end; ++j) {
        const Span& o = (*c)[j];
        if (o.kind != Kind::kSecret) continue;
        used[j] = true;
        end = std::max(end, o.end);
        if (o.priority > best.priority || (o.priority == best.priority && o.length() > best.length())) best = o;
      }
      best.begin = s.begin;
      best.end = end;
      s = best;
    }
    out.push_back(s);  // a merged span starts where its first member does: still in begin order
  }
  *c = std::move(out);
}

// ResolveCluster keeps the winners of spans that overlap one another
// (transitively) and appends them to `kept` in begin order. `c` is in begin order.
void ResolveCluster(std::vector<Span>* c, std::vector<Span>* kept) {
  MergeSecrets(c);
  std::sort(c->begin(), c->end(), Wins);
  std::vector<std::pair<size_t, size_t>> taken;  // kept [begin, end), sorted, non-overlapping
  const size_t first = kept->size();
  for (const Span& s : *c) {
    auto next = std::lower_bound(taken.begin(), taken.end(), std::make_pair(s.begin, size_t{0}));
    if (next != taken.end() && next->first < s.end) continue;
    if (next != taken.begin() && std::prev(next)->second > s.begin) continue;
    taken.insert(next, {s.begin, s.end});
    kept->push_back(s);
  }
  // Kept spans do not overlap and are non-empty: their begins are distinct.
  std::sort(kept->begin() + static_cast<std::ptrdiff_t>(first), kept->end(),
            [](const Span& a, const Span& b) { return a.begin < b.begin; });
}
}  // namespace

// Spans that overlap nothing (most of them) are kept as they are; each group
// of spans that overlap one another is resolved on its own, which gives what
// resolving all spans at once would give: a kept span only ever excludes spans
// that overlap it, and those are in its group.
std::vector<Span> ResolveSpans(std::vector<Span> spans) {
  spans.erase(std::remove_if(spans.begin(), spans.end(), [](const Span& s) { return s.end <= s.begin; }), spans.end());
  const size_t n = spans.size();
  // (begin, index): a total order, so the result is deterministic. Each source
  // (each rule) reports its spans in text order, so `spans` is a few ascending
  // runs: they are merged pairwise, not sorted from scratch.
  std::vector<std::pair<size_t, uint32_t>> order(n), other(n);
  std::vector<size_t> runs = {0};
  for (size_t i = 0; i < n; ++i) {
    order[i] = {spans[i].begin, static_cast<uint32_t>(i)};
    if (i > 0 && spans[i].begin < spans[i - 1].begin) runs.push_back(i);
  }
  runs.push_back(n);
  while (runs.size() > 2) {
    std::vector<size_t> merged = {0};
    for (size_t k = 0; k + 1 < runs.size(); k += 2) {
      size_t b = runs[k], m = runs[k + 1], e = k + 2 < runs.size() ? runs[k + 2] : m;
      std::merge(order.begin() + static_cast<std::ptrdiff_t>(b), order.begin() + static_cast<std::ptrdiff_t>(m),
                 order.begin() + static_cast<std::ptrdiff_t>(m), order.begin() + static_cast<std::ptrdiff_t>(e),
                 other.begin() + static_cast<std::ptrdiff_t>(b));
      merged.push_back(e);
    }
    order.swap(other);
    runs = std::move(merged);
  }
  std::vector<Span> kept;
  kept.reserve(n);
  std::vector<Span> cluster;
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    size_t end = spans[order[i].second].end;
    for (; j < n && spans[order[j].second].begin < end; ++j) end = std::max(end, spans[order[j].second].end);
    if (j == i + 1) {
      kept.push_back(spans[order[i].second]);
    } else {
      cluster.clear();
      for (size_t k = i; k < j; ++k) cluster.push_back(spans[order[k].second]);
      ResolveCluster(&cluster, &kept);
    }
    i = j;
  }
  return kept;
}

Anonymizer::Anonymizer(std::vector<std::unique_ptr<SpanSource>> sources, std::vector<std::string> keep)
    : sources_(std::move(sources)), keep_(std::move(keep)) {
  std::sort(keep_.begin(), keep_.end());
}

void StageReport::Merge(const StageReport& o) {
  if (!o.ran) return;
  ran = true;
  if (mode.empty() || o.mode == "regex_only") mode = o.mode;
  if (error.empty()) error = o.error;
  chunks += o.chunks;
  cache_hits += o.cache_hits;
  model_calls += o.model_calls;
  spans += o.spans;
  for (const auto& [k, v] : o.dropped) dropped[k] += v;
  model_ms += o.model_ms;
  tokens_in += o.tokens_in;
  tokens_out += o.tokens_out;
  stage_us += o.stage_us;
  if (model.empty()) model = o.model;
  if (breaker.empty()) breaker = o.breaker;
}

Sanitized Anonymizer::Anonymize(std::string_view text, TokenMap& tokens) const {
  return Rewrite(text, FindLayer1(text), tokens);
}

Result<Sanitized> Anonymizer::AnonymizeChecked(std::string_view text, TokenMap& tokens, StageReport* report) const {
  std::vector<Span> found = FindLayer1(text);
  if (!stage_) return Rewrite(text, std::move(found), tokens);
  std::vector<Span> layer1 = ResolveSpans(std::move(found));
  std::vector<Span> extra;
  StageReport local;
  Status s = stage_->Find(text, layer1, &extra, report ? report : &local);
  if (!s.ok()) return s;
  DropKept(text, &extra);
  layer1.insert(layer1.end(), std::make_move_iterator(extra.begin()), std::make_move_iterator(extra.end()));
  return Rewrite(text, std::move(layer1), tokens);
}

void Anonymizer::DropKept(std::string_view text, std::vector<Span>* found) const {
  if (keep_.empty()) return;
  // A kept term is never replaced, nor is any part of it.
  std::vector<std::pair<size_t, size_t>> kept;
  for (const std::string& k : keep_)
    for (size_t p = text.find(k); p != std::string_view::npos; p = text.find(k, p + 1)) kept.emplace_back(p, p + k.size());
  found->erase(std::remove_if(found->begin(), found->end(),
                              [&](const Span& sp) {
                                for (const auto& [b, e] : kept)
                                  if (sp.begin < e && b < sp.end) return true;
                                return false;
                              }),
               found->end());
}

std::vector<Span> Anonymizer::FindLayer1(std::string_view text) const {
  std::vector<Span> found;
  // Findings are dense in tool output (one in ~110 bytes on the corpus): room for
  // one in 64 means no copy as the vector grows, and pages never written cost nothing.
  found.reserve(text.size() / 64 + 16);
  for (const auto& source : sources_) source->Find(text, &found);
  // An identifier found in one context (a user after "Accepted publickey for")
  // is the same identifier everywhere else in the text ("/home/<user>", "by <user>(uid=").
  // Users and people are named by context once and then bare; hosts, instances and
  // networks have rules (or the IaC dictionary) that find every occurrence already.
  // Each name once (a user is often named by context hundreds of times).
  std::set<std::pair<std::string_view, std::string_view>> names;  // (category, value)
  for (const Span& sp : found) {
    if (sp.kind != Kind::kIdentifier || sp.length() < 5) continue;
    if (sp.category != "username" && sp.category != "person" && sp.category != "ssid") continue;
    std::string_view v = text.substr(sp.begin, sp.length());
    if (v.find('\n') == std::string_view::npos) names.emplace(sp.category, v);
  }
  std::map<std::string, std::vector<std::string>> learned;
  for (const auto& [category, v] : names) learned[std::string(category)].emplace_back(v);
  if (!learned.empty()) MakeDictionarySource(learned)->Find(text, &found);
  DropKept(text, &found);
  return found;
}

Sanitized Anonymizer::Rewrite(std::string_view text, std::vector<Span> found, TokenMap& tokens) const {
  Sanitized out;
  out.spans = ResolveSpans(std::move(found));
  out.text.reserve(text.size());
  out.output_ranges.reserve(out.spans.size());
  // Per (category, kind): its placeholder or token prefix, and how many spans
  // it replaced. A handful of categories per text: a short list beats a map.
  struct Name {
    std::string_view category;
    Kind kind;
    std::string replacement;
    int count = 0;
  };
  std::vector<Name> names;
  auto name_of = [&](const Span& s) -> Name& {
    for (Name& n : names)
      if (n.kind == s.kind && n.category == s.category) return n;
    names.push_back({s.category, s.kind, s.kind == Kind::kSecret ? SecretPlaceholder(s.category) : TokenPrefix(s.category)});
    return names.back();
  };
  size_t pos = 0;
  for (const Span& s : out.spans) {
    out.text.append(text.substr(pos, s.begin - pos));
    size_t replaced_at = out.text.size();
    Name& n = name_of(s);
    if (s.kind == Kind::kSecret)
      out.text.append(n.replacement);
    else
      tokens.AppendToken(n.replacement, text.substr(s.begin, s.length()), &out.text);
    out.output_ranges.emplace_back(replaced_at, out.text.size());
    ++n.count;
    pos = s.end;
  }
  out.text.append(text.substr(pos));
  for (const Name& n : names) out.counts[std::string(n.category)] += n.count;
  return out;
}

Result<std::unique_ptr<Anonymizer>> MakeAnonymizer(const AnonymizerConfig& options) {
  std::vector<Rule> rules = BuiltinRules(options.zones);
  for (const std::string& name : options.disabled_rules) {
    auto it = std::find_if(rules.begin(), rules.end(), [&](const Rule& r) { return r.name == name; });
    if (it == rules.end()) return InvalidArgument("disabled_rules: no built-in rule is named \"" + name + "\"");
    rules.erase(it);
  }
  for (const AnonymizerPattern& p : options.patterns) {
    if (Status s = ValidatePattern(p.pattern); !s.ok()) return InvalidArgument("pattern " + p.name + ": " + s.message());
    Rule r;
    r.name = "config:" + p.name;
    r.category = p.category;
    r.kind = p.secret ? Kind::kSecret : Kind::kIdentifier;
    r.pattern = p.pattern;
    r.priority = 1;  // the operator knows their formats
    rules.push_back(std::move(r));
  }
  std::map<std::string, std::vector<std::string>> terms = options.dictionary;
  if (!options.infra_yml.empty()) {
    auto names = InfraNames(options.infra_yml);
    if (!names.ok()) return names.status();
    for (auto& [category, list] : names.value()) terms[category].insert(terms[category].end(), list.begin(), list.end());
  }
  std::vector<std::unique_ptr<SpanSource>> sources;
  sources.push_back(std::make_unique<RuleEngine>(std::move(rules)));
  if (!terms.empty()) sources.push_back(MakeDictionarySource(terms));
  return std::make_unique<Anonymizer>(std::move(sources), options.keep);
}

size_t OutputOffset(const Sanitized& s, size_t input_offset) {
  size_t in_pos = 0, out_pos = 0;  // the last point where input and output are known to align
  for (size_t i = 0; i < s.spans.size(); ++i) {
    if (s.spans[i].begin >= input_offset) break;
    if (s.spans[i].end > input_offset) return s.output_ranges[i].first;
    in_pos = s.spans[i].end;
    out_pos = s.output_ranges[i].second;
  }
  return out_pos + (input_offset - in_pos);
}

std::unique_ptr<Anonymizer> MakeDefaultAnonymizer() { return std::move(MakeAnonymizer(AnonymizerConfig{}).value()); }

Status Detokenize(std::string* s, const TokenMap& tokens) {
  if (tokens.ip_mode() == TokenMap::IpMode::kPrefixPreserving) {
    // Pseudonymous addresses this session issued resolve to the real ones; other
    // addresses are not tokens and stay as typed.
    static const RE2 kAddr(R"(([0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}))");
    std::string out;
    re2::StringPiece in(*s), m;
    size_t pos = 0;
    while (kAddr.Match(in, pos, in.size(), RE2::UNANCHORED, &m, 1)) {
      size_t b = static_cast<size_t>(m.data() - in.data());
      out.append(*s, pos, b - pos);
      std::optional<std::string> real = tokens.Resolve(std::string(m.data(), m.size()));
      out.append(real ? *real : std::string(m.data(), m.size()));
      pos = b + std::max<size_t>(m.size(), 1);
      if (m.empty()) out.push_back((*s)[b]);
    }
    out.append(*s, std::min(pos, s->size()), std::string::npos);
    *s = std::move(out);
  }
  static const RE2 kToken(R"(\[([A-Z][A-Z0-9]*)_([0-9]+)\])");
  std::string out;
  re2::StringPiece input(*s), match;
  size_t pos = 0;
  while (kToken.Match(input, pos, input.size(), RE2::UNANCHORED, &match, 1)) {
    size_t begin = static_cast<size_t>(match.data() - input.data());
    std::string token(match.data(), match.size());
    std::optional<std::string> value = tokens.Resolve(token);
    if (!value)
      return NotFound("token " + token + " was not issued in this session; use only tokens that appeared in "
                      "earlier tool output");
    out.append(*s, pos, begin - pos);
    out.append(*value);
    pos = begin + match.size();
  }
  if (pos == 0) return Status::Ok();
  out.append(*s, pos, std::string::npos);
  *s = std::move(out);
  return Status::Ok();
}

}  // namespace warden::anonymizer
