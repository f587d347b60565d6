// Layer 1: Warden's own RE2 rules. Patterns are written here from the formats
// themselves (RFC 5322-ish emails, RFC 4291 IPv6, PEM/OpenSSH armour); public
// rule sets were read for facts only.
//
// Each rule has one capture group: the span to replace (the whole match when
// the pattern has no group). A rule may add a validator that looks at the
// candidate and its neighbours, because RE2 has no look-around.
#include <arpa/inet.h>
#include <re2/re2.h>
#include <re2/set.h>

#include <cstring>
#include <functional>

#include "anonymizer/anonymizer.h"

namespace warden::anonymizer {
namespace {

bool IsWordByte(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Placeholder values that are not secrets: redacting them only hides useful context.
bool IsPlaceholderValue(std::string_view v) {
  if (v.empty()) return true;
  static const char* kPlaceholders[] = {"changeme", "change_me", "password", "secret", "xxx", "xxxx",
                                        "none", "null", "true", "false", "example", "redacted", "your_password",
                                        "<password>", "***", "****", "********"};
  std::string lower(v);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* p : kPlaceholders)
    if (lower == p) return true;
  if (lower.front() == '$' || lower.front() == '<' || lower.front() == '%') return true;  // ${VAR}, <secret>, %s
  if (lower.find_first_not_of('*') == std::string::npos) return true;
  if (lower.find("_redacted]") != std::string::npos) return true;
  return false;
}

bool KeepIPv4(std::string_view ip) {
  unsigned a, b, c, d;
  std::string s(ip);
  if (std::sscanf(s.c_str(), "%u.%u.%u.%u", &a, &b, &c, &d) != 4) return true;
  if (a == 127 || (a == 0 && b == 0 && c == 0 && d == 0)) return true;  // loopback, unspecified
  if (a == 192 && b == 0 && c == 2) return true;                       // TEST-NET-1
  if (a == 198 && b == 51 && c == 100) return true;                    // TEST-NET-2
  if (a == 203 && b == 0 && c == 113) return true;                     // TEST-NET-3
  if (a == 255 || (a == 0 && d == 0)) return true;                     // netmasks, 0.x.y.0 wildcards
  return false;
}

struct Rule {
  const char* name;
  const char* category;
  Kind kind;
  const char* pattern;
  // validate(text, begin, end) may reject a candidate span; may be empty.
  std::function<bool(std::string_view, size_t, size_t)> validate;
  int priority = 0;  // see Span::priority
};

std::vector<Rule> BuildRules() {
  std::vector<Rule> r;
  // Private keys: the armour lines stay, the body goes (also inside a diff, where
  // lines carry a '+', '-' or ' ' prefix). Without an END line
  // (output cut by head/tail) the base64 body up to the first blank line goes.
  r.push_back({"pem-private-key", "private_key", Kind::kSecret,
               R"(-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----\r?\n([\s\S]*?)\r?\n[+\- >]?-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----)",
               {}});
  r.push_back({"pem-private-key-truncated", "private_key", Kind::kSecret,
               R"(-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----\r?\n([A-Za-z0-9+/=][A-Za-z0-9+/=:, \-]*(?:\r?\n[A-Za-z0-9+/=][A-Za-z0-9+/=:, \-]*)*))",
               {}, /*priority=*/-1});  // the whole-key rule wins where both match
  // URL userinfo: scheme://user:PASSWORD@host
  r.push_back({"url-userinfo-password", "password", Kind::kSecret,
               R"([A-Za-z][A-Za-z0-9+.\-]{1,20}://[^\s:/@'"]{1,128}:([^\s@/'"]{1,256})@[A-Za-z0-9\[])",
               [](std::string_view t, size_t b, size_t e) { return !IsPlaceholderValue(t.substr(b, e - b)); }});
  // key = value / key: value / "key": "value" where the key says it is a password.
  r.push_back({"keyvalue-password", "password", Kind::kSecret,
               R"((?i)(?:^|[^A-Za-z0-9])(?:[A-Za-z0-9_.\-]*(?:password|passwd|passphrase|pwd|secret|secret[_-]?key|api[_-]?key|access[_-]?key|auth[_-]?token|access[_-]?token|token)[A-Za-z0-9_\-]*)["']?\s*(?:=|:|=>)\s*["']?([^\s"',;]{1,512}))",
               [](std::string_view t, size_t b, size_t e) { return !IsPlaceholderValue(t.substr(b, e - b)); }});
  r.push_back({"email", "email", Kind::kIdentifier,
               R"([A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,24})",
               [](std::string_view t, size_t b, size_t) { return b == 0 || !IsWordByte(t[b - 1]); }});
  r.push_back({"ipv4", "ip", Kind::kIdentifier,
               R"((?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3})",
               [](std::string_view t, size_t b, size_t e) {
                 // Not part of a longer dotted number (versions like 1.2.3.4.5) or a word.
                 if (b > 0 && (IsWordByte(t[b - 1]) || (t[b - 1] == '.' && b > 1 && std::isdigit(t[b - 2]))))
                   return false;
                 if (e < t.size() && (IsWordByte(t[e]) || (t[e] == '.' && e + 1 < t.size() && std::isdigit(t[e + 1]))))
                   return false;
                 return !KeepIPv4(t.substr(b, e - b));
               }});
  r.push_back({"ipv6", "ip", Kind::kIdentifier,
               R"((?i)(?:[0-9a-f]{0,4}:){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9a-f]{1,4})?)",
               [](std::string_view t, size_t b, size_t e) {
                 if (b > 0 && (IsWordByte(t[b - 1]) || t[b - 1] == ':')) return false;
                 if (e < t.size() && (IsWordByte(t[e]) || t[e] == ':' || t[e] == '.')) return false;
                 std::string s(t.substr(b, e - b));
                 // Addresses carry a digit somewhere; C++ names such as "a::b" or "std::abs" do not.
                 if (s.find_first_of("0123456789") == std::string::npos) return false;
                 unsigned char buf[16];
                 if (inet_pton(AF_INET6, s.c_str(), buf) != 1) return false;
                 int groups = 0;  // at least two non-empty groups: "a::" in prose is not an address
                 for (size_t i = 0, j; i < s.size(); i = j + 1) {
                   j = s.find(':', i);
                   if (j == std::string::npos) j = s.size();
                   groups += j > i;
                 }
                 if (groups < 2) return false;
                 static const unsigned char kZero[16] = {};
                 if (std::memcmp(buf, kZero, 15) == 0 && (buf[15] == 0 || buf[15] == 1)) return false;  // :: and ::1
                 if (buf[0] == 0x20 && buf[1] == 0x01 && buf[2] == 0x0d && buf[3] == 0xb8) return false;  // 2001:db8::/32
                 return true;
               }});
  return r;
}

class RegexRules final : public SpanSource {
 public:
  RegexRules() : rules_(BuildRules()), set_(Options(), RE2::UNANCHORED) {
    for (const Rule& rule : rules_) {
      compiled_.push_back(std::make_unique<RE2>(rule.pattern, Options()));
      if (!compiled_.back()->ok() || set_.Add(rule.pattern, nullptr) < 0) {
        std::fprintf(stderr, "warden: bad built-in rule %s\n", rule.name);
        std::abort();  // a built-in rule that does not compile is a build defect
      }
    }
    if (!set_.Compile()) std::abort();
  }

  void Find(std::string_view text, std::vector<Span>* out) const override {
    std::vector<int> hits;
    re2::StringPiece input(text.data(), text.size());
    if (!set_.Match(input, &hits)) return;
    for (int i : hits) FindRule(i, input, out);
  }

 private:
  static RE2::Options Options() {
    RE2::Options o;
    o.set_log_errors(false);
    o.set_max_mem(64 << 20);
    return o;
  }

  void FindRule(int i, re2::StringPiece input, std::vector<Span>* out) const {
    const RE2& re = *compiled_[i];
    const Rule& rule = rules_[i];
    int groups = re.NumberOfCapturingGroups();
    re2::StringPiece m[2];
    size_t pos = 0;
    while (pos <= input.size() && re.Match(input, pos, input.size(), RE2::UNANCHORED, m, groups + 1)) {
      re2::StringPiece whole = m[0], span = groups > 0 ? m[1] : m[0];
      size_t wend = static_cast<size_t>(whole.data() - input.data()) + whole.size();
      pos = whole.empty() ? wend + 1 : wend;
      if (span.data() == nullptr || span.empty()) continue;
      size_t b = static_cast<size_t>(span.data() - input.data()), e = b + span.size();
      std::string_view text(input.data(), input.size());
      if (rule.validate && !rule.validate(text, b, e)) {
        // A rejected candidate may hide a valid one that starts inside it (e.g. "v1.2.3.4.5").
        if (!whole.empty()) pos = static_cast<size_t>(whole.data() - input.data()) + 1;
        continue;
      }
      out->push_back({b, e, rule.kind, rule.category, rule.name, rule.priority});
    }
  }

  std::vector<Rule> rules_;
  std::vector<std::unique_ptr<RE2>> compiled_;
  RE2::Set set_;
};

}  // namespace

std::unique_ptr<SpanSource> MakeRegexRules() { return std::make_unique<RegexRules>(); }

}  // namespace warden::anonymizer
