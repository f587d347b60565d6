#include "anonymizer/checks.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <cmath>

namespace warden::anonymizer {

using namespace std::string_view_literals;
namespace {

struct CodeRange {
  char32_t lo, hi;
};
#include "anonymizer/unicode_letters.inc"

template <size_t N>
bool InRanges(const CodeRange (&r)[N], char32_t c) {
  size_t lo = 0, hi = N;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (r[mid].hi < c) lo = mid + 1;
    else if (r[mid].lo > c) hi = mid;
    else return true;
  }
  return false;
}

}  // namespace

bool IsUnicodeUpper(char32_t c) {
  if (c < 0x80) return c >= 'A' && c <= 'Z';
  return InRanges(kUpperRanges, c);
}

bool IsUnicodeLetter(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
  return InRanges(kLetterRanges, c);
}

size_t DecodeUtf8(std::string_view s, size_t i, char32_t* c) {
  if (i >= s.size()) return 0;
  unsigned char b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) {
    *c = b;
    return 1;
  }
  size_t n = (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  char32_t v = b & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    unsigned char x = static_cast<unsigned char>(s[i + k]);
    if ((x & 0xC0) != 0x80) return 0;
    v = (v << 6) | (x & 0x3F);
  }
  static constexpr char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (v < kMin[n] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;  // overlong, too big, surrogate
  *c = v;
  return n;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = LowerAscii(c);
  return out;
}

bool LuhnValid(std::string_view s) {
  int sum = 0, n = 0;
  for (size_t i = s.size(); i-- > 0;) {
    char c = s[i];
    if (c == ' ' || c == '-') continue;
    if (c < '0' || c > '9') return false;
    int d = c - '0';
    if (n++ % 2 == 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return n >= 12 && sum % 10 == 0;
}

bool IbanValid(std::string_view s) {
  std::string compact;
  for (char c : s)
    if (c != ' ') compact.push_back(c);
  if (compact.size() < 15 || compact.size() > 34) return false;
  std::string moved = compact.substr(4) + compact.substr(0, 4);
  int rem = 0;
  for (char c : moved) {
    int v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'A' && c <= 'Z') v = c - 'A' + 10;
    else return false;
    rem = v >= 10 ? (rem * 100 + v) % 97 : (rem * 10 + v) % 97;
  }
  return rem == 1;
}

double ShannonEntropy(std::string_view s) {
  if (s.empty()) return 0;
  if (s.size() <= 64) {
    // Short values (most): the bytes sorted give each byte's count in
    // ascending byte order, the order of the sum below, without clearing 256
    // counters: the same terms in the same order, so the same result to the bit.
    unsigned char b[64];
    std::memcpy(b, s.data(), s.size());
    std::sort(b, b + s.size());
    double term_of[65] = {};
    double h = 0;
    for (size_t i = 0; i < s.size();) {
      size_t j = i + 1;
      while (j < s.size() && b[j] == b[i]) ++j;
      size_t c = j - i;
      if (term_of[c] == 0.0) {
        double p = static_cast<double>(c) / s.size();
        term_of[c] = p * std::log2(p);
      }
      h -= term_of[c];
      i = j;
    }
    return h;
  }
  std::array<int, 256> counts{};
  uint64_t seen[4] = {};
  for (unsigned char c : s) {
    ++counts[c];
    seen[c >> 6] |= uint64_t{1} << (c & 63);
  }
  // The bytes that occur, in ascending order (the order of the sum), and each
  // count's term once: the same operations on the same values as summing over
  // all 256 counts, so the same result to the bit.
  double term_of[33];  // the term for counts 1..32, filled on first use (0: not yet)
  std::fill(std::begin(term_of), std::end(term_of), 0.0);
  double h = 0;
  for (int w = 0; w < 4; ++w) {
    for (uint64_t bits = seen[w]; bits; bits &= bits - 1) {
      int c = counts[w * 64 + __builtin_ctzll(bits)];
      double term;
      if (c <= 32 && term_of[c] != 0.0) {
        term = term_of[c];
      } else {
        double p = static_cast<double>(c) / s.size();
        term = p * std::log2(p);
        if (c <= 32) term_of[c] = term;
      }
      h -= term;
    }
  }
  return h;
}

int CharClasses(std::string_view s) {
  unsigned seen = 0;  // lower, upper, digit, other
  for (size_t i = 0; i < s.size() && seen != 15; ++i) {
    char c = s[i];
    seen |= c >= 'a' && c <= 'z' ? 1u : c >= 'A' && c <= 'Z' ? 2u : c >= '0' && c <= '9' ? 4u : 8u;
  }
  return __builtin_popcount(seen);
}

std::optional<std::string> Base64Decode(std::string_view s) {
  // Standard and URL-safe alphabets at once; 64: not a base64 byte.
  static constexpr auto kValue = [] {
    std::array<unsigned char, 256> v{};
    v.fill(64);
    for (int i = 0; i < 26; ++i) {
      v['A' + i] = static_cast<unsigned char>(i);
      v['a' + i] = static_cast<unsigned char>(26 + i);
    }
    for (int i = 0; i < 10; ++i) v['0' + i] = static_cast<unsigned char>(52 + i);
    v['+'] = v['-'] = 62;
    v['/'] = v['_'] = 63;
    return v;
  }();
  while (!s.empty() && s.back() == '=') s.remove_suffix(1);
  if (s.size() % 4 == 1) return std::nullopt;
  std::string out(s.size() * 3 / 4, '\0');  // exactly the bytes the input holds
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    unsigned v = kValue[static_cast<unsigned char>(c)];
    if (v == 64) return std::nullopt;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  out.resize(o);
  return out;
}

bool MostlyPrintable(std::string_view s) {
  // Text, not bytes: valid UTF-8 and nearly all printable. Random bytes that
  // happen to decode from base64 fail this almost always.
  if (s.empty()) return false;
  size_t good = 0, i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;
    if (c < 0x80) {
      good += (c >= 0x20 && c < 0x7F) || c == '\n' || c == '\r' || c == '\t';
      ++i;
      continue;
    }
    size_t n = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    good += n;
    i += n;
  }
  return good * 100 >= s.size() * 95;
}

bool IsPlaceholderValue(std::string_view v) {
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v.empty()) return true;
  const LowerView lowered(v);  // this runs for every key = value candidate
  const std::string_view lower = lowered.view();
  static const char* kExact[] = {"changeme", "change_me", "change-me", "password", "passwd", "secret", "none",
                                 "null", "nil", "true", "false", "yes", "no", "example", "redacted", "str",
                                 "string", "bytes", "int", "required", "optional", "todo", "tbd", "test",
                                 "undefined", "empty", "default", "store", "disabled", "enabled"};
  if (lower.size() <= 9)  // the longest exact placeholder
    for (const char* p : kExact)
      if (lower == p) return true;
  char f = lower.front();
  if (f == '$' || f == '<' || f == '%' || f == '{' || f == '[' || f == '(') return true;  // ${V} <x> %s {{x}}
  if (f == '/' || lower.starts_with("~/"sv) || lower.starts_with("./"sv)) return true;    // a path
  if (lower.starts_with("http://"sv) || lower.starts_with("https://"sv)) return true;     // a URL, no userinfo
  if (lower.starts_with("your"sv) || lower.starts_with("xxx"sv) || lower.find("xxxxxx"sv) != std::string_view::npos ||
      lower.find("placeholder"sv) != std::string_view::npos || lower.find("example"sv) != std::string_view::npos)
    return true;
  if (lower.find_first_not_of('*') == std::string_view::npos || lower.find_first_not_of('x') == std::string_view::npos)
    return true;
  if (lower.find("_redacted]"sv) != std::string_view::npos) return true;
  // Code and references, not values: var.db_password, os.environ["X"], getenv("X"), process.env.X.
  if (lower.find('(') != std::string_view::npos || lower.find("environ"sv) != std::string_view::npos ||
      lower.starts_with("var."sv) || lower.starts_with("process.env"sv) || lower.starts_with("env."sv) ||
      lower.starts_with("vault:"sv) || lower.starts_with("secretref"sv))
    return true;
  // Short numbers are settings (lengths, TTLs, ports), not credentials.
  if (lower.size() < 6 && lower.find_first_not_of("0123456789") == std::string_view::npos) return true;
  return false;
}

}  // namespace warden::anonymizer
