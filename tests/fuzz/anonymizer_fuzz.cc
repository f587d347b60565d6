// libFuzzer target for the layer-1 engine: any bytes, no crash, no UB, no
// out-of-range span, and a rewrite that never leaves a secret span's text.
#include <cstdint>
#include <cstdlib>
#include <string>

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
  for (const auto& span : out.spans) {
    if (span.kind != warden::anonymizer::Kind::kSecret || span.length() < 16) continue;
    std::string secret = text.substr(span.begin, span.length());
    // Text that already holds a placeholder can be rebuilt by other replacements; skip it.
    if (secret.find('[') != std::string::npos) continue;
    if (out.text.find(secret) != std::string::npos && text.find(secret) == text.rfind(secret)) std::abort();
  }
  std::string arg(text.substr(0, 256));
  (void)warden::anonymizer::Detokenize(&arg, tokens);
  return 0;
}
