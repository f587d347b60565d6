#include "anonymizer/triggers.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <string_view>

namespace warden::anonymizer {
namespace {

// How common a byte is in tool output, per thousand bytes (measured on the
// corpus; lower-case letters split by their English frequencies). It only
// chooses where a trigger is anchored: a wrong guess costs time, never a finding.
double Weight(unsigned char c) {
  static const double kLower[26] = {8.2, 1.5, 2.8, 4.3, 12.7, 2.2, 2.0, 6.1, 7.0, 0.2, 0.8, 4.0, 2.4,
                                    6.7, 7.5, 1.9, 0.1, 6.0, 6.3, 9.1, 2.8, 1.0, 2.4, 0.2, 2.0, 0.1};
  if (c >= 'a' && c <= 'z') return 4.16 * kLower[c - 'a'];
  if (c >= 'A' && c <= 'Z') return 6.3;
  if (c >= '0' && c <= '9') return 14.8;
  switch (c) {
    case ' ': return 114;
    case '-': return 34;
    case ':': return 19;
    case '\n': return 17.5;
    case '.': return 16;
    case '/': return 13;
    case '"': return 10;
    case '_': return 7.6;
    case '=': return 6.4;
    case '+': return 5.5;
    case '|': return 3.9;
    default: return c >= 0x80 ? 0.05 : 1.5;
  }
}

double Weight(const std::bitset<256>& set) {
  double w = 0;
  for (size_t c = set._Find_first(); c < 256; c = set._Find_next(c)) w += Weight(static_cast<unsigned char>(c));
  return w;
}

// Byte kinds, and how much more (or less) often a kind follows another in tool
// output than their frequencies alone say (measured on the corpus): digits
// follow digits, words end in blanks, '\n' starts a blank or a capital.
enum Kind { kDigit, kLower, kUpper, kBlank, kNewline, kOther };
int KindOf(unsigned char c) {
  if (c >= '0' && c <= '9') return kDigit;
  if (c >= 'a' && c <= 'z') return kLower;
  if (c >= 'A' && c <= 'Z') return kUpper;
  if (c == ' ' || c == '\t') return kBlank;
  if (c == '\n') return kNewline;
  return kOther;
}
constexpr double kFollows[6][6] = {
    // next: digit lower upper blank newline other
    {3.01, 0.41, 0.70, 0.59, 1.07, 1.30},  // after a digit
    {0.44, 1.62, 0.62, 0.40, 0.64, 0.72},  // after a lower-case letter
    {0.71, 0.72, 3.06, 0.22, 0.48, 0.46},  // after an upper-case letter
    {0.50, 0.48, 0.44, 4.40, 0.01, 1.07},  // after a blank
    {0.58, 0.49, 1.13, 2.54, 3.92, 1.17},  // after a newline
    {1.34, 0.59, 0.49, 1.15, 3.04, 2.05},  // after anything else
};

double PairWeight(const std::bitset<256>& a, const std::bitset<256>& b) {
  static const std::bitset<65536> kCommon = [] {
    std::bitset<65536> common;
    for (std::string_view c : {"th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ti", "es", "or", "te", "of",
                               "ed", "is", "it", "al", "ar", "st", "to", "nt", "ng", "se", "ha", "as", "ou", "io", "le",
                               "ve", "co", "me", "de", "hi", "ri", "ro", "ic", "ne", "ea", "ra", "ce", "li", "ch", "ll",
                               "be", "ma", "si", "om", "ur", "ck", "us", "ke", "fo", "fr", "pi", "ss", "ee", "oo", "ot"})
      common.set(static_cast<unsigned char>(c[0]) << 8 | static_cast<unsigned char>(c[1]));
    return common;
  }();
  double w = 0;
  for (size_t x = a._Find_first(); x < 256; x = a._Find_next(x)) {
    for (size_t y = b._Find_first(); y < 256; y = b._Find_next(y)) {
      auto cx = static_cast<unsigned char>(x), cy = static_cast<unsigned char>(y);
      double p = Weight(cx) * Weight(cy) * kFollows[KindOf(cx)][KindOf(cy)];
      if (kCommon[static_cast<unsigned char>(cx | 0x20) << 8 | static_cast<unsigned char>(cy | 0x20)]) p *= 5;
      w += p;
    }
  }
  return w;
}

// Parse a trigger pattern into byte sets; false on a syntax error.
bool Parse(std::string_view p, bool* line_start, std::vector<std::bitset<256>>* out, std::string* error) {
  size_t i = 0;
  *line_start = !p.empty() && p[0] == '^';
  if (*line_start) ++i;
  auto escaped = [](char c) -> unsigned char { return c == 't' ? '\t' : c == 'n' ? '\n' : c == 'r' ? '\r' : c; };
  for (; i < p.size(); ++i) {
    std::bitset<256> set;
    if (p[i] == '\\') {
      if (++i == p.size()) return *error = "a trailing backslash", false;
      set.set(escaped(p[i]));
    } else if (p[i] == '[') {
      size_t close = p.find(']', i + 1);
      if (close == std::string_view::npos || close == i + 1) return *error = "an unclosed or empty byte class", false;
      for (size_t j = i + 1; j < close; ++j) {
        if (p[j] == '\\' && j + 1 < close) {
          ++j;
          if (p[j] == 's') {
            for (char s : std::string_view(" \t\n\r\f\v")) set.set(static_cast<unsigned char>(s));
          } else {
            set.set(escaped(p[j]));
          }
        } else if (j + 2 < close && p[j + 1] == '-') {
          for (int c = static_cast<unsigned char>(p[j]); c <= static_cast<unsigned char>(p[j + 2]); ++c)
            set.set(static_cast<size_t>(c));
          j += 2;
        } else {
          set.set(static_cast<unsigned char>(p[j]));
        }
      }
      i = close;
    } else if (p[i] == ']') {
      return *error = "a ']' outside a class", false;
    } else {
      set.set(static_cast<unsigned char>(p[i]));
    }
    out->push_back(set);
  }
  if (out->empty()) return *error = "an empty trigger", false;
  return true;
}

std::bitset<256> Fold(std::bitset<256> set) {
  for (int c = 'a'; c <= 'z'; ++c)
    if (set[static_cast<size_t>(c)] || set[static_cast<size_t>(c - 32)]) {
      set.set(static_cast<size_t>(c));
      set.set(static_cast<size_t>(c - 32));
    }
  return set;
}

// With this many anchor pairs or fewer (a learned dictionary's), FewAvx512
// compares each of them, 64 positions a turn.
constexpr size_t kFewPairs = 24;

// Every position in [0, n - 1) where one of the k pairs is, 64 at a time
// (then the positions before n - 1 the vectors did not reach), ascending.
__attribute__((target("avx512f,avx512bw"))) void FewAvx512(const uint16_t* pairs, size_t k, const unsigned char* d,
                                                             size_t n, std::vector<uint32_t>* at) {
  __m512i first[kFewPairs], second[kFewPairs];
  for (size_t j = 0; j < k; ++j) {
    first[j] = _mm512_set1_epi8(static_cast<char>(pairs[j] & 0xFF));
    second[j] = _mm512_set1_epi8(static_cast<char>(pairs[j] >> 8));
  }
  size_t i = 0;
  for (; i + 65 <= n; i += 64) {
    __m512i a = _mm512_loadu_si512(d + i), b = _mm512_loadu_si512(d + i + 1);
    __mmask64 m = 0;
    for (size_t j = 0; j < k; ++j) m |= _mm512_cmpeq_epi8_mask(a, first[j]) & _mm512_cmpeq_epi8_mask(b, second[j]);
    for (; m != 0; m &= m - 1) at->push_back(static_cast<uint32_t>(i + static_cast<size_t>(__builtin_ctzll(m))));
  }
  for (; i + 1 < n; ++i)
    for (size_t j = 0; j < k; ++j)
      if (d[i] == (pairs[j] & 0xFF) && d[i + 1] == (pairs[j] >> 8)) {
        at->push_back(static_cast<uint32_t>(i));
        break;
      }
}

bool HaveAvx512() {
  static const bool have = [] {
    __builtin_cpu_init();  // may run before libgcc's own constructor has
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  }();
  return have;
}

}  // namespace

bool TriggerGate::use_vectors_ = true;

void TriggerGate::UseVectors(bool use) { use_vectors_ = use; }

bool TriggerGate::FewAnchors(const unsigned char* d, size_t n, std::vector<uint32_t>* at) const {
  if (few_.empty() || !use_vectors_ || !HaveAvx512()) return false;
  at->clear();
  FewAvx512(few_.data(), few_.size(), d, n, at);
  // The last byte pairs with the 0 that stands for the byte after the text.
  if (n > 0 && Anchored(d[n - 1])) at->push_back(static_cast<uint32_t>(n - 1));
  return true;
}

int TriggerGate::Add(const Trigger& trigger, std::string* error) {
  const auto key = std::make_tuple(trigger.pattern, trigger.literal, trigger.fold, trigger.test);
  if (auto it = ids_of_.find(key); it != ids_of_.end()) return it->second;  // shared by several rules: scanned once
  bool line_start = false;
  std::vector<std::bitset<256>> bytes;
  if (trigger.literal) {
    bytes.reserve(trigger.pattern.size());
    for (char c : trigger.pattern) bytes.emplace_back().set(static_cast<unsigned char>(c));
    if (bytes.empty()) return *error = "an empty trigger", -1;
  } else if (!Parse(trigger.pattern, &line_start, &bytes, error)) {
    return -1;
  }
  // Forms: with case folded, every 's' or 'k' may also be RE2's other fold of
  // it, U+017F (C5 BF) or U+212A (E2 84 AA): one form per combination.
  std::vector<std::vector<std::bitset<256>>> forms(1);
  forms[0].reserve(bytes.size() + (line_start ? 1 : 0));
  for (const std::bitset<256>& set : bytes) {
    std::vector<std::vector<std::bitset<256>>> next;
    for (auto& f : forms) {
      if (!trigger.fold) {
        f.push_back(set);
        continue;
      }
      std::vector<std::bitset<256>> plain = f;
      plain.push_back(Fold(set));
      next.push_back(std::move(plain));
      auto alternative = [&](std::initializer_list<unsigned char> seq) {
        std::vector<std::bitset<256>> g = f;
        for (unsigned char c : seq) g.emplace_back().set(c);
        next.push_back(std::move(g));
      };
      if (set['s'] || set['S']) alternative({0xC5, 0xBF});
      if (set['k'] || set['K']) alternative({0xE2, 0x84, 0xAA});
    }
    if (trigger.fold) forms = std::move(next);
    if (forms.size() > 64) return *error = "folds into more than 64 forms", -1;
  }
  if (forms_.size() + forms.size() > 65535) return *error = "too many triggers", -1;
  int id = ids_++;
  ids_of_.emplace(key, id);
  for (auto& f : forms) {
    Form form;
    if (line_start) {
      std::bitset<256> nl;
      nl.set('\n');
      f.insert(f.begin(), nl);
    }
    form.bytes = std::move(f);
    form.line_start = line_start;
    form.test = trigger.test;
    form.id = id;
    forms_.push_back(std::move(form));
  }
  return id;
}

void TriggerGate::Finish() {
  // Anchor each form on its rarest adjacent pair (a one-byte form: its byte and any next byte).
  std::vector<std::pair<uint16_t, uint16_t>> entries;  // (pair, form)
  line_starts_.clear();
  for (size_t i = 0; i < forms_.size(); ++i) {
    Form& f = forms_[i];
    if (f.line_start) line_starts_.push_back(static_cast<uint16_t>(i));
    std::bitset<256> any;
    any.set();
    double best = 0;
    for (size_t k = 0; k < f.bytes.size(); ++k) {
      if (k + 1 == f.bytes.size() && k > 0) break;
      double w = k + 1 < f.bytes.size() ? PairWeight(f.bytes[k], f.bytes[k + 1]) : Weight(f.bytes[k]) * 1000.0;
      if (k == 0 || w < best) {
        best = w;
        f.anchor = k;
      }
    }
    const std::bitset<256>& a = f.bytes[f.anchor];
    const std::bitset<256>& b = f.anchor + 1 < f.bytes.size() ? f.bytes[f.anchor + 1] : any;
    for (size_t x = a._Find_first(); x < 256; x = a._Find_next(x))
      for (size_t y = b._Find_first(); y < 256; y = b._Find_next(y))
        entries.emplace_back(static_cast<uint16_t>(x | y << 8), static_cast<uint16_t>(i));
  }
  std::sort(entries.begin(), entries.end());
  entries.erase(std::unique(entries.begin(), entries.end()), entries.end());
  few_.clear();  // the distinct anchor pairs (entries are sorted by pair)
  for (const auto& e : entries)
    if (few_.empty() || few_.back() != e.first) few_.push_back(e.first);
  pairs_.fill(0);
  unsigned buckets = 64;
  while (buckets < 4096 && buckets < 2 * few_.size()) buckets *= 2;
  bucket_mask_ = buckets - 1;
  first_.assign(buckets + 1, 0);
  for (const auto& [pair, form] : entries) {
    pairs_[pair >> 6] |= uint64_t{1} << (pair & 63);
    ++first_[Bucket(pair) + 1];
  }
  for (size_t h = 1; h < first_.size(); ++h) first_[h] += first_[h - 1];
  // Only anchors whose two bytes are real: a one-byte form's pair (its byte, any
  // byte) would make 256 pairs, beyond kFewPairs anyway.
  if (few_.size() > kFewPairs) few_.clear();
  entries_.assign(entries.size(), {});
  std::vector<uint32_t> fill(first_.begin(), first_.end() - 1);
  for (const auto& e : entries) entries_[fill[Bucket(e.first)]++] = e;  // pairs ascending, forms ascending within
}

}  // namespace warden::anonymizer
