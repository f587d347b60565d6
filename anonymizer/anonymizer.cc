#include "anonymizer/anonymizer.h"

#include <re2/re2.h>

#include <algorithm>

namespace warden::anonymizer {

std::string TokenPrefix(std::string_view category) {
  if (category == "ip") return "IP";
  if (category == "email") return "EMAIL";
  if (category == "hostname") return "HOST";
  if (category == "username") return "USER";
  if (category == "mac") return "MAC";
  std::string p(category);
  for (char& c : p) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return p;
}

std::string SecretPlaceholder(std::string_view category) {
  if (category == "private_key") return "[PRIVKEY_REDACTED]";
  if (category == "password") return "[PASSWORD_REDACTED]";
  if (category == "api_key") return "[APIKEY_REDACTED]";
  if (category == "connection_string") return "[CONNSTR_REDACTED]";
  if (category == "jwt") return "[JWT_REDACTED]";
  if (category == "auth_header") return "[AUTH_REDACTED]";
  return "[" + TokenPrefix(category) + "_REDACTED]";
}

std::string TokenMap::Tokenize(std::string_view prefix, std::string_view value) {
  std::string key;
  key.reserve(prefix.size() + 1 + value.size());
  key.append(prefix).push_back('\0');
  key.append(value);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = forward_.find(key);
  if (it != forward_.end()) return it->second;
  std::string token = "[" + std::string(prefix) + "_" + std::to_string(++next_[std::string(prefix)]) + "]";
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

size_t TokenMap::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reverse_.size();
}

std::vector<Span> ResolveSpans(std::vector<Span> spans) {
  // Priority order decides who wins an overlap; the survivors are then put back in text order.
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    if (a.kind != b.kind) return a.kind == Kind::kSecret;
    if (a.priority != b.priority) return a.priority > b.priority;
    if (a.length() != b.length()) return a.length() > b.length();
    if (a.begin != b.begin) return a.begin < b.begin;
    return a.category < b.category;
  });
  std::vector<Span> kept;  // sorted by begin, non-overlapping
  for (Span& s : spans) {
    if (s.end <= s.begin) continue;
    auto it = std::lower_bound(kept.begin(), kept.end(), s.begin,
                               [](const Span& k, size_t pos) { return k.end <= pos; });
    if (it != kept.end() && it->begin < s.end) continue;  // overlaps a span that already won
    kept.insert(it, std::move(s));
  }
  return kept;
}

Anonymizer::Anonymizer(std::vector<std::unique_ptr<SpanSource>> sources) : sources_(std::move(sources)) {}

Sanitized Anonymizer::Anonymize(std::string_view text, TokenMap& tokens) const {
  std::vector<Span> found;
  for (const auto& source : sources_) source->Find(text, &found);
  Sanitized out;
  out.spans = ResolveSpans(std::move(found));
  out.text.reserve(text.size());
  size_t pos = 0;
  for (const Span& s : out.spans) {
    out.text.append(text.substr(pos, s.begin - pos));
    if (s.kind == Kind::kSecret)
      out.text.append(SecretPlaceholder(s.category));
    else
      out.text.append(tokens.Tokenize(TokenPrefix(s.category), text.substr(s.begin, s.length())));
    ++out.counts[s.category];
    pos = s.end;
  }
  out.text.append(text.substr(pos));
  return out;
}

std::unique_ptr<Anonymizer> MakeDefaultAnonymizer() {
  std::vector<std::unique_ptr<SpanSource>> sources;
  sources.push_back(MakeRegexRules());
  return std::make_unique<Anonymizer>(std::move(sources));
}

Status Detokenize(std::string* s, const TokenMap& tokens) {
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
