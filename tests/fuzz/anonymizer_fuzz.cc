// libFuzzer target for the layer-1 engine: any bytes, no crash, no UB, no
// out-of-range span, and a rewrite that never leaves a secret span's text.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "anonymizer/anonymizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto anonymizer = warden::anonymizer::MakeDefaultAnonymizer();
  std::string text(reinterpret_cast<const char*>(data), size);
  warden::anonymizer::TokenMap tokens;
  warden::anonymizer::Sanitized out = anonymizer->Anonymize(text, tokens);
  size_t last_end = 0;
  for (const auto& span : out.spans) {
    if (span.begin < last_end || span.end > text.size() || span.end <= span.begin) std::abort();  // overlap or range
    last_end = span.end;
  }
  // The output cut at Warden's own placeholders and tokens ("[PASSWORD_REDACTED]",
  // "[IP_3]"): a secret that spells a placeholder's letters must not count as a leak.
  std::vector<std::string> segments(1);
  for (size_t i = 0; i < out.text.size(); ++i) {
    if (out.text[i] == '[') {
      size_t j = i + 1;
      while (j < out.text.size() && ((out.text[j] >= 'A' && out.text[j] <= 'Z') ||
                                     (out.text[j] >= '0' && out.text[j] <= '9') || out.text[j] == '_'))
        ++j;
      if (j < out.text.size() && out.text[j] == ']' && j > i + 1) {
        segments.emplace_back();
        i = j;
        continue;
      }
    }
    segments.back().push_back(out.text[i]);
  }
  for (const auto& span : out.spans) {
    if (span.kind != warden::anonymizer::Kind::kSecret || span.length() < 16) continue;
    std::string secret = text.substr(span.begin, span.length());
    // Text that already holds a placeholder can be rebuilt by other replacements; skip it.
    if (secret.find('[') != std::string::npos) continue;
    if (text.find(secret) != text.rfind(secret)) continue;  // the same text elsewhere may be unrelated context
    for (const std::string& segment : segments)
      if (segment.find(secret) != std::string::npos) std::abort();
  }
  std::string arg(text.substr(0, 256));
  (void)warden::anonymizer::Detokenize(&arg, tokens);
  return 0;
}
