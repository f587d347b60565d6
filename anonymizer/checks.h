// anonymizer/checks.h: small validators the layer-1 rules use where a regular
// expression cannot decide (checksums, entropy, encodings, placeholders).
// All take untrusted text and never allocate more than their input's size.
#pragma once

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
// IsWordByte: [A-Za-z0-9_].
inline bool IsWordByte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
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
