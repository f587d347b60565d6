// Layer 1: Warden's own rules. Patterns are written here from the formats
// themselves (vendor token prefixes and lengths, RFC 4291 IPv6, ISO 13616
// IBAN, PEM armour, crypt(3) hash ids); public rule sets (gitleaks, LLM
// Sentinel) were read for facts only: which vendors, which prefixes.
//
// Speed rule: every pattern starts with something distinctive (a literal, a
// trigger, a digit-dot) so RE2 does not have to try every position; context
// before a candidate (a key name, a boundary) is looked at by a check instead.
#include <arpa/inet.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <cstring>
#include <set>
#include <unordered_set>

#include "anonymizer/checks.h"
#include "anonymizer/rules.h"

namespace warden::anonymizer {
namespace {

bool IsTokenByte(char c) { return byte_class::Is(c, byte_class::kToken); }
bool IsHostByte(char c) { return byte_class::Is(c, byte_class::kHost); }

// ---------------------------------------------------------------- checks

// ExtendToken grows a vendor-token match to the whole token: a finding is a
// whole secret, never a prefix of one.
bool ExtendToken(std::string_view t, size_t* b, size_t* e) {
  if (*b > 0 && IsWordByte(t[*b - 1])) return false;  // inside a longer word
  while (*e < t.size() && IsTokenByte(t[*e])) ++*e;
  // "sk_test_xxxxxxxx...": documentation placeholders have the prefix and no randomness.
  std::string_view v = t.substr(*b, *e - *b);
  return !(v.find("xxxxxx") != std::string_view::npos || v.find("XXXXXX") != std::string_view::npos ||
           v.find("000000000") != std::string_view::npos || ShannonEntropy(v) < 2.5);
}

// Components of a key name: "DB_PASSWORD" -> db, password; "PrivateKey" -> private, key.
// The parts are views into `lower`, the key lower-cased (no allocation per part:
// this runs for every key = value candidate).
std::vector<std::string_view>& KeyComponents(std::string_view key, std::string_view lower,
                                              std::vector<std::string_view>& parts) {
  // ASCII classes (what std::isalnum and friends give in the C locale the process runs in).
  auto upper = [](char c) { return c >= 'A' && c <= 'Z'; };
  auto lower_case = [](char c) { return c >= 'a' && c <= 'z'; };
  parts.clear();
  size_t cur = 0, cur_len = 0;
  for (size_t i = 0; i < key.size(); ++i) {
    char c = key[i];
    bool sep = !byte_class::Is(c, byte_class::kAlnum);
    bool camel = i > 0 && upper(c) && lower_case(key[i - 1]);
    if ((sep || camel) && cur_len) {
      parts.push_back(lower.substr(cur, cur_len));
      cur_len = 0;
    }
    if (!sep) {
      if (!cur_len) cur = i;
      ++cur_len;
    }
  }
  if (cur_len) parts.push_back(lower.substr(cur, cur_len));
  return parts;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// SecretKeyCategory says what a key name holds, or "" when it names no secret.
// It runs for every key = value candidate: the key is lower-cased on the
// stack and the word lists are hash sets of views.
std::string_view SecretKeyCategory(std::string_view key) {
  const LowerView lowered(key);
  const std::string_view lower = lowered.view();
  thread_local std::vector<std::string_view> parts;
  const std::vector<std::string_view>& c = KeyComponents(key, lower, parts);
  if (c.empty()) return "";
  static const std::unordered_set<std::string_view> kDeny = {
      "uri", "url", "file", "path", "dir", "ttl", "length", "len", "size", "seconds", "secs", "timeout", "type",
      "name", "user", "username", "mode", "format", "expires", "expiry", "max", "min", "count", "enabled", "helper",
      "method", "store", "policy", "lifetime", "hash", "header", "field", "prefix", "endpoint", "host", "port",
      "ref", "env", "var", "required", "version", "duration", "age", "cache", "location", "command", "cmd",
      "algorithm", "algo", "provider", "issuer", "audience", "scope", "scopes", "level", "limit", "rotation",
      "days", "hours", "minutes", "interval", "retries", "enable", "disable", "check", "strength", "reset",
      "flag", "flags", "mask", "manager", "backend", "source", "sources", "output", "input"};
  std::string_view last = c.back();
  if (kDeny.count(last)) return "";
  if (last == "id" && !(c.size() >= 2 && c[c.size() - 2] == "key")) return "";
  static const std::unordered_set<std::string_view> kKeyQualifiers = {
      "api", "access", "secret", "private", "preshared", "account", "auth", "app", "nonce", "signing",
      "encryption", "master", "client", "license", "in", "service", "webhook", "restricted", "shared", "hmac",
      "crypt", "jwt", "session", "secure", "storage", "subscription", "consumer", "deploy", "admin", "rsa", "ssh"};
  std::string_view category;
  for (size_t i = 0; i < c.size(); ++i) {
    std::string_view p = c[i];
    if (EndsWith(p, "password") || EndsWith(p, "passwd") || EndsWith(p, "pass") || p == "pwd" ||
        EndsWith(p, "passphrase") || p == "masterauth")
      return "password";
    if (p == "private" && i + 1 < c.size() && c[i + 1] == "key") return "private_key";
    if (p == "preshared" && i + 1 < c.size() && c[i + 1] == "key") return "private_key";
    if (EndsWith(p, "token") || p == "session" || p == "sessionid" || p == "sessid" || p == "sid" ||
        p == "cookie")
      category = category.empty() ? "session_token" : category;
    if (EndsWith(p, "apikey") || (p == "key" && i > 0 && c[i - 1] == "api")) category = "api_token";
    if (EndsWith(p, "secret") || p == "salt" || p == "sig" || p == "signature" || p == "credential" ||
        p == "credentials" || (p == "key" && i > 0 && kKeyQualifiers.count(c[i - 1])) ||
        EndsWith(p, "accountkey") || EndsWith(p, "secretkey"))
      if (category.empty()) category = "generic_secret";
  }
  return category;
}

// QuotedOrBareValue reads the value that starts at `pos`: a quoted string up
// to its closing quote on the same line, or a bare run up to a terminator.
bool ReadValue(std::string_view t, size_t pos, bool query, size_t* b, size_t* e) {
  while (pos < t.size() && (t[pos] == ' ' || t[pos] == '\t')) ++pos;
  if (pos >= t.size()) return false;
  char q = t[pos];
  if (q == '"' || q == '\'' || q == '`') {
    size_t i = pos + 1;
    while (i < t.size() && t[i] != q && t[i] != '\n') i += (t[i] == '\\' && i + 1 < t.size()) ? 2 : 1;
    if (i < t.size() && t[i] == q) {
      *b = pos + 1;
      *e = i;
      return *e > *b;
    }
    ++pos;  // no closing quote on the line: read it as a bare value after the quote
  }
  size_t i = pos;
  while (i < t.size()) {
    char c = t[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == '\'' || c == '`' || c == ',' ||
        c == ';' || (query && c == '&'))
      break;
    ++i;
  }
  *b = pos;
  *e = i;
  return *e > *b;
}

// AcceptValue: a value worth redacting for a key of `category`.
bool AcceptValue(std::string_view v, std::string_view category) {
  if (v.find("://") != std::string_view::npos) return false;  // URLs: the userinfo rules decide
  // Entropy is the costly part: computed once, and only when a decision needs it.
  double h = -1;
  auto entropy = [&] { return h < 0 ? h = ShannonEntropy(v) : h; };
  // Long random values are secrets whatever characters they start with (WordPress salts).
  if (IsPlaceholderValue(v) && !(v.size() >= 16 && v.find(' ') == std::string_view::npos && entropy() >= 4.0))
    return false;
  if (category == "password") return v.size() >= 4;
  if (category == "session_token" || category == "api_token")
    return v.size() >= 8 && (CharClasses(v) >= 2 || entropy() >= 3.0);
  // Generic secrets, salts and keys: long and random-looking.
  return v.size() >= 12 && (CharClasses(v) >= 3 || entropy() >= 3.0);
}

bool PemBody(std::string_view t, size_t* b, size_t* e);

// ArmouredKeyBody: a value that is an armoured private key ("private_key":
// "-----BEGIN PRIVATE KEY-----\n...") is redacted as the PEM rule redacts it,
// the body without its BEGIN and END lines (the two spans would otherwise be
// merged over the whole value, armour and all).
bool ArmouredKeyBody(std::string_view t, size_t* vb, size_t* ve) {
  std::string_view v = t.substr(*vb, *ve - *vb);
  if (v.rfind("-----BEGIN ", 0) != 0) return false;
  size_t close = v.find("-----", 11);
  if (close == std::string_view::npos || v.substr(0, close).find("PRIVATE KEY") == std::string_view::npos) return false;
  size_t b = *vb, e = *vb + close + 5;
  if (!PemBody(t, &b, &e) || e > *ve) return false;
  *vb = b;
  *ve = e;
  return true;
}

// KeyValue: the match is the separator after a secret-like key ("= ", "': '",
// "', '"). The key is read backwards, the value forwards.
bool KeyValue(std::string_view t, size_t* b, size_t* e) {
  {
    size_t ks = *b;
    while (ks > 0 && (IsWordByte(t[ks - 1]) || t[ks - 1] == '-' || t[ks - 1] == '.')) --ks;
    std::string_view key = t.substr(ks, *b - ks);
    std::string_view category = SecretKeyCategory(key);
    if (category.empty()) return false;
    std::string_view sep = t.substr(*b, *e - *b);
    bool quoted_key = !sep.empty() && (sep[0] == '"' || sep[0] == '\'');
    if (sep.find(',') != std::string_view::npos && !quoted_key) return false;  // "password, name" in SQL
    bool query = ks > 0 && (t[ks - 1] == '?' || t[ks - 1] == '&');
    size_t vb, ve;
    if (!ReadValue(t, *e, query, &vb, &ve)) return false;
    if (!AcceptValue(t.substr(vb, ve - vb), category)) return false;
    ArmouredKeyBody(t, &vb, &ve);
    *b = vb;
    *e = ve;
    return true;
  }
}

bool NotPlaceholder(std::string_view t, size_t* b, size_t* e) { return !IsPlaceholderValue(t.substr(*b, *e - *b)); }

// Value after a command-line flag, quotes stripped.
bool StripQuotes(std::string_view t, size_t* b, size_t* e) {
  if (*e - *b >= 2 && (t[*b] == '\'' || t[*b] == '"') && t[*e - 1] == t[*b]) {
    ++*b;
    --*e;
  }
  return !IsPlaceholderValue(t.substr(*b, *e - *b));
}

std::string_view LineOf(std::string_view t, size_t pos) {
  size_t s = t.rfind('\n', pos);
  s = s == std::string_view::npos ? 0 : s + 1;
  size_t e = t.find('\n', pos);
  return t.substr(s, (e == std::string_view::npos ? t.size() : e) - s);
}

// PemBody turns a BEGIN armour match into the span of the key body: up to the
// newline before "-----END" (a diff may prefix that line with '+', '-', ' '),
// or, for a key cut before its END line, over the base64 lines that follow.
bool PemBody(std::string_view t, size_t* b, size_t* e) {
  size_t pos = *e;
  auto newline_at = [&](size_t p) -> size_t {  // length of a newline at p: "\r\n", "\n" or the two chars "\\n"
    if (t.compare(p, 2, "\r\n") == 0) return 2;
    if (p < t.size() && t[p] == '\n') return 1;
    if (t.compare(p, 2, "\\n") == 0) return 2;
    return 0;
  };
  size_t nl = newline_at(pos);
  if (nl == 0) return false;
  size_t body = pos + nl;
  size_t end = t.find("-----END ", body);
  // An END line that belongs to this key: no other BEGIN before it (looked for
  // up to the END only: the next key may be megabytes on).
  if (end != std::string_view::npos && t.substr(body, end - body).find("-----BEGIN ") == std::string_view::npos) {
    size_t stop = end;
    if (stop > body && (t[stop - 1] == '+' || t[stop - 1] == '-' || t[stop - 1] == ' ' || t[stop - 1] == '>')) --stop;
    if (stop >= body + 2 && t.compare(stop - 2, 2, "\\n") == 0) stop -= 2;
    else if (stop > body && t[stop - 1] == '\n') stop -= (stop >= body + 2 && t[stop - 2] == '\r') ? 2 : 1;
    if (stop <= body) return false;
    *b = body;
    *e = stop;
    return true;
  }
  // No END line: the base64 (and header) lines that follow, up to a blank or other line.
  size_t p = body, last = body;
  while (p < t.size()) {
    size_t line_end = t.find('\n', p);
    if (line_end == std::string_view::npos) line_end = t.size();
    std::string_view line = t.substr(p, line_end - p);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    bool keyish = !line.empty() && line.find("-----") == std::string_view::npos &&
                  line.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=:,- ") ==
                      std::string_view::npos;
    if (!keyish) break;
    last = p + line.size();
    p = line_end + 1;
  }
  if (last <= body) return false;
  *b = body;
  *e = last;
  return true;
}

bool KeepIPv4(std::string_view ip) {
  // The rule's pattern gives four dotted decimal octets; anything else is kept.
  unsigned octet[4] = {};
  size_t n = 0, digits = 0;
  for (char ch : ip) {
    if (ch == '.') {
      if (digits == 0 || ++n == 4) return true;
      digits = 0;
    } else if (ch >= '0' && ch <= '9' && digits < 3) {
      octet[n] = octet[n] * 10 + static_cast<unsigned>(ch - '0');
      ++digits;
    } else {
      return true;
    }
  }
  if (n != 3 || digits == 0) return true;
  unsigned a = octet[0], b = octet[1], c = octet[2], d = octet[3];
  if (a == 127 || (a == 0 && b == 0 && c == 0 && d == 0)) return true;  // loopback, unspecified
  if (a == 192 && b == 0 && c == 2) return true;                       // TEST-NET-1
  if (a == 198 && b == 51 && c == 100) return true;                    // TEST-NET-2
  if (a == 203 && b == 0 && c == 113) return true;                     // TEST-NET-3
  if (a == 255 || (a == 0 && d == 0)) return true;                     // netmasks, 0.x.y.0 wildcards
  return false;
}

bool IPv4Check(std::string_view t, size_t* b, size_t* e) {
  if (*b > 0 && (IsWordByte(t[*b - 1]) || (t[*b - 1] == '.' && *b > 1 && std::isdigit(static_cast<unsigned char>(t[*b - 2])))))
    return false;
  // "Chrome/125.0.0.0": a version after a product name, not an address.
  if (*b > 1 && t[*b - 1] == '/' && std::isalpha(static_cast<unsigned char>(t[*b - 2]))) return false;
  if (*e < t.size() && (IsWordByte(t[*e]) || (t[*e] == '.' && *e + 1 < t.size() && std::isdigit(static_cast<unsigned char>(t[*e + 1])))))
    return false;
  return !KeepIPv4(t.substr(*b, *e - *b));
}

bool IPv6Check(std::string_view t, size_t* b, size_t* e) {
  if (*b > 0 && (IsWordByte(t[*b - 1]) || t[*b - 1] == ':')) return false;
  if (*e < t.size() && (IsWordByte(t[*e]) || t[*e] == ':' || t[*e] == '.')) return false;
  std::string s(t.substr(*b, *e - *b));
  if (s.find_first_of("0123456789") == std::string::npos) return false;  // "a::b", "std::abs"
  unsigned char buf[16];
  if (inet_pton(AF_INET6, s.c_str(), buf) != 1) return false;
  int groups = 0;
  for (size_t i = 0, j; i < s.size(); i = j + 1) {
    j = s.find(':', i);
    if (j == std::string::npos) j = s.size();
    groups += j > i;
  }
  if (groups < 2) return false;
  static const unsigned char kZero[16] = {};
  if (std::memcmp(buf, kZero, 15) == 0 && (buf[15] == 0 || buf[15] == 1)) return false;  // :: and ::1
  if (buf[0] == 0x20 && buf[1] == 0x01 && buf[2] == 0x0d && buf[3] == 0xb8) return false;  // 2001:db8::/32
  if (buf[0] == 0xff) return false;  // multicast (ff02::1 all-nodes)
  return true;
}

bool NotAfterWord(std::string_view t, size_t* b, size_t*) { return *b == 0 || !IsHostByte(t[*b - 1]); }

bool HostCheck(std::string_view t, size_t* b, size_t* e) {
  if (*b > 0 && (IsHostByte(t[*b - 1]) && t[*b - 1] != '.')) return false;
  if (*e < t.size() && (IsWordByte(t[*e]) || t[*e] == '-')) return false;
  return true;
}

const std::set<std::string>& SystemAccounts() {
  static const std::set<std::string> k = {
      "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
      "www-data", "backup", "list", "irc", "gnats", "nobody", "systemd-network", "systemd-resolve",
      "systemd-timesync", "messagebus", "sshd", "postgres", "mysql", "redis", "admin", "administrator",
      "ubuntu", "debian", "git", "oracle", "test", "user", "guest", "deploy", "app", "nginx", "apache",
      "docker", "oauth2", "x-access-token", "x-token-auth", "token", "api", "default", "ftp", "_apt",
      "elastic", "ec2-user", "centos", "fedora", "pi", "vagrant", "ansible", "jenkins", "gitlab-runner"};
  return k;
}

bool UserCheck(std::string_view t, size_t* b, size_t* e) {
  return !SystemAccounts().count(Lower(t.substr(*b, *e - *b))) && (*e - *b) >= 2;
}

const std::set<std::string>& PublicHosts() {
  static const std::set<std::string> k = {"github.com", "gitlab.com", "bitbucket.org", "ghcr.io", "docker.io",
                                          "registry.npmjs.org", "pypi.org", "quay.io", "gcr.io",
                                          "registry-1.docker.io", "index.docker.io"};
  return k;
}

bool UrlHostCheck(std::string_view t, size_t* b, size_t* e) {
  std::string h = Lower(t.substr(*b, *e - *b));
  if (PublicHosts().count(h) || h == "localhost") return false;
  if (h.find_first_not_of("0123456789.") == std::string::npos) return false;  // an IPv4: the IP rule's
  return h.find('.') != std::string::npos;
}

bool PhoneCheck(std::string_view t, size_t* b, size_t* e) {
  if (*b > 0 && (IsWordByte(t[*b - 1]) || t[*b - 1] == '+' || t[*b - 1] == '.' || t[*b - 1] == '/' || t[*b - 1] == ':'))
    return false;
  while (*e > *b && (t[*e - 1] == ' ' || t[*e - 1] == '-' || t[*e - 1] == '.')) --*e;
  if (*e < t.size() && (IsWordByte(t[*e]) || t[*e] == '.' || t[*e] == ':')) return false;
  int digits = 0;
  for (size_t i = *b; i < *e; ++i) digits += std::isdigit(static_cast<unsigned char>(t[i])) != 0;
  bool intl = t[*b] == '+';
  bool separated = t.substr(*b, *e - *b).find_first_of(" .-()") != std::string_view::npos;
  return intl ? (digits >= 9 && digits <= 15) : (digits == 10 && separated);
}

bool IbanCheck(std::string_view t, size_t* b, size_t* e) {
  if (*b > 0 && IsWordByte(t[*b - 1])) return false;
  if (*e < t.size() && IsWordByte(t[*e])) return false;
  return IbanValid(t.substr(*b, *e - *b));
}

bool CardCheck(std::string_view t, size_t* b, size_t* e) {
  if (*b > 0 && (IsWordByte(t[*b - 1]) || t[*b - 1] == '-' || t[*b - 1] == '.')) return false;
  if (*e < t.size() && (IsWordByte(t[*e]) || t[*e] == '-' || t[*e] == '.')) return false;
  std::string_view v = t.substr(*b, *e - *b);
  size_t digits = 0;
  for (char c : v) digits += c >= '0' && c <= '9';
  if (digits < 13 || digits > 19 || v[0] < '2' || v[0] > '6') return false;
  return LuhnValid(v);
}

bool MacCheck(std::string_view t, size_t* b, size_t* e) {
  if (*b > 0 && (IsWordByte(t[*b - 1]) || t[*b - 1] == ':' || t[*b - 1] == '-' || t[*b - 1] == '.')) return false;
  if (*e < t.size() && (IsWordByte(t[*e]) || t[*e] == ':' || t[*e] == '-')) return false;
  std::string v = Lower(t.substr(*b, *e - *b));
  return v != "ff:ff:ff:ff:ff:ff" && v != "00:00:00:00:00:00" && v != "ff-ff-ff-ff-ff-ff" &&
         v != "00-00-00-00-00-00";
}

bool HostsFileName(std::string_view t, size_t* b, size_t* e) {
  std::string v = Lower(t.substr(*b, *e - *b));
  if (v.find_first_of("abcdefghijklmnopqrstuvwxyz") == std::string::npos) return false;  // "0.0.0.0"
  return v != "localhost" && v.rfind("ip6-", 0) != 0 && v != "broadcasthost" && v.find("localhost") == std::string::npos;
}

// HostsFileLine: "IP name [alias...]" and nothing else ("10.0.0.1 dev eth0 lladdr ..." is not one).
bool HostsFileLine(std::string_view t, size_t* b, size_t* e) {
  static const std::set<std::string> kNotNames = {"dev", "via", "proto", "src", "metric", "scope", "from", "to"};
  if (kNotNames.count(Lower(t.substr(*b, *e - *b)))) return false;
  std::string_view line = LineOf(t, *b);
  size_t rest = static_cast<size_t>(t.data() + *b - line.data());
  for (char c : line.substr(rest))
    if (!(IsHostByte(c) || c == ' ' || c == '\t' || c == '\r')) return false;
  return HostsFileName(t, b, e);
}

bool NameBeforeEmail(std::string_view t, size_t* b, size_t* e) {
  std::string_view line = LineOf(t, *b);
  (void)e;
  return line.find('@') != std::string_view::npos;
}

// NameEnd: where the person name (the kName pattern below, with RE2's \p{Lu}
// and \p{L}) that starts at `b` ends when read greedily within [b, limit): two
// to four words of an upper-case letter and one or more letters, ' ’ or -,
// separated by single spaces. npos when fewer than two words are there.
size_t NameEnd(std::string_view t, size_t b, size_t limit) {
  t = t.substr(0, limit);
  size_t i = b;
  int words = 0;
  char32_t c;
  while (words < 4) {
    size_t w = i;
    if (words > 0) {
      if (w >= t.size() || t[w] != ' ') break;
      ++w;
    }
    size_t n = DecodeUtf8(t, w, &c);
    if (n == 0 || !IsUnicodeUpper(c)) break;
    size_t j = w + n, tail = 0;
    while ((n = DecodeUtf8(t, j, &c)) != 0 && (IsUnicodeLetter(c) || c == '\'' || c == U'\u2019' || c == '-')) {
      j += n;
      ++tail;
    }
    if (tail == 0) break;
    ++words;
    i = j;
  }
  return words >= 2 ? i : std::string_view::npos;
}

// The person rules match names with byte-cheap classes (any non-ASCII character
// stands for a letter) and these checks hold the candidate to the real ones:
// compiling \p{L} into six rules cost more than the rest of the rule set.
// A name followed by context (" <", a quote, a table bar, the line end) must be
// a name as a whole; the context fixes the number of words, so the result is
// what the \p{L} pattern finds.
bool WholeName(std::string_view t, size_t* b, size_t* e) { return NameEnd(t, *b, *e) == *e; }
// A name with nothing after it ("user.name=") is the longest name that starts there.
bool LeadingName(std::string_view t, size_t* b, size_t* e) {
  size_t end = NameEnd(t, *b, *e);
  if (end == std::string_view::npos) return false;
  *e = end;
  return true;
}

bool Base64Shape(std::string_view t, size_t* b, size_t* e) {
  if (*e < t.size() && t[*e] == '.') return false;  // a segment of a dotted token (a JWT), not a value
  std::string_view v = t.substr(*b, *e - *b);
  size_t core = v.find_last_not_of('=') + 1;
  if (core < 12) return false;
  bool lower = false, upper = false;
  for (char c : v.substr(0, core)) {
    lower |= c >= 'a' && c <= 'z';
    upper |= c >= 'A' && c <= 'Z';
  }
  return lower && upper;
}

bool Entropic(std::string_view t, size_t* b, size_t* e) {
  std::string_view v = t.substr(*b, *e - *b);
  return v.size() >= 16 && ShannonEntropy(v) >= 3.0;
}


// ---------------------------------------------------------------- candidate finders
// Where a match of a rule without a literal prefix can start (see Candidates
// in rules.h). Each is a superset of the real starts; the pattern decides.

bool IsDigitByte(char c) { return byte_class::Is(c, byte_class::kDigit); }
bool IsHexByte(char c) { return byte_class::Is(c, byte_class::kHex); }
bool IsAlnumByte(char c) { return byte_class::Is(c, byte_class::kAlnum); }

#ifdef __SSE2__
// InRange: 0xFF in each byte of v within [lo, hi], 0 in the others (SSE2 has no
// unsigned compare: v - lo, then whether the unsigned minimum with hi - lo is it).
inline __m128i InRange(__m128i v, char lo, char hi) {
  __m128i x = _mm_sub_epi8(v, _mm_set1_epi8(lo));
  return _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(static_cast<char>(hi - lo))), x);
}
#endif

size_t FindByte(std::string_view t, char c, size_t pos, size_t end) {
  const void* p = std::memchr(t.data() + pos, c, end - pos);
  return p ? static_cast<size_t>(static_cast<const char*>(p) - t.data()) : end;
}

// FindAny: the first position in [pos, end) holding one of the N bytes, or end
// (16 bytes at a time where SSE2 is there).
template <size_t N>
size_t FindAny(std::string_view t, size_t pos, size_t end, const char (&set)[N]) {
  const char* d = t.data();
#ifdef __SSE2__
  __m128i want[N];
  for (size_t k = 0; k < N; ++k) want[k] = _mm_set1_epi8(set[k]);
  for (; pos + 16 <= end; pos += 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + pos));
    __m128i hit = _mm_cmpeq_epi8(v, want[0]);
    for (size_t k = 1; k < N; ++k) hit = _mm_or_si128(hit, _mm_cmpeq_epi8(v, want[k]));
    if (int mask = _mm_movemask_epi8(hit)) return pos + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
  }
#endif
  for (; pos < end; ++pos)
    for (size_t k = 0; k < N; ++k)
      if (d[pos] == set[k]) return pos;
  return end;
}

// ipv4: one to three digits and a '.', twice more, and a digit (an octet is
// one to three digits, and each must reach its dot).
bool DottedQuadAfter(std::string_view t, size_t c, size_t end) {
  for (int dots = 1;; ++dots) {
    size_t i = c + 1;
    while (i < end && i - (c + 1) < 4 && IsDigitByte(t[i])) ++i;
    size_t n = i - (c + 1);
    if (n == 0) return false;
    if (dots == 3) return true;
    if (n > 3 || i >= end || t[i] != '.') return false;
    c = i;
  }
}
// The whole ipv4 match at s, without RE2: each octet's alternatives
// 25[0-5] | 2[0-4][0-9] | 1[0-9][0-9] | [1-9]?[0-9] are tried in the
// pattern's order (the greedy ? first), backtracking as RE2's leftmost-first
// match would; the last octet takes the first alternative that fits.
size_t IPv4OctetsFrom(std::string_view t, size_t p, size_t end, int octet) {
  auto digit = [&](size_t i, char lo, char hi) { return i < end && t[i] >= lo && t[i] <= hi; };
  size_t lengths[5];
  int n = 0;
  if (digit(p, '2', '2') && digit(p + 1, '5', '5') && digit(p + 2, '0', '5')) lengths[n++] = 3;
  if (digit(p, '2', '2') && digit(p + 1, '0', '4') && digit(p + 2, '0', '9')) lengths[n++] = 3;
  if (digit(p, '1', '1') && digit(p + 1, '0', '9') && digit(p + 2, '0', '9')) lengths[n++] = 3;
  if (digit(p, '1', '9') && digit(p + 1, '0', '9')) lengths[n++] = 2;
  if (digit(p, '0', '9')) lengths[n++] = 1;
  for (int k = 0; k < n; ++k) {
    size_t q = p + lengths[k];
    if (octet == 3) return q;
    if (q < end && t[q] == '.') {
      size_t r = IPv4OctetsFrom(t, q + 1, end, octet + 1);
      if (r != std::string_view::npos) return r;
    }
  }
  return std::string_view::npos;
}
int IPv4Match(std::string_view t, size_t s, size_t end, size_t* mb, size_t* me, size_t* gb, size_t* ge) {
  size_t e = IPv4OctetsFrom(t, s, end, 0);
  if (e == std::string_view::npos) return false;
  *mb = *gb = s;
  *me = *ge = e;
  return true;
}
size_t IPv4Starts(std::string_view t, size_t pos, size_t end, size_t* skip) {
  for (size_t c = FindByte(t, '.', pos, end); c < end; c = FindByte(t, '.', c + 1, end)) {
    if (c + 1 >= end || !IsDigitByte(t[c + 1])) continue;
    size_t s = c;
    while (s > pos && c - s < 3 && IsDigitByte(t[s - 1])) --s;
    if (s < c && DottedQuadAfter(t, c, end)) {
      *skip = s + 1;
      return s;
    }
  }
  return end;
}

// ipv6: (?:[0-9a-f]{0,4}:){2,7}...: up to four hex digits, ':', up to four, ':'.
// IPv6Colon: the first c in [pos, end) holding a ':' with another within the
// next five bytes (what the check below needs: at most four hex digits between).
size_t IPv6Colon(std::string_view t, size_t pos, size_t end) {
  const char* d = t.data();
  size_t c = pos;
#ifdef __SSE2__
  const __m128i colon = _mm_set1_epi8(':');
  auto at = [&](size_t k) { return _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d + c + k)), colon); };
  for (; c + 21 <= end; c += 16) {
    __m128i near = _mm_or_si128(_mm_or_si128(_mm_or_si128(at(1), at(2)), _mm_or_si128(at(3), at(4))), at(5));
    if (int mask = _mm_movemask_epi8(_mm_and_si128(at(0), near)))
      return c + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
  }
#endif
  for (; c < end; ++c)
    if (d[c] == ':')
      for (size_t k = 1; k <= 5 && c + k < end; ++k)
        if (d[c + k] == ':') return c;
  return end;
}
size_t IPv6Starts(std::string_view t, size_t pos, size_t end, size_t* skip) {
  for (size_t c = IPv6Colon(t, pos, end); c < end; c = IPv6Colon(t, c + 1, end)) {
    size_t i = c + 1;
    while (i < end && i - (c + 1) < 5 && IsHexByte(t[i])) ++i;
    if (i >= end || t[i] != ':' || i - (c + 1) > 4) continue;
    size_t s = c;
    while (s > pos && c - s < 4 && IsHexByte(t[s - 1])) --s;
    *skip = s + 1;
    return s;
  }
  return end;
}

// The whole ipv6 match at s, without RE2. (?:[0-9a-f]{0,4}:){2,7} has one way
// through each group (the hex run up to its ':', at most four), and greedy
// repetition takes as many groups as there are, up to seven; then the optional
// tail, first alternative first: a dotted quad of one-to-three-digit parts,
// else one to four hex digits, else nothing.
int IPv6Match(std::string_view t, size_t s, size_t end, size_t* mb, size_t* me, size_t* gb, size_t* ge) {
  size_t i = s;
  int groups = 0;
  while (groups < 7) {
    size_t j = i;
    while (j < end && j - i < 5 && IsHexByte(t[j])) ++j;
    if (j - i > 4 || j >= end || t[j] != ':') break;
    i = j + 1;
    ++groups;
  }
  if (groups < 2) return false;
  // (?:[0-9]{1,3}\.){3}[0-9]{1,3}
  size_t q = i;
  bool quad = true;
  for (int part = 0; part < 4 && quad; ++part) {
    size_t j = q;
    while (j < end && j - q < 4 && IsDigitByte(t[j])) ++j;
    size_t n = j - q;
    if (part < 3) {
      quad = n >= 1 && n <= 3 && j < end && t[j] == '.';
      q = j + 1;
    } else {
      quad = n >= 1;
      q += std::min<size_t>(n, 3);
    }
  }
  if (quad) {
    i = q;
  } else {
    size_t j = i;
    while (j < end && j - i < 4 && IsHexByte(t[j])) ++j;
    i = j;
  }
  *mb = *gb = s;
  *me = *ge = i;
  return true;
}

// email: [A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9]...: every start before one
// '@' reads the same domain after it, so when the first fails they all do.
bool IsEmailLocalByte(char c) { return byte_class::Is(c, byte_class::kEmailLocal); }
size_t EmailStarts(std::string_view t, size_t pos, size_t end, size_t* skip) {
  for (size_t c = FindByte(t, '@', pos, end); c < end; c = FindByte(t, '@', c + 1, end)) {
    if (c + 1 >= end || !IsAlnumByte(t[c + 1])) continue;
    size_t r = c;
    while (r > pos && IsEmailLocalByte(t[r - 1])) --r;
    while (r < c && !IsAlnumByte(t[r])) ++r;
    if (r == c) continue;
    *skip = c + 1;
    return r;
  }
  return end;
}

bool IsReSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }  // RE2's \s

// URL userinfo, at "://": [^\s/@'"]* then "@".
bool UserinfoAhead(std::string_view t, size_t b) {
  for (size_t i = b + 3; i < t.size(); ++i) {
    char c = t[i];
    if (c == '@') return true;
    if (IsReSpace(c) || c == '/' || c == '\'' || c == '"') return false;
  }
  return false;
}

// URL rules: [A-Za-z][A-Za-z0-9+.\-]*://...: the scheme before a "://"; as for
// email, every start before one "://" reads the same text after it.
bool IsSchemeByte(char c) { return byte_class::Is(c, byte_class::kScheme); }
size_t UrlStarts(std::string_view t, size_t pos, size_t end, size_t* skip) {
  for (size_t c = FindByte(t, ':', pos, end); c < end; c = FindByte(t, ':', c + 1, end)) {
    if (c + 2 >= end || t[c + 1] != '/' || t[c + 2] != '/') continue;
    if (!UserinfoAhead(t.substr(0, end), c)) continue;  // every URL rule's pattern holds it
    size_t r = c;
    while (r > pos && IsSchemeByte(t[r - 1])) --r;
    while (r < c && !((t[r] | 0x20) >= 'a' && (t[r] | 0x20) <= 'z')) ++r;
    if (r == c) continue;
    *skip = c + 1;
    return r;
  }
  return end;
}

// mac: the whole shape: hex pairs joined by five of the same ':' or '-', or
// three hex quads joined by '.'. Found from the separators: a start is two
// bytes before a ':' or '-', or four before a '.' (in that order they ascend).
// MacSeparator: the first c in [pos, end) where a MAC's first separator can be:
// a ':' or '-' repeated three bytes on, or a '.' repeated five on (the shape
// check below implies it; separators are everywhere, repeats at those distances
// are not).
size_t MacSeparator(std::string_view t, size_t pos, size_t end) {
  const char* d = t.data();
  size_t c = pos;
#ifdef __SSE2__
  const __m128i colon = _mm_set1_epi8(':'), dash = _mm_set1_epi8('-'), dot = _mm_set1_epi8('.');
  for (; c + 21 <= end; c += 16) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + c));
    __m128i a3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + c + 3));
    __m128i a5 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + c + 5));
    __m128i pair = _mm_and_si128(_mm_or_si128(_mm_cmpeq_epi8(a, colon), _mm_cmpeq_epi8(a, dash)), _mm_cmpeq_epi8(a, a3));
    __m128i quad = _mm_and_si128(_mm_cmpeq_epi8(a, dot), _mm_cmpeq_epi8(a5, dot));
    if (int mask = _mm_movemask_epi8(_mm_or_si128(pair, quad)))
      return c + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
  }
#endif
  for (; c < end; ++c) {
    if ((d[c] == ':' || d[c] == '-') && c + 3 < end && d[c + 3] == d[c]) return c;
    if (d[c] == '.' && c + 5 < end && d[c + 5] == '.') return c;
  }
  return end;
}
size_t MacStarts(std::string_view t, size_t pos, size_t end, size_t* skip) {
  auto hex2 = [&](size_t i) { return IsHexByte(t[i]) && IsHexByte(t[i + 1]); };
  for (size_t c = MacSeparator(t, pos + 2 <= end ? pos + 2 : end, end); c < end; c = MacSeparator(t, c + 1, end)) {
    char sep = t[c];
    bool ok = false;
    size_t s;
    if (sep == ':' || sep == '-') {
      s = c - 2;
      if (s + 17 <= end && hex2(s)) {
        ok = true;
        for (size_t g = 1; g < 6 && ok; ++g) ok = hex2(s + 3 * g) && (g == 5 || t[s + 3 * g + 2] == sep);
      }
    } else {
      if (c < pos + 4) continue;
      s = c - 4;
      ok = s + 14 <= end && hex2(s) && hex2(s + 2) && hex2(s + 5) && hex2(s + 7) && t[s + 9] == '.' &&
           hex2(s + 10) && hex2(s + 12);
    }
    if (ok) {
      *skip = s + 1;
      return s;
    }
  }
  return end;
}

// base64-value: [:=][ \t]*["']?[A-Za-z0-9+/_\-]{12,}: exactly where it can start.
bool IsB64Byte(char c) { return byte_class::Is(c, byte_class::kBase64); }
size_t Base64Starts(std::string_view t, size_t pos, size_t end, size_t* skip) {
  static constexpr char kSeparators[] = {':', '='};
  for (size_t s = FindAny(t, pos, end, kSeparators); s < end; s = FindAny(t, s + 1, end, kSeparators)) {
    size_t i = s + 1;
    while (i < end && (t[i] == ' ' || t[i] == '\t')) ++i;
    if (i < end && (t[i] == '"' || t[i] == '\'')) ++i;
    size_t n = 0;
    while (i + n < end && n < 12 && IsB64Byte(t[i + n])) ++n;
    if (n < 12) continue;
    *skip = s + 1;
    return s;
  }
  return end;
}
// The whole base64-value match at s, without RE2: the pattern has one way to
// match (blanks and the quote are not base64 bytes; {12,} and ={0,2} are greedy
// with nothing after them).
int Base64Match(std::string_view t, size_t s, size_t end, size_t* mb, size_t* me, size_t* gb, size_t* ge) {
  if (s >= end || (t[s] != ':' && t[s] != '=')) return false;
  size_t i = s + 1;
  while (i < end && (t[i] == ' ' || t[i] == '\t')) ++i;
  if (i < end && (t[i] == '"' || t[i] == '\'')) ++i;
  size_t g = i;
  while (i < end && IsB64Byte(t[i])) ++i;
  if (i - g < 12) return false;
  for (int pad = 0; pad < 2 && i < end && t[i] == '='; ++pad) ++i;
  *mb = s;
  *me = i;
  *gb = g;
  *ge = i;
  return true;
}

// A digit: the first position in [pos, end) holding one, or end.
size_t FindDigit(std::string_view t, size_t pos, size_t end) {
  const char* d = t.data();
#ifdef __SSE2__
  for (; pos + 16 <= end; pos += 16) {
    __m128i digit = InRange(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d + pos)), '0', '9');
    if (int mask = _mm_movemask_epi8(digit)) return pos + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
  }
#endif
  for (; pos < end; ++pos)
    if (IsDigitByte(d[pos])) return pos;
  return end;
}

// After the four bytes of an IBAN's country and check digits: (?:[ ]?[A-Z0-9]{4}){2}.
bool IbanAhead(std::string_view t, size_t b) {
  size_t i = b + 4, n = t.size();
  for (int group = 0; group < 2; ++group) {
    if (i < n && t[i] == ' ') ++i;
    for (int k = 0; k < 4; ++k, ++i)
      if (i >= n || !(IsDigitByte(t[i]) || (t[i] >= 'A' && t[i] <= 'Z'))) return false;
  }
  return true;
}

// iban: [A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]{4}){2}...: a match starts where two
// capitals and two digits are, and has two groups of four after them
// (IbanAhead). Found 64 bytes a turn from the masks of capitals and digits:
// as a trigger, the capital-digit pair met too often ("T00:00").
size_t IbanStarts(std::string_view t, size_t pos, size_t end, size_t* skip) {
  const auto* d = reinterpret_cast<const unsigned char*>(t.data());
  size_t i = pos;
#ifdef __SSE2__
  for (; i + 64 <= end; i += 61) {  // a start in the first 61 bytes has its four bytes in the window
    uint64_t digit = 0, upper = 0;
    for (int q = 0; q < 4; ++q) {
      __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + i + 16 * q));
      digit |= uint64_t{static_cast<uint16_t>(_mm_movemask_epi8(InRange(v, '0', '9')))} << (16 * q);
      upper |= uint64_t{static_cast<uint16_t>(_mm_movemask_epi8(InRange(v, 'A', 'Z')))} << (16 * q);
    }
    uint64_t starts = upper & upper >> 1 & digit >> 2 & digit >> 3 & ((uint64_t{1} << 61) - 1);
    for (; starts != 0; starts &= starts - 1) {
      size_t s = i + static_cast<size_t>(__builtin_ctzll(starts));
      if (IbanAhead(t.substr(0, end), s)) {
        *skip = s + 1;
        return s;
      }
    }
  }
#endif
  for (; i + 4 <= end; ++i) {
    auto up = [&](size_t k) { return d[k] >= 'A' && d[k] <= 'Z'; };
    if (up(i) && up(i + 1) && IsDigitByte(t[i + 2]) && IsDigitByte(t[i + 3]) && IbanAhead(t.substr(0, end), i)) {
      *skip = i + 1;
      return i;
    }
  }
  return end;
}

// payment-card: [0-9](?:[ \-]?[0-9]){12,18}. One way to match: a separator is
// taken only before a digit (the digit alone cannot be a separator), and the
// greedy repetition reads the chain of digits as far as 18 more. The chain from
// a digit decides every start inside it: with fewer than 13 digits, none matches.
size_t CardChain(std::string_view t, size_t s, size_t end, int* digits) {
  size_t i = s + 1;
  int k = 0;
  while (k < 18 && i < end) {
    if ((t[i] == ' ' || t[i] == '-') && i + 1 < end && IsDigitByte(t[i + 1])) i += 2;
    else if (IsDigitByte(t[i])) i += 1;
    else break;
    ++k;
  }
  *digits = k + 1;
  return i;
}
// CardRun: the first position in [pos, end) where 13 chain bytes in a row start
// (a digit, or a ' ' or '-' between two digits), or end. Every match lies in
// such a run; digits are everywhere in logs, runs of 13 are not. Sixty-four
// bytes are classified a turn and the runs found with shifts of their mask.
size_t CardRun(std::string_view t, size_t pos, size_t end) {
  const auto* d = reinterpret_cast<const unsigned char*>(t.data());
#ifdef __SSE2__
  const __m128i space = _mm_set1_epi8(' '), dash = _mm_set1_epi8('-');
  for (size_t i = pos; i + 64 <= end; i += 52) {  // a run found starting in the first 52 bytes is whole
    uint64_t digit = 0, sep = 0;
    for (int q = 0; q < 4; ++q) {
      __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + i + 16 * q));
      uint64_t dm = static_cast<uint16_t>(_mm_movemask_epi8(InRange(v, '0', '9')));
      uint64_t sm = static_cast<uint16_t>(
          _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, space), _mm_cmpeq_epi8(v, dash))));
      digit |= dm << (16 * q);
      sep |= sm << (16 * q);
    }
    uint64_t before = digit << 1 | (i > 0 && IsDigitByte(t[i - 1]));
    uint64_t after = digit >> 1 | uint64_t{i + 64 < end && IsDigitByte(t[i + 64])} << 63;
    uint64_t chain = digit | (sep & before & after);
    uint64_t r2 = chain & chain >> 1, r4 = r2 & r2 >> 2, r8 = r4 & r4 >> 4, r13 = r8 & r4 >> 8 & chain >> 12;
    if (uint64_t starts = r13 & ((uint64_t{1} << 52) - 1)) return i + static_cast<size_t>(__builtin_ctzll(starts));
    if (i + 52 + 64 > end) return std::min(end, i + 52);  // the rest, byte by byte
  }
#endif
  return pos;
}
size_t CardStarts(std::string_view t, size_t pos, size_t end, size_t* skip) {
  for (size_t s = FindDigit(t, CardRun(t, pos, end), end); s < end; s = FindDigit(t, CardRun(t, s, end), end)) {
    int digits;
    size_t i = CardChain(t, s, end, &digits);
    if (digits >= 13) {
      *skip = s + 1;
      return s;
    }
    // A shorter chain: every digit up to where it stopped starts a shorter one still.
    s = i;
  }
  return end;
}
int CardMatch(std::string_view t, size_t s, size_t end, size_t* mb, size_t* me, size_t* gb, size_t* ge) {
  if (s >= end || !IsDigitByte(t[s])) return 0;
  int digits;
  size_t i = CardChain(t, s, end, &digits);
  if (digits < 13) return 0;
  *mb = *gb = s;
  *me = *ge = i;
  return 1;
}

// phone: \+[0-9]{1,3}... | 0[1-9](?:[ .\-]?[0-9]{2}){4}. A match starts at a
// '+' before a digit (the first alternative; RE2 reads it) or at a "0[1-9]"
// (the second, exactly: a separator is taken only before two digits).
bool IsPhoneSeparator(char c) { return c == ' ' || c == '.' || c == '-'; }
size_t NationalPhoneEnd(std::string_view t, size_t s, size_t end) {
  if (s + 2 > end || t[s] != '0' || t[s + 1] < '1' || t[s + 1] > '9') return std::string_view::npos;
  size_t i = s + 2;
  for (int k = 0; k < 4; ++k) {
    if (i < end && IsPhoneSeparator(t[i])) ++i;
    if (i + 2 > end || !IsDigitByte(t[i]) || !IsDigitByte(t[i + 1])) return std::string_view::npos;
    i += 2;
  }
  return i;
}
// PhoneStart: the first s in [pos, end) holding a '+' before a digit or a '0'
// before 1-9 (how every match begins), sixteen positions at a time.
size_t PhoneStart(std::string_view t, size_t pos, size_t end) {
  const char* d = t.data();
  size_t s = pos;
#ifdef __SSE2__
  const __m128i plus = _mm_set1_epi8('+'), zero = _mm_set1_epi8('0');
  for (; s + 17 <= end; s += 16) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + s));
    __m128i next = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + s + 1));
    __m128i digit = InRange(next, '0', '9'), nonzero = InRange(next, '1', '9');
    __m128i hit = _mm_or_si128(_mm_and_si128(_mm_cmpeq_epi8(a, plus), digit), _mm_and_si128(_mm_cmpeq_epi8(a, zero), nonzero));
    if (int mask = _mm_movemask_epi8(hit)) return s + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
  }
#endif
  for (; s + 1 < end; ++s)
    if ((d[s] == '+' && IsDigitByte(d[s + 1])) || (d[s] == '0' && d[s + 1] >= '1' && d[s + 1] <= '9')) return s;
  return end;
}
size_t PhoneStarts(std::string_view t, size_t pos, size_t end, size_t* skip) {
  for (size_t s = PhoneStart(t, pos, end); s < end; s = PhoneStart(t, s + 1, end)) {
    bool may = t[s] == '+' ? s + 1 < end && IsDigitByte(t[s + 1]) : NationalPhoneEnd(t, s, end) != std::string_view::npos;
    if (may) {
      *skip = s + 1;
      return s;
    }
  }
  return end;
}
int PhoneMatch(std::string_view t, size_t s, size_t end, size_t* mb, size_t* me, size_t* gb, size_t* ge) {
  if (s >= end) return 0;
  if (t[s] == '+') return -1;  // the international alternative: RE2 decides
  size_t i = NationalPhoneEnd(t, s, end);
  if (i == std::string_view::npos) return 0;
  *mb = *gb = s;
  *me = *ge = i;
  return 1;
}

// URL rules, the whole match at a scheme start (UrlStarts), without RE2. Every
// part is a greedy run of a class that excludes the byte that must follow it,
// so each has one way to match. A non-ASCII byte in the way: RE2 decides (its
// classes read characters, not bytes).
bool IsUrlSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }
// After "scheme://" at s, or npos; *ascii false when a byte >= 0x80 was met.
size_t AfterScheme(std::string_view t, size_t s, size_t end) {
  if (s >= end || !((t[s] | 0x20) >= 'a' && (t[s] | 0x20) <= 'z')) return std::string_view::npos;
  size_t i = s + 1;
  while (i < end && IsSchemeByte(t[i])) ++i;
  if (i + 3 > end || t[i] != ':' || t[i + 1] != '/' || t[i + 2] != '/') return std::string_view::npos;
  return i + 3;
}
// The end of a run of bytes not in `stop` (nor blanks) from i; -1 in *high when a byte >= 0x80 is in it.
template <size_t N>
size_t RunUntil(std::string_view t, size_t i, size_t end, const char (&stop)[N], bool* high) {
  for (; i < end; ++i) {
    char c = t[i];
    if (static_cast<unsigned char>(c) >= 0x80) *high = true;
    if (IsUrlSpace(c)) return i;
    for (char x : stop)
      if (c == x) return i;
  }
  return i;
}
constexpr char kUserStop[] = {':', '/', '@', '\'', '"'};  // [^\s:/@'"]
constexpr char kPassStop[] = {'@', '/', '\'', '"'};       // [^\s@/'"]
// Userinfo reads scheme://USER:PASS@ at s: USER a run of [^\s:/@'"] (may be
// empty), PASS a run of [^\s@/'"] (not empty), then '@'. *a is where USER
// starts, *u its ':', *p the '@'. 1, 0, or -1 (a non-ASCII byte: RE2 decides).
int Userinfo(std::string_view t, size_t s, size_t end, size_t* a, size_t* u, size_t* p) {
  *a = AfterScheme(t, s, end);
  if (*a == std::string_view::npos) return 0;
  bool high = false;
  *u = RunUntil(t, *a, end, kUserStop, &high);
  if (high) return -1;
  if (*u >= end || t[*u] != ':') return 0;
  *p = RunUntil(t, *u + 1, end, kPassStop, &high);
  if (high) return -1;
  if (*p == *u + 1 || *p >= end || t[*p] != '@') return 0;
  return 1;
}
// url-userinfo-password: scheme://[^\s:/@'"]*:([^\s@/'"]+)@
int UrlPasswordMatch(std::string_view t, size_t s, size_t end, size_t* mb, size_t* me, size_t* gb, size_t* ge) {
  size_t a, u, p;
  if (int known = Userinfo(t, s, end, &a, &u, &p); known != 1) return known;
  *mb = s;
  *me = p + 1;
  *gb = u + 1;
  *ge = p;
  return 1;
}
// url-userinfo-user: scheme://([^\s:/@'"]+):[^\s@/'"]+@ (the same, with USER not empty)
int UrlUserMatch(std::string_view t, size_t s, size_t end, size_t* mb, size_t* me, size_t* gb, size_t* ge) {
  size_t a, u, p;
  if (int known = Userinfo(t, s, end, &a, &u, &p); known != 1) return known;
  if (u == a) return 0;
  *mb = s;
  *me = p + 1;
  *gb = a;
  *ge = u;
  return 1;
}
// url-userinfo-token: scheme://([A-Za-z0-9_\-]{20,})@
int UrlTokenMatch(std::string_view t, size_t s, size_t end, size_t* mb, size_t* me, size_t* gb, size_t* ge) {
  size_t a = AfterScheme(t, s, end);
  if (a == std::string_view::npos) return 0;
  size_t i = a;
  while (i < end && (IsAlnumByte(t[i]) || t[i] == '_' || t[i] == '-')) ++i;
  if (i - a < 20 || i >= end || t[i] != '@') return 0;
  *mb = s;
  *me = i + 1;
  *gb = a;
  *ge = i;
  return 1;
}
// url-host-after-userinfo: scheme://[^\s/@'"]*@([A-Za-z0-9][A-Za-z0-9.\-]*[A-Za-z0-9]):
// the host's run, given back to its last letter or digit.
int UrlHostMatch(std::string_view t, size_t s, size_t end, size_t* mb, size_t* me, size_t* gb, size_t* ge) {
  size_t a = AfterScheme(t, s, end);
  if (a == std::string_view::npos) return 0;
  bool high = false;
  size_t at = RunUntil(t, a, end, kPassStop, &high);
  if (high) return -1;
  if (at >= end || t[at] != '@') return 0;
  size_t h = at + 1;
  if (h >= end || !IsAlnumByte(t[h])) return 0;
  size_t q = h + 1;
  while (q < end && (IsAlnumByte(t[q]) || t[q] == '.' || t[q] == '-')) ++q;
  size_t last = q;
  while (last > h + 1 && !IsAlnumByte(t[last - 1])) --last;
  if (last <= h + 1) return 0;
  *mb = s;
  *me = last;
  *gb = h;
  *ge = last;
  return 1;
}

// internal-hostname with the built-in zones: (?i)(?:[a-z0-9][a-z0-9\-]*\.)+(?:internal|corp|...).
// Every match holds a '.' and a zone word; none starts before the run of host
// bytes that one is in. The zone words hold no letter that case-insensitive
// RE2 folds onto a non-ASCII character (k, s), but the labels may: bytes >= 0x80
// count as host bytes, and as places where a label may start (RE2 decides there).
bool ZoneWordAt(std::string_view t, size_t i, size_t end) {
  static constexpr std::string_view kZones[] = {"internal", "corp", "local", "lan", "home.arpa", "intranet", "private"};
  for (std::string_view z : kZones) {
    if (z.size() > end - i) continue;
    size_t j = 0;
    while (j < z.size() && static_cast<char>(t[i + j] | 0x20) == z[j]) ++j;
    if (j == z.size()) return true;
  }
  return false;
}
bool IsLabelByte(char c) { return byte_class::Is(c, byte_class::kLabel); }
size_t InternalHostStarts(std::string_view t, size_t pos, size_t end, size_t* skip) {
  for (size_t d = FindByte(t, '.', pos + 1 <= end ? pos + 1 : end, end); d < end; d = FindByte(t, '.', d + 1, end)) {
    if (!IsLabelByte(t[d - 1]) || d + 1 >= end || !ZoneWordAt(t, d + 1, end)) continue;
    size_t rs = d;
    while (rs > pos && (IsLabelByte(t[rs - 1]) || t[rs - 1] == '.')) --rs;
    for (size_t s = rs; s < d; ++s)
      if (IsAlnumByte(t[s]) || static_cast<unsigned char>(t[s]) >= 0x80) {
        *skip = s + 1;
        return s;
      }
  }
  return end;
}

// keyvalue-secret: (?i)(?:pass...|cookie)[A-Za-z0-9_.\-]*(["']?[ \t]*(?:=>|:=|=|:|["'][ \t]*,)...).
// Found from the separator: every match has a '=', ':' or quote that, back
// over blanks and one quote, ends the run of [A-Za-z0-9_.-] the key is in;
// the candidate is the first key word in that run, and when it fails every
// key in the run does (they share the separator). Case-insensitive in RE2 means
// Unicode folding ('k' is also U+212A, 's' U+017F): a run next to non-ASCII
// bytes is read on over them and each position that can start a word is tried.
bool IsKeyTailByte(char c) { return byte_class::Is(c, byte_class::kKeyTail); }
bool IsKeyFirstByte(char c) {
  // p s t k c m, either case: one bit each in a word indexed by the lower-cased letter.
  constexpr uint32_t kFirst = 1u << ('p' - 'a') | 1u << ('s' - 'a') | 1u << ('t' - 'a') | 1u << ('k' - 'a') |
                              1u << ('c' - 'a') | 1u << ('m' - 'a');
  unsigned lc = static_cast<unsigned char>(c | 0x20) - 'a';
  return lc < 26 && (kFirst >> lc & 1);
}
// KeyWordAt: one of the key words starts at p and lies within [p, r):
// pass pwd secret token key salt sig session sessid credential masterauth sid
// cookie, ASCII case-insensitive (the callers leave non-ASCII text to RE2).
bool KeyWordAt(std::string_view t, size_t p, size_t r) {
  const size_t n = r - p;
  auto word = [&](std::string_view w) {  // w[0] already matched
    if (w.size() > n) return false;
    for (size_t j = 1; j < w.size(); ++j)
      if (static_cast<char>(t[p + j] | 0x20) != w[j]) return false;
    return true;
  };
  switch (static_cast<char>(t[p] | 0x20)) {
    case 'p': return word("pass") || word("pwd");
    case 's': return word("secret") || word("salt") || word("sig") || word("sid") || word("session") || word("sessid");
    case 't': return word("token");
    case 'k': return word("key");
    case 'c': return word("credential") || word("cookie");
    case 'm': return word("masterauth");
    default: return false;
  }
}
// The whole keyvalue-secret match at s, without RE2, for ASCII text (-1 on a
// non-ASCII byte where case folding could matter). The key's run ends where the
// separator group starts, whatever word matched; the group: an optional quote
// (tried taken first), blanks, then =>, :=, =, :, or a quote, blanks and ',', in
// that order, then blanks.
int KeyValueMatch(std::string_view t, size_t s, size_t end, size_t* mb, size_t* me, size_t* gb, size_t* ge) {
  if (s >= end) return 0;
  for (size_t i = s; i < end && i < s + 10; ++i)
    if (static_cast<unsigned char>(t[i]) >= 0x80) return -1;  // within the longest key word
  if (!KeyWordAt(t, s, std::min(end, s + 10))) return 0;
  size_t r = s;
  while (r < end && IsKeyTailByte(t[r])) ++r;
  if (r < end && static_cast<unsigned char>(t[r]) >= 0x80) return -1;
  auto blanks = [&](size_t i) {
    while (i < end && (t[i] == ' ' || t[i] == '\t')) ++i;
    return i;
  };
  auto quote = [&](size_t i) { return i < end && (t[i] == '"' || t[i] == '\''); };
  // The alternatives at i, in order: the end of the one that matches, or npos.
  auto separator = [&](size_t i) -> size_t {
    if (i + 1 < end && t[i] == '=' && t[i + 1] == '>') return i + 2;
    if (i + 1 < end && t[i] == ':' && t[i + 1] == '=') return i + 2;
    if (i < end && (t[i] == '=' || t[i] == ':')) return i + 1;
    if (quote(i)) {
      size_t j = blanks(i + 1);
      if (j < end && t[j] == ',') return j + 1;
    }
    return std::string_view::npos;
  };
  size_t after = std::string_view::npos;
  if (quote(r)) after = separator(blanks(r + 1));
  if (after == std::string_view::npos) after = separator(blanks(r));
  if (after == std::string_view::npos) return 0;
  *mb = s;
  *gb = r;
  *me = *ge = blanks(after);
  return 1;
}

size_t KeyValueStarts(std::string_view t, size_t pos, size_t end, size_t* skip) {
  static constexpr char kSeparators[] = {'=', ':', '"', '\''};
  size_t last_r = std::string_view::npos;
  for (size_t q = FindAny(t, pos, end, kSeparators); q < end; q = FindAny(t, q + 1, end, kSeparators)) {
    size_t r = q;
    while (r > pos && (t[r - 1] == ' ' || t[r - 1] == '\t')) --r;
    if (r > pos && (t[r - 1] == '"' || t[r - 1] == '\'')) --r;
    if (r == pos || r == last_r) continue;  // no run, or this run was looked at from an earlier separator
    last_r = r;
    {
      // The separator the pattern wants at r: an optional quote, blanks, then
      // '=', ':', or a quote (and a ',' after blanks; ',' let through).
      size_t i = r + (t[r] == '"' || t[r] == '\'');
      while (i < end && (t[i] == ' ' || t[i] == '\t')) ++i;
      if (i >= end || !(t[i] == '=' || t[i] == ':' || t[i] == ',' || t[i] == '"' || t[i] == '\'')) continue;
    }
    bool ascii = IsKeyTailByte(t[r - 1]);
    if (!ascii && static_cast<unsigned char>(t[r - 1]) < 0x80) continue;
    // Back over the key's run, noting the leftmost key word in it on the way
    // (the shortest key words have three letters).
    size_t rs = r, first = std::string_view::npos;
    while (rs > pos && IsKeyTailByte(t[rs - 1])) {
      --rs;
      if (rs + 3 <= r && IsKeyFirstByte(t[rs]) && KeyWordAt(t, rs, r)) first = rs;
    }
    if (rs > pos && static_cast<unsigned char>(t[rs - 1]) >= 0x80) ascii = false;
    if (!ascii) {
      while (rs > pos && (IsKeyTailByte(t[rs - 1]) || static_cast<unsigned char>(t[rs - 1]) >= 0x80)) --rs;
      for (size_t p = rs; p < r; ++p) {
        unsigned char c = static_cast<unsigned char>(t[p]);
        if (c == 0xC5 || c == 0xE2 || (c < 0x80 && IsKeyFirstByte(t[p]))) {
          *skip = p + 1;
          return p;
        }
      }
      continue;
    }
    if (first != std::string_view::npos) {
      *skip = r;
      return first;
    }
  }
  return end;
}

// ---------------------------------------------------------------- trigger tests
// The part of a trigger that is more than a few bytes (triggers.h): each is
// true wherever the pattern trigger it stands for can match, at `b`, where the
// trigger's bytes start.

// pgpass, at ":": (?:[0-9]+|\*):[^\s:]+:[^\s:]+:[^\s:]+ up to the line end.
bool PgpassTail(std::string_view t, size_t b) {
  size_t i = b + 1, n = t.size();
  if (i < n && t[i] == '*') {
    ++i;
  } else {
    size_t d = i;
    while (i < n && IsDigitByte(t[i])) ++i;
    if (i == d) return false;
  }
  for (int field = 0; field < 3; ++field) {
    if (i >= n || t[i] != ':') return false;
    size_t f = ++i;
    while (i < n && t[i] != ':' && !IsReSpace(t[i])) ++i;
    if (i == f) return false;
  }
  return i == n || t[i] == '\n';
}

// A name before an address, at " <" or " (": [^>)\s]+@ after it.
bool AddressAhead(std::string_view t, size_t b) {
  for (size_t i = b + 2; i < t.size(); ++i) {
    char c = t[i];
    if (c == '>' || c == ')' || IsReSpace(c)) return false;
    if (c == '@' && i > b + 2) return true;
  }
  return false;
}

// A table row, at an "@": the table-person rule's check wants one on the
// line of its "|" cells ("@" is rarer than "|": the trigger is the "@").
bool TableLine(std::string_view t, size_t b) { return LineOf(t, b).find('|') != std::string_view::npos; }

// A hosts-file line, at its start: (?:[0-9]{1,3}\.){3}[0-9]{1,3}[ \t]+[A-Za-z0-9].
bool HostsLineAhead(std::string_view t, size_t b) {
  size_t i = b, n = t.size();
  for (int part = 0; part < 4; ++part) {
    if (part > 0 && (i >= n || t[i++] != '.')) return false;
    size_t d = i;
    while (i < n && i - d < 3 && IsDigitByte(t[i])) ++i;
    if (i == d) return false;
  }
  size_t blank = i;
  while (i < n && (t[i] == ' ' || t[i] == '\t')) ++i;
  return i > blank && i < n && IsAlnumByte(t[i]);
}


// A pattern trigger spelled as bytes: escapes what triggers.h gives a meaning.
std::string TriggerLiteral(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '[' || c == ']' || (c == '^' && out.empty())) out += '\\';
    out += c;
  }
  return out;
}

std::vector<Trigger> Folded(std::vector<std::string> literals) {
  std::vector<Trigger> out;
  for (std::string& l : literals) out.emplace_back(std::move(l), true);
  return out;
}

Rule R(const char* name, const char* category, Kind kind, std::vector<Trigger> triggers, std::string pattern,
       Check check = {}, int priority = 0) {
  Rule r;
  r.name = name;
  r.category = category;
  r.kind = kind;
  r.triggers = std::move(triggers);
  r.pattern = std::move(pattern);
  r.check = std::move(check);
  r.priority = priority;
  return r;
}

constexpr Kind S = Kind::kSecret;
constexpr Kind I = Kind::kIdentifier;

// A vendor token: a literal prefix (its trigger) and a body; extended to the token boundary.
Rule Vendor(const char* name, const char* category, std::vector<Trigger> triggers, std::string pattern) {
  Rule r = R(name, category, S, std::move(triggers), std::move(pattern), ExtendToken, 1);
  r.starts_at_trigger = true;
  return r;
}

// The rule just added starts every match with one of its triggers.
void StartsAtTrigger(std::vector<Rule>& rules) { rules.back().starts_at_trigger = true; }

}  // namespace

std::vector<Rule> BuiltinRules(const std::vector<std::string>& zones) {
  std::vector<Rule> r;
  // ---------------------------------------------------------------- private keys
  // The armour is found by the pattern; the body, up to the END line (also
  // inside a diff, or with "\n" escapes inside JSON), by PemBody.
  Rule pem = R("pem-private-key", "private_key", S, {"-----BEGIN "},
               R"(-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----)", PemBody, 1);
  pem.multiline = true;
  pem.starts_at_trigger = true;
  r.push_back(pem);
  r.push_back(Vendor("age-secret-key", "private_key", {"AGE-SECRET-KEY-"}, R"(AGE-SECRET-KEY-1[0-9A-Z]{58})"));

  // ---------------------------------------------------------------- vendor tokens
  r.push_back(Vendor("aws-access-key-id", "cloud_credential", {"AKIA", "ASIA", "ABIA", "ACCA", "A3T"},
                     R"((?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})"));
  r.push_back(Vendor("gcp-api-key", "cloud_credential", {"AIza"}, R"(AIza[0-9A-Za-z_\-]{35})"));
  r.push_back(Vendor("gcp-oauth-token", "cloud_credential", {"ya29."}, R"(ya29\.[0-9A-Za-z_\-]{20,})"));
  r.push_back(Vendor("gcp-oauth-secret", "cloud_credential", {"GOCSPX-"}, R"(GOCSPX-[0-9A-Za-z_\-]{20,})"));
  r.push_back(Vendor("azure-ad-client-secret", "cloud_credential", {"Q~"}, R"([A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.\-]{31,34})"));
  r.back().starts_at_trigger = false;  // the trigger is inside the token
  r.push_back(Vendor("alibaba-access-key", "cloud_credential", {"LTAI"}, R"(LTAI[A-Za-z0-9]{20})"));
  r.push_back(Vendor("digitalocean-token", "cloud_credential", {"do[opr]_v1_"}, R"(do[opr]_v1_[a-f0-9]{64})"));
  r.push_back(Vendor("github-token", "api_token", {"gh[pousr]_"}, R"(gh[pousr]_[A-Za-z0-9]{30,255})"));
  r.push_back(Vendor("github-fine-grained", "api_token", {"github_pat_"}, R"(github_pat_[A-Za-z0-9_]{22,255})"));
  r.push_back(Vendor("gitlab-token", "api_token", {"glpat-", "glrt-", "gldt-", "glptt-", "glcbt-", "glft-", "glsoat-", "glimt-", "glagent-"},
                     R"(gl(?:pat|rt|dt|ptt|cbt|ft|soat|imt|agent)-[A-Za-z0-9_\-]{20,})"));
  r.push_back(Vendor("gitlab-runner-registration", "api_token", {"GR1348941"}, R"(GR1348941[A-Za-z0-9_\-]{20,})"));
  r.push_back(Vendor("slack-token", "api_token", {"xox[abposr]-", "xapp-"}, R"((?:xox[abposr]-|xapp-)[A-Za-z0-9\-]{10,})"));
  r.push_back(R("slack-webhook", "api_token", S, {"hooks.slack.com"},
                R"(hooks\.slack\.com/(?:services|workflows|triggers)/([A-Za-z0-9_/\-]{20,}))", {}, 1));
  StartsAtTrigger(r);
  r.push_back(R("discord-webhook", "api_token", S, {"discord"},
                R"(discord(?:app)?\.com/api/webhooks/([0-9]+/[A-Za-z0-9_\-]{20,}))", {}, 1));
  StartsAtTrigger(r);
  r.push_back(Vendor("stripe-key", "api_token", {"[sr]k_live_", "[sr]k_test_", "whsec_"},
                     R"((?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{20,}))"));
  r.push_back(Vendor("openai-key", "api_token", {"sk-"}, R"(sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,})"));
  r.push_back(Vendor("anthropic-key", "api_token", {"sk-ant-"}, R"(sk-ant-(?:api|admin|sid)[0-9]{2}-[A-Za-z0-9_\-]{20,})"));
  r.push_back(Vendor("huggingface-token", "api_token", {"hf_"}, R"(hf_[A-Za-z0-9]{30,})"));
  r.push_back(Vendor("npm-token", "api_token", {"npm_"}, R"(npm_[A-Za-z0-9]{36})"));
  r.push_back(Vendor("pypi-token", "api_token", {"pypi-"}, R"(pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,})"));
  r.push_back(Vendor("vault-token", "api_token", {"hv[sbr]."}, R"(hv[sbr]\.[A-Za-z0-9_\-]{24,})"));
  r.push_back(Vendor("docker-pat", "api_token", {"dckr_pat_"}, R"(dckr_pat_[A-Za-z0-9_\-]{20,})"));
  r.push_back(Vendor("sendgrid-key", "api_token", {"SG."}, R"(SG\.[A-Za-z0-9_\-]{16,32}\.[A-Za-z0-9_\-]{16,64})"));
  r.push_back(Vendor("twilio-sid", "api_token", {"AC[a-f0-9]", "SK[a-f0-9]"}, R"((?:AC|SK)[a-f0-9]{32})"));
  r.push_back(Vendor("mailgun-key", "api_token", {"key-"}, R"(key-[a-f0-9]{32})"));
  r.push_back(Vendor("telegram-bot-token", "api_token", {"[0-9]:AA"}, R"([0-9]{8,10}:AA[A-Za-z0-9_\-]{30,40})"));
  r.back().starts_at_trigger = false;  // the trigger is inside the token
  r.push_back(Vendor("shopify-token", "api_token", {"shpat_", "shpca_", "shppa_", "shpss_"}, R"(shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32})"));
  r.push_back(Vendor("atlassian-token", "api_token", {"ATATT3"}, R"(ATATT3[A-Za-z0-9_\-=]{100,})"));
  r.push_back(Vendor("newrelic-key", "api_token", {"NRAK-", "NRJS-", "NRII-"}, R"(NR(?:AK|JS|II)-[A-Za-z0-9]{20,})"));
  r.push_back(Vendor("grafana-token", "api_token", {"glsa_", "glc_"}, R"((?:glsa_|glc_)[A-Za-z0-9_=\-]{32,})"));
  r.push_back(Vendor("sentry-token", "api_token", {"sntry[su]_"}, R"(sntry[su]_[A-Za-z0-9_=\-]{32,})"));
  r.push_back(Vendor("linear-key", "api_token", {"lin_api_"}, R"(lin_api_[A-Za-z0-9]{40})"));
  r.push_back(Vendor("postman-key", "api_token", {"PMAK-"}, R"(PMAK-[a-f0-9]{24}-[a-f0-9]{34})"));
  r.push_back(Vendor("doppler-token", "api_token", {"dp.pt.", "dp.st.", "dp.sa.", "dp.ct."}, R"(dp\.(?:pt|st|sa|ct)\.[A-Za-z0-9]{40,})"));
  r.push_back(Vendor("pulumi-token", "api_token", {"pul-"}, R"(pul-[a-f0-9]{40})"));
  r.push_back(Vendor("terraform-token", "api_token", {"atlasv1"}, R"([A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=\-]{60,})"));
  r.back().starts_at_trigger = false;  // the trigger is inside the token
  r.push_back(Vendor("flyio-token", "api_token", {"fo1_", "FlyV1 "}, R"((?:fo1_[A-Za-z0-9_\-]{40,}|FlyV1 fm\d_[A-Za-z0-9+/=_,\-]{40,}))"));
  r.push_back(Vendor("square-token", "api_token", {"sq0atp-", "sq0csp-", "EAAA"}, R"((?:sq0(?:atp|csp)-[A-Za-z0-9_\-]{22,}|EAAA[A-Za-z0-9_\-]{60}))"));
  r.push_back(Vendor("heroku-token", "api_token", {"HRKU-"}, R"(HRKU-[A-Za-z0-9_\-]{40,})"));
  r.push_back(Vendor("databricks-token", "api_token", {"dapi"}, R"(dapi[a-f0-9]{32}(?:-\d)?)"));
  r.push_back(Vendor("jwt", "jwt", {"eyJ"}, R"(eyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*)"));
  r.push_back(R("healthchecks-url", "api_token", S, {"hc-ping.com"}, R"(hc-ping\.com/([0-9a-f\-]{36}))", {}, 1));
  StartsAtTrigger(r);

  // ---------------------------------------------------------------- contexts
  r.push_back(R("auth-header", "auth_header", S, Folded({"authorization"}),
                R"((?i)authorization[ \t]*:[ \t]*(?:basic|bearer|token|digest|negotiate|ntlm|apikey)[ \t]+([A-Za-z0-9._~+/=\-]+))",
                {}, 3));
  StartsAtTrigger(r);
  // key = value in every syntax: env, YAML, JSON, INI, TOML, PHP define(), query strings, -D flags.
  // No triggers for base64-value, email, ipv4, ipv6, mac and phone:
  // nothing literal is in every match, and the rule's own finder scans no
  // slower than a trigger would. They run over the whole text.
  r.push_back(R("keyvalue-secret", "password", S,
                Folded({"pass", "pwd", "secret", "token", "key", "salt", "sig", "sess", "sid", "credential",
                        "masterauth", "cookie"}),
                R"((?i)(?:pass(?:word|wd|phrase)?|pwd|secret|token|key|salt|sig(?:nature)?|session(?:id)?|sessid|credentials?|masterauth|sid|cookie)[A-Za-z0-9_.\-]*(["']?[ \t]*(?:=>|:=|=|:|["'][ \t]*,)[ \t]*))",
                KeyValue));
  r.back().candidates = KeyValueStarts;
  r.back().anchored = KeyValueMatch;
  r.push_back(R("cli-password-flag", "password", S,
                {"-pass", "-requirepass", "-db-password", "-dbpass", "-token", "-api-key", "-apikey", "-secret", "-auth-token"},
                R"((?:^|[ \t])--?(?:password|passwd|pass|requirepass|db-password|dbpass|token|api-key|apikey|secret|auth-token)[ \t]+('[^'\n]*'|"[^"\n]*"|[^\s'"-][^\s]*))",
                StripQuotes));
  r.push_back(R("mysql-password-flag", "password", S, {"[ \\t]-p"},
                R"([ \t]-p('[^'\n]+'|"[^"\n]+"|[^\s'"]+))",
                [](std::string_view t, size_t* b, size_t* e) {
                  std::string_view line = LineOf(t, *b);
                  if (line.find("mysql") == std::string_view::npos && line.find("mariadb") == std::string_view::npos)
                    return false;
                  return StripQuotes(t, b, e);
                }));
  StartsAtTrigger(r);
  r.push_back(R("sshpass", "password", S, {"sshpass"}, R"(sshpass[ \t]+-p[ \t]*('[^'\n]*'|"[^"\n]*"|\S+))", StripQuotes));
  StartsAtTrigger(r);
  r.push_back(R("redis-cli-password", "password", S, {"redis-cli"}, R"(redis-cli\b[^\n]*?[ \t]-a[ \t]+('[^'\n]*'|"[^"\n]*"|\S+))",
                StripQuotes));
  StartsAtTrigger(r);
  r.push_back(R("curl-user", "password", S, {"-u[ \\t]", "--user"},
                R"((?:^|[ \t])(?:-u|--user)[ \t]+['"]?[^\s:'"]+:([^\s'"]+))",
                NotPlaceholder));
  r.push_back(R("htpasswd-b", "password", S, {"htpasswd"},
                R"(htpasswd[ \t]+(?:-[A-Za-z]+[ \t]+)*\S+[ \t]+\S+[ \t]+('[^'\n]*'|"[^"\n]*"|\S+))", StripQuotes));
  StartsAtTrigger(r);
  r.push_back(R("echo-sudo-S", "password", S, {"sudo"}, R"(echo[ \t]+('[^'\n]*'|"[^"\n]*"|\S+)[ \t]*\|[ \t]*sudo[ \t]+(?:-\S+[ \t]+)*-S)",
                StripQuotes));
  r.push_back(R("sql-identified-by", "password", S, Folded({"identified"}),
                R"((?i)identified[ \t]+(?:with[ \t]+\S+[ \t]+)?by[ \t]+('[^'\n]*'|"[^"\n]*"))", StripQuotes));
  StartsAtTrigger(r);
  r.push_back(R("pgpass-line", "password", S, {{":[0-9]", PgpassTail}, {":*", PgpassTail}}, R"((?m)^[^\s:#][^\s:]*:(?:[0-9]+|\*):[^\s:]+:[^\s:]+:([^\s:]+)$)",
                NotPlaceholder));
  std::vector<Trigger> hash_ids;  // "$id" and "$$id": a match starts at its first '$'
  for (const char* id : {"1", "2", "5", "6", "7", "y", "gy", "apr1", "md5", "sha", "argon2", "pbkdf2", "scrypt"}) {
    hash_ids.emplace_back(std::string("$") + id, false);
    hash_ids.emplace_back(std::string("$$") + id, false);
  }
  r.push_back(R("password-hash", "password_hash", S, hash_ids,
                R"(\$\$?(?:1|2[abxy]?|5|6|y|gy|7|apr1|md5|sha1|sha256|sha512|argon2(?:id|i|d)?|pbkdf2(?:-sha[0-9]+)?|scrypt)\$\$?[^\s:'"]{8,})",
                {}, 1));
  StartsAtTrigger(r);
  // scheme://user:PASSWORD@host, and the user and host as identifiers.
  r.push_back(R("url-userinfo-password", "password", S, {{"://", UserinfoAhead}},
                R"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'"]*:([^\s@/'"]+)@)",
                NotPlaceholder));
  r.back().candidates = UrlStarts;
  r.back().anchored = UrlPasswordMatch;
  r.push_back(R("url-userinfo-token", "api_token", S, {{"://", UserinfoAhead}}, R"([A-Za-z][A-Za-z0-9+.\-]*://([A-Za-z0-9_\-]{20,})@)",
                Entropic, 1));
  r.back().candidates = UrlStarts;
  r.back().anchored = UrlTokenMatch;
  r.push_back(R("url-userinfo-user", "username", I, {{"://", UserinfoAhead}}, R"([A-Za-z][A-Za-z0-9+.\-]*://([^\s:/@'"]+):[^\s@/'"]+@)",
                UserCheck));
  r.back().candidates = UrlStarts;
  r.back().anchored = UrlUserMatch;
  r.push_back(R("url-host-after-userinfo", "hostname", I, {{"://", UserinfoAhead}},
                R"([A-Za-z][A-Za-z0-9+.\-]*://[^\s/@'"]*@([A-Za-z0-9][A-Za-z0-9.\-]*[A-Za-z0-9]))", UrlHostCheck));
  r.back().candidates = UrlStarts;
  r.back().anchored = UrlHostMatch;
  // base64 wrappers: decoded and searched again (Basic auth, Secret data:, dockerconfigjson auth).
  Rule b64 = R("base64-value", "encoded_secret", S, {}, R"([:=][ \t]*["']?([A-Za-z0-9+/_\-]{12,}={0,2}))", Base64Shape, 2);
  b64.base64_candidate = true;
  b64.candidates = Base64Starts;
  b64.anchored = Base64Match;
  r.push_back(b64);

  // ---------------------------------------------------------------- identifiers
  r.push_back(R("email", "email", I, {},
                R"([A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9][A-Za-z0-9\-]*(?:\.[A-Za-z0-9][A-Za-z0-9\-]*)*\.[A-Za-z]{2,})",
                NotAfterWord));
  r.back().candidates = EmailStarts;
  r.push_back(R("email-urlencoded", "email", I, {"%40"},
                R"([A-Za-z0-9][A-Za-z0-9._+\-]*%40[A-Za-z0-9][A-Za-z0-9\-]*(?:\.[A-Za-z0-9][A-Za-z0-9\-]*)*\.[A-Za-z]{2,})",
                NotAfterWord));
  r.push_back(R("ipv4", "ip", I, {},
                R"((?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3})",
                IPv4Check));
  r.back().candidates = IPv4Starts;
  r.back().anchored = IPv4Match;
  r.push_back(R("ipv6", "ip", I, {},
                R"((?i)(?:[0-9a-f]{0,4}:){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9a-f]{1,4})?)", IPv6Check));
  r.back().candidates = IPv6Starts;
  r.back().anchored = IPv6Match;
  r.push_back(R("mac", "mac", I, {},
                R"((?i)[0-9a-f]{2}(?::[0-9a-f]{2}){5}|[0-9a-f]{2}(?:-[0-9a-f]{2}){5}|[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4})",
                MacCheck));
  r.back().candidates = MacStarts;
  std::string zone_alt = "internal|corp|local|lan|home\\.arpa|intranet|private";
  std::vector<std::string> zone_triggers = {".internal", ".corp", ".local", ".lan", ".home.arpa", ".intranet", ".private"};
  for (const std::string& z : zones) {
    zone_alt += "|" + RE2::QuoteMeta(z);
    zone_triggers.push_back(TriggerLiteral("." + z));
  }
  r.push_back(R("internal-hostname", "hostname", I, Folded(zone_triggers),
                "(?i)(?:[a-z0-9][a-z0-9\\-]*\\.)+(?:" + zone_alt + ")", HostCheck));
  if (zones.empty()) r.back().candidates = InternalHostStarts;  // configured zones: RE2 alone
  r.push_back(R("mail-client-hostname", "hostname", I, {"client=", "from "},
                R"((?:client=|from )([A-Za-z0-9][A-Za-z0-9\-]*(?:\.[A-Za-z0-9][A-Za-z0-9\-]*)+)\[)",
                UrlHostCheck));
  StartsAtTrigger(r);
  r.push_back(R("hosts-file-name", "hostname", I, {{"^[0-9]", HostsLineAhead}},
                R"((?m)^(?:[0-9]{1,3}\.){3}[0-9]{1,3}[ \t]+([A-Za-z0-9][A-Za-z0-9.\-]*))", HostsFileLine));
  StartsAtTrigger(r);
  r.push_back(R("anklume-bridge", "network", I, {"net-"}, R"((net-[a-z0-9][a-z0-9\-]*))", NotAfterWord));
  StartsAtTrigger(r);
  r.push_back(R("incus-list-instance", "instance", I, {"RUNNING", "STOPPED", "FROZEN", "ERROR"},
                R"(\|[ \t]*([A-Za-z0-9][A-Za-z0-9\-]*)[ \t]*\|[ \t]*(?:RUNNING|STOPPED|FROZEN|ERROR)[ \t]*\|)"));
  r.push_back(R("incus-info-name", "instance", I, {"^Name:"}, R"((?m)^Name:[ \t]+([A-Za-z0-9][A-Za-z0-9\-]*)$)"));
  StartsAtTrigger(r);
  r.push_back(R("ansible-inventory-host", "instance", I, {"ansible_"},
                R"((?m)^([A-Za-z0-9][A-Za-z0-9.\-]*)[ \t]+ansible_)",
                HostsFileName));
  r.push_back(R("gcp-project-id", "project", I, {"\"project_id\""}, R"re("project_id"[ \t]*:[ \t]*"([^"\n]+)")re"));
  StartsAtTrigger(r);
  Rule runner = R("gitlab-runner-name", "instance", I, {"\\[\\[runners\\]\\]"}, R"re(\[\[runners\]\][ \t]*\r?\n[ \t]*name[ \t]*=[ \t]*"([^"\n]+)")re");
  runner.multiline = true;
  runner.starts_at_trigger = true;
  r.push_back(runner);
  Rule ssid = R("wifi-ssid", "ssid", I, {"access-points:"}, R"re(access-points:[ \t]*\r?\n[ \t]*"([^"\n]+)"[ \t]*:)re");
  ssid.multiline = true;
  ssid.starts_at_trigger = true;
  r.push_back(ssid);
  r.push_back(R("login-user", "username", I, {"Accepted ", "Failed "},
                R"((?:Accepted|Failed) [a-z\-/]+ for (?:invalid user )?([A-Za-z0-9._\-]+) from)", UserCheck));
  StartsAtTrigger(r);
  r.push_back(R("session-user", "username", I, {"session opened for user", "session closed for user"},
                R"(session (?:opened|closed) for user ([A-Za-z0-9._\-]+))", UserCheck));
  StartsAtTrigger(r);
  r.push_back(R("home-dir-user", "username", I, {"/home/"}, R"(/home/([a-z_][a-z0-9._\-]*))", UserCheck));
  StartsAtTrigger(r);
  std::vector<Trigger> env_users;  // a match starts at the blank or ',' before the name, or at a line start
  for (const char* name : {"USER", "LOGNAME", "USERNAME", "ansible_user", "username", "user"}) {
    env_users.emplace_back(std::string("^") + name + "=", false);
    env_users.emplace_back(std::string("[\\s,]") + name + "=", false);
  }
  r.push_back(R("env-user", "username", I, env_users,
                R"((?m)(?:^|[\s,])(?:USER|LOGNAME|USERNAME|ansible_user|username|user)=([A-Za-z0-9._\-]+))", UserCheck));
  StartsAtTrigger(r);
  r.push_back(R("sudo-user", "username", I, {"sudo:"}, R"(sudo:[ \t]+([A-Za-z0-9._\-]+)[ \t]+:)", UserCheck));
  StartsAtTrigger(r);
  r.push_back(R("shadow-user", "username", I, {":$"}, R"((?m)^([a-z_][a-z0-9_\-]*):\$)", UserCheck));
  // Person names in known contexts: commit trailers, "Name <email>", log fields, tables of people.
  // kName is \p{Lu}[\p{L}'’\-]+(?:[ ]\p{Lu}[\p{L}'’\-]+){1,3}, held to it by WholeName/LeadingName.
  const std::string kUpper = R"([A-Z\x{80}-\x{10FFFF}])", kTail = R"([A-Za-z\x{80}-\x{10FFFF}'\-]+)";
  const std::string kName = kUpper + kTail + "(?:[ ]" + kUpper + kTail + "){1,3}";
  r.push_back(R("git-person", "person", I,
                {"Author", "Commit", "Reported-by", "Co-authored-by", "Signed-off-by", "Reviewed-by", "Acked-by",
                 "Tested-by", "Suggested-by", "Helped-by"},
                "(?:Author|Commit|Committer|Reported-by|Co-authored-by|Signed-off-by|Reviewed-by|Acked-by|Tested-by|Suggested-by|Helped-by):[ \\t]+(" + kName + ")[ \\t]+<",
                WholeName));
  StartsAtTrigger(r);
  r.push_back(R("shortlog-person", "person", I, {"[0-9]\\t"}, "(?m)^[ \\t]*[0-9]+\\t(" + kName + ")(?:[ \\t]+<|$)",
                WholeName));
  r.push_back(R("git-config-name", "person", I, {"user.name="}, "user\\.name=(" + kName + ")", LeadingName));
  StartsAtTrigger(r);
  r.push_back(R("field-person", "person", I,
                {"name=", "holder=", "full_name=", "fullname=", "owner=", "customer=", "customer_name="},
                "(?:name|holder|full_name|fullname|owner|customer|customer_name)=[\"'](" + kName + ")[\"']", WholeName));
  StartsAtTrigger(r);
  r.push_back(R("person-before-email", "person", I, {{"[ \\t][<(]", AddressAhead}}, "(" + kName + ")[ \\t]+[<(][^>)\\s]+@",
                WholeName));
  r.push_back(R("table-person", "person", I, {{"@", TableLine}}, "\\|[ \\t]*(" + kName + ")[ \\t]+\\|",
                [](std::string_view t, size_t* b, size_t* e) { return WholeName(t, b, e) && NameBeforeEmail(t, b, e); }));
  r.push_back(R("phone", "phone", I, {},
                R"((?:\+[0-9]{1,3}[ .\-]?(?:\(0\)[ .\-]?)?(?:\([0-9]{1,4}\)[ .\-]?)?[0-9]{1,4}(?:[ .\-]?[0-9]{2,4}){1,5}|0[1-9](?:[ .\-]?[0-9]{2}){4}))",
                PhoneCheck));
  r.back().candidates = PhoneStarts;
  r.back().anchored = PhoneMatch;
  // No trigger: the capital-digit pair is everywhere in timestamps; the finder skips them faster.
  r.push_back(R("iban", "iban", I, {},
                R"([A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?)", IbanCheck));
  r.back().candidates = IbanStarts;
  // No trigger: digits are everywhere, and the finder skips them as fast as a trigger would.
  r.push_back(R("payment-card", "card", I, {},
                R"([0-9](?:[ \-]?[0-9]){12,18})", CardCheck));
  r.back().candidates = CardStarts;
  r.back().anchored = CardMatch;
  return r;
}

}  // namespace warden::anonymizer
