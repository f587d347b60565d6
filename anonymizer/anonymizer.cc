#include "anonymizer/anonymizer.h"

#include <openssl/crypto.h>

#include <re2/re2.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>

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

std::string TokenMap::Tokenize(std::string_view prefix, std::string_view value) {
  std::string key;
  key.reserve(prefix.size() + 1 + value.size());
  key.append(prefix).push_back('\0');
  key.append(value);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = forward_.find(key);
  if (it != forward_.end()) return it->second;
  std::string token;
  if (ip_mode_ == IpMode::kPrefixPreserving && prefix == "IP") {
    // A CIDR's address part is pseudonymized; "/24" stays.
    std::optional<std::string> p = CryptoPan(key_, value);
    if (p && !reverse_.count(*p)) token = *p;
  }
  if (token.empty()) token = "[" + std::string(prefix) + "_" + std::to_string(++next_[std::string(prefix)]) + "]";
  forward_.emplace(std::move(key), token);
  reverse_.emplace(token, std::string(value));
  return token;
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

namespace {
// MergeSecrets turns each group of overlapping secret spans into one span over
// their union, named by its best member (priority, then length). A secret rule
// that wins an overlap must not un-redact what another secret rule found: a
// base64 rule that takes the first 12 characters of a password would otherwise
// leave the rest of it in the clear.
void MergeSecrets(std::vector<Span>* spans) {
  std::vector<uint32_t> secrets;
  for (size_t i = 0; i < spans->size(); ++i)
    if ((*spans)[i].kind == Kind::kSecret && (*spans)[i].end > (*spans)[i].begin) secrets.push_back(static_cast<uint32_t>(i));
  if (secrets.size() < 2) return;
  std::sort(secrets.begin(), secrets.end(), [&](uint32_t x, uint32_t y) { return (*spans)[x].begin < (*spans)[y].begin; });
  std::vector<bool> drop(spans->size(), false);
  std::vector<Span> merged;
  for (size_t i = 0; i < secrets.size();) {
    size_t j = i + 1;
    size_t end = (*spans)[secrets[i]].end;
    uint32_t best = secrets[i];
    for (; j < secrets.size() && (*spans)[secrets[j]].begin < end; ++j) {
      const Span& s = (*spans)[secrets[j]];
      end = std::max(end, s.end);
      const Span& b = (*spans)[best];
      if (s.priority > b.priority || (s.priority == b.priority && s.length() > b.length())) best = secrets[j];
    }
    if (j - i > 1) {
      Span u = (*spans)[best];
      u.begin = (*spans)[secrets[i]].begin;
      u.end = end;
      for (size_t k = i; k < j; ++k) drop[secrets[k]] = true;
      merged.push_back(std::move(u));
    }
    i = j;
  }
  if (merged.empty()) return;
  size_t w = 0;
  for (size_t i = 0; i < spans->size(); ++i) {
    if (drop[i]) continue;
    if (w != i) (*spans)[w] = std::move((*spans)[i]);  // never move a span onto itself
    ++w;
  }
  spans->resize(w);
  for (Span& m : merged) spans->push_back(std::move(m));
}
}  // namespace

std::vector<Span> ResolveSpans(std::vector<Span> spans) {
  MergeSecrets(&spans);
  // Priority order decides who wins an overlap; the survivors are then put back
  // in text order. Indexes are sorted, not the spans (each holds two strings).
  std::vector<uint32_t> order(spans.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<uint32_t>(i);
  std::sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) {
    const Span& a = spans[x];
    const Span& b = spans[y];
    if (a.kind != b.kind) return a.kind == Kind::kSecret;
    if (a.priority != b.priority) return a.priority > b.priority;
    if (a.length() != b.length()) return a.length() > b.length();
    if (a.begin != b.begin) return a.begin < b.begin;
    return a.category < b.category;
  });
  std::map<size_t, size_t> taken;  // begin -> end of the spans kept so far, non-overlapping
  std::vector<uint32_t> kept_index;
  for (uint32_t i : order) {
    const Span& s = spans[i];
    if (s.end <= s.begin) continue;
    auto next = taken.lower_bound(s.begin);  // first kept span starting at or after s.begin
    if (next != taken.end() && next->first < s.end) continue;
    if (next != taken.begin() && std::prev(next)->second > s.begin) continue;
    taken.emplace(s.begin, s.end);
    kept_index.push_back(i);
  }
  // Kept spans do not overlap and are non-empty: their begins are distinct.
  std::sort(kept_index.begin(), kept_index.end(), [&](uint32_t x, uint32_t y) { return spans[x].begin < spans[y].begin; });
  std::vector<Span> kept;
  kept.reserve(kept_index.size());
  for (uint32_t i : kept_index) kept.push_back(std::move(spans[i]));
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
  for (const auto& source : sources_) source->Find(text, &found);
  // An identifier found in one context (a user after "Accepted publickey for")
  // is the same identifier everywhere else in the text ("/home/<user>", "by <user>(uid=").
  std::map<std::string, std::vector<std::string>> learned;
  for (const Span& sp : found) {
    // Users and people are named by context once and then bare; hosts, instances and
    // networks have rules (or the IaC dictionary) that find every occurrence already.
    static const std::set<std::string_view> kPropagate = {"username", "person", "ssid"};
    if (sp.kind != Kind::kIdentifier || sp.length() < 5 || !kPropagate.count(sp.category)) continue;
    std::string v(text.substr(sp.begin, sp.length()));
    if (v.find('\n') == std::string::npos) learned[sp.category].push_back(std::move(v));
  }
  if (!learned.empty()) MakeDictionarySource(learned)->Find(text, &found);
  DropKept(text, &found);
  return found;
}

Sanitized Anonymizer::Rewrite(std::string_view text, std::vector<Span> found, TokenMap& tokens) const {
  Sanitized out;
  out.spans = ResolveSpans(std::move(found));
  out.text.reserve(text.size());
  size_t pos = 0;
  for (const Span& s : out.spans) {
    out.text.append(text.substr(pos, s.begin - pos));
    size_t replaced_at = out.text.size();
    if (s.kind == Kind::kSecret)
      out.text.append(SecretPlaceholder(s.category));
    else
      out.text.append(tokens.Tokenize(TokenPrefix(s.category), text.substr(s.begin, s.length())));
    out.output_ranges.emplace_back(replaced_at, out.text.size());
    ++out.counts[s.category];
    pos = s.end;
  }
  out.text.append(text.substr(pos));
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
