// anonymizer/checks.h: small validators the layer-1 rules use where a regular
// expression cannot decide (checksums, entropy, encodings, placeholders).
// All take untrusted text and never allocate more than their input's size.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace warden::anonymizer {

// LuhnValid: the payment-card checksum over the digits of `s` (separators ignored).
bool LuhnValid(std::string_view s);
// IbanValid: ISO 13616 mod-97 check over `s` (spaces ignored), with a plausible length.
bool IbanValid(std::string_view s);
// ShannonEntropy in bits per character.
double ShannonEntropy(std::string_view s);
// CharClasses counts which of lower, upper, digit, other occur (0..4).
int CharClasses(std::string_view s);
// Base64Decode decodes standard or URL-safe base64 (padding optional); nullopt if not base64.
std::optional<std::string> Base64Decode(std::string_view s);
// MostlyPrintable: at least 90% printable ASCII or UTF-8 text, and no NUL.
bool MostlyPrintable(std::string_view s);
// IsPlaceholderValue: values that are not secrets (changeme, xxxx, ${VAR}, <your-key>,
// var.x, os.environ[...], null, a path, a URL without credentials...). Redacting
// them only hides useful context.
bool IsPlaceholderValue(std::string_view v);
// Byte classes the finders test at nearly every byte they look at: one load
// from a table made at compile time from the definitions below, where the
// definitions themselves are a chain of compares and branches.
namespace byte_class {
constexpr bool Digit(unsigned char c) { return c >= '0' && c <= '9'; }
constexpr bool Alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool Alnum(unsigned char c) { return Digit(c) || Alpha(c); }
constexpr bool Hex(unsigned char c) { return Digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
constexpr bool Word(unsigned char c) { return Alnum(c) || c == '_'; }
enum : uint16_t {
  kDigit = 1, kHex = 2, kAlnum = 4, kWord = 8,
  kBase64 = 16,      // [A-Za-z0-9+/_-]: standard and URL-safe alphabets
  kToken = 32,       // [A-Za-z0-9_+/=-]
  kHost = 64,        // [A-Za-z0-9_.-]
  kKeyTail = 128,    // [A-Za-z0-9_.-] (a key name's run)
  kEmailLocal = 256, // [A-Za-z0-9._%+-]
  kScheme = 512,     // [A-Za-z0-9+.-]
  kLabel = 1024,     // [A-Za-z0-9-] and any byte >= 0x80
};
constexpr uint16_t Of(unsigned char c) {
  uint16_t k = 0;
  if (Digit(c)) k |= kDigit;
  if (Hex(c)) k |= kHex;
  if (Alnum(c)) k |= kAlnum;
  if (Word(c)) k |= kWord;
  if (Alnum(c) || c == '+' || c == '/' || c == '_' || c == '-') k |= kBase64;
  if (Word(c) || c == '-' || c == '+' || c == '/' || c == '=') k |= kToken;
  if (Word(c) || c == '-' || c == '.') k |= kHost;
  if (Alnum(c) || c == '_' || c == '.' || c == '-') k |= kKeyTail;
  if (Alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-') k |= kEmailLocal;
  if (Alnum(c) || c == '+' || c == '.' || c == '-') k |= kScheme;
  if (Alnum(c) || c == '-' || c >= 0x80) k |= kLabel;
  return k;
}
struct Table {
  uint16_t of[256];
  constexpr Table() : of() {
    for (int c = 0; c < 256; ++c) of[c] = Of(static_cast<unsigned char>(c));
  }
};
inline constexpr Table kTable;
inline bool Is(char c, uint16_t k) { return kTable.of[static_cast<unsigned char>(c)] & k; }
}  // namespace byte_class

// IsWordByte: [A-Za-z0-9_].
inline bool IsWordByte(char c) { return byte_class::Is(c, byte_class::kWord); }
// IsUnicodeUpper / IsUnicodeLetter: RE2's \p{Lu} and \p{L}, without compiling them.
bool IsUnicodeUpper(char32_t c);
bool IsUnicodeLetter(char32_t c);
// DecodeUtf8 reads the code point at s[i]: its length in bytes, or 0 when the
// bytes there are not well-formed UTF-8.
size_t DecodeUtf8(std::string_view s, size_t i, char32_t* c);
// LowerAscii: 'A'-'Z' lower-cased, every other byte as it is (branch-free, so loops over it vectorize).
inline char LowerAscii(char c) {
  return static_cast<char>(c | (static_cast<unsigned char>(c - 'A') < 26 ? 0x20 : 0));
}
// Lower returns an ASCII-lower-cased copy.
std::string Lower(std::string_view s);
// LowerView: an ASCII-lower-cased copy of `s`, on the stack when it is short
// (for the checks that run on every candidate). Not copyable: view() points into it.
class LowerView {
 public:
  explicit LowerView(std::string_view s) {
    if (s.size() <= sizeof buf_) {
      for (size_t i = 0; i < s.size(); ++i) buf_[i] = LowerAscii(s[i]);
      view_ = std::string_view(buf_, s.size());
    } else {
      heap_ = Lower(s);
      view_ = heap_;
    }
  }
  LowerView(const LowerView&) = delete;
  LowerView& operator=(const LowerView&) = delete;
  std::string_view view() const { return view_; }

 private:
  char buf_[256];
  std::string heap_;
  std::string_view view_;
};

}  // namespace warden::anonymizer
