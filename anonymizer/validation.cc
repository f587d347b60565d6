#include "anonymizer/validation.h"

#include <re2/re2.h>

#include <bitset>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "anonymizer/checks.h"
#include "anonymizer/layer2.h"

namespace warden::anonymizer {

namespace {

constexpr uint64_t kBase = 1099511628211ULL;  // rolling hash multiplier (mod 2^64)

bool Varied(std::string_view w) {
  std::bitset<256> seen;
  for (unsigned char c : w) seen.set(c);
  return seen.count() >= 8;
}

// DecodeRun: a base64 run the pattern below matched, its bytes up to the first
// '='. A last character that completes no byte (a length of 4k+1) is dropped, so
// a stray character after encoded data does not hide it.
std::string DecodeRun(std::string_view s) {
  s = s.substr(0, s.find('='));
  if (s.size() % 4 == 1) s.remove_suffix(1);
  return Base64Decode(s).value_or("");
}

std::string DecodeHex(std::string_view s) {
  if (s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.remove_prefix(2);
  std::string out;
  auto nib = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (std::tolower(c) - 'a' + 10); };
  for (size_t i = 0; i + 1 < s.size(); i += 2) out.push_back(static_cast<char>(nib(s[i]) * 16 + nib(s[i + 1])));
  return out;
}

}  // namespace

bool CopiesRun(std::string_view answer, std::string_view input, size_t L) {
  if (L == 0 || answer.size() < L || input.size() < L) return false;
  uint64_t top = 1;
  for (size_t i = 1; i < L; ++i) top *= kBase;
  std::unordered_multimap<uint64_t, size_t> windows;
  uint64_t h = 0;
  for (size_t i = 0; i < answer.size(); ++i) {
    if (i >= L) h -= top * static_cast<unsigned char>(answer[i - L]);
    h = h * kBase + static_cast<unsigned char>(answer[i]);
    if (i + 1 >= L) windows.emplace(h, i + 1 - L);
  }
  h = 0;
  for (size_t i = 0; i < input.size(); ++i) {
    if (i >= L) h -= top * static_cast<unsigned char>(input[i - L]);
    h = h * kBase + static_cast<unsigned char>(input[i]);
    if (i + 1 < L) continue;
    auto [lo, hi] = windows.equal_range(h);
    for (auto it = lo; it != hi; ++it) {
      std::string_view w = input.substr(i + 1 - L, L);
      if (std::memcmp(w.data(), answer.data() + it->second, L) == 0 && Varied(w)) return true;
    }
  }
  return false;
}

bool DecodesToInput(std::string_view answer, std::string_view input) {
  static const RE2 kB64(R"(([A-Za-z0-9+/_-]{8,}={0,2}))");
  static const RE2 kHex(R"(((?:0[xX])?[0-9A-Fa-f]{12,}))");
  auto hit = [&](const std::string& decoded) {
    return decoded.size() >= 6 && input.find(decoded) != std::string_view::npos;
  };
  re2::StringPiece in(answer.data(), answer.size()), m;
  for (const RE2* re : {&kB64, &kHex}) {
    size_t pos = 0;
    while (pos < answer.size() && re->Match(in, pos, in.size(), RE2::UNANCHORED, &m, 1)) {
      std::string_view run(m.data(), m.size());
      if (re == &kB64 ? hit(DecodeRun(run)) : hit(DecodeHex(run))) return true;
      pos = static_cast<size_t>(m.data() - in.data()) + std::max<size_t>(m.size(), 1);
    }
  }
  return false;
}

AnswerCheck ValidateAnswer(std::string_view answer, std::string_view raw_input, const AnswerLimits& limits,
                           const Anonymizer& layer1) {
  if (std::string p = InjectionPhrase(answer); !p.empty())
    return {false, "injection", "the answer holds an instruction-like phrase (\"" + p + "\")"};
  if (answer.size() > limits.max_answer_bytes)
    return {false, "length",
            "the answer is " + std::to_string(answer.size()) + " bytes, more than the " +
                std::to_string(limits.max_answer_bytes) + " allowed for this question"};
  if (CopiesRun(answer, raw_input, limits.max_verbatim_bytes))
    return {false, "verbatim",
            "the answer copies " + std::to_string(limits.max_verbatim_bytes) +
                " or more bytes of the raw input verbatim (llm.max_verbatim_bytes)"};
  if (DecodesToInput(answer, raw_input))
    return {false, "encoded", "the answer carries base64 or hex that decodes to raw input data"};
  TokenMap scratch;
  Sanitized s = layer1.Anonymize(answer, scratch);
  for (const Span& sp : s.spans)
    if (sp.kind == Kind::kSecret) return {false, "sensitive", "the answer holds a secret (" + std::string(sp.category) + ")"};
  return {};
}

}  // namespace warden::anonymizer
