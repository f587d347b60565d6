// anonymizer/triggers.h: the gate in front of the layer-1 rules (internal).
//
// A Trigger is something every finding of its rule contains: a short run of
// bytes or byte classes ("sk-", "gh[pousr]_", "[0-9]:AA"), optionally at a
// line start ("^Name:"), matched as written or with ASCII case folded, and
// optionally a further test of the text around it. The engine runs a rule only
// on the lines where one of its triggers occurs, so a trigger must occur
// wherever its rule finds something; one that occurs elsewhere costs time only.
// tests/unit/anonymizer_candidates_test.cc holds every rule's triggers to that.
//
// The TriggerGate finds every trigger in one pass: each trigger is anchored on
// the adjacent pair of its positions that is rarest in tool output; a bitmap
// over all 65,536 byte pairs says at which positions some trigger may occur,
// and only there are the triggers of that pair compared in full.
#pragma once

#include <array>
#include <bit>
#include <bitset>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace warden::anonymizer {

// TriggerTest: a further condition at the position where the trigger's bytes
// start (after the line start, for "^..." triggers). False: not a trigger here.
using TriggerTest = bool (*)(std::string_view text, size_t begin);

struct Trigger {
  // Syntax: bytes as written; "\\" escapes the next byte ("\\t", "\\n" are a
  // tab and a newline; "\\." a dot); "[...]" a class of bytes, with ranges
  // ("[a-f0-9]") and "\\s" for white space; a leading "^" a line start.
  Trigger(const char* bytes, TriggerTest also = nullptr) : pattern(bytes), test(also) {}
  Trigger(std::string bytes, bool folded) : pattern(std::move(bytes)), fold(folded) {}
  // Literal: these bytes exactly, no syntax (a dictionary term).
  static Trigger Literal(std::string bytes) {
    Trigger t(std::move(bytes), false);
    t.literal = true;
    return t;
  }
  std::string pattern;
  bool literal = false;
  // ASCII case folded, and RE2's case folds beyond ASCII: 's' also matches
  // U+017F and 'k' U+212A, as a case-insensitive pattern does.
  bool fold = false;
  TriggerTest test = nullptr;
};

static_assert(std::endian::native == std::endian::little, "TriggerGate::Scan reads byte pairs little-endian");

class TriggerGate {
 public:
  // Add returns the trigger's id (0, 1, ...; the same id for the same trigger
  // added again), or -1 with *error when the pattern does not parse or folds
  // into too many forms to scan for.
  int Add(const Trigger& trigger, std::string* error);
  // Finish indexes what was added; Scan needs it.
  void Finish();
  // Scan calls hit(id, begin) for every place a trigger occurs in `text`,
  // `begin` where its bytes start (for "^..." after the line start), in
  // ascending order of the byte each is anchored on (not quite of `begin`).
  // Before it compares a trigger in full it asks want(id, begin): false skips it
  // (the caller knows it already).
  template <class Want, class Hit>
  void Scan(std::string_view text, Want&& want, Hit&& hit) const;
  // Whether Scan may use AVX-512 when the CPU has it (a test turns it off, to
  // hold the plain scan to the same occurrences on this machine too).
  static void UseVectors(bool use);

 private:
  struct Form {
    std::vector<std::bitset<256>> bytes;  // bytes[0] is {'\n'} for a line start
    bool line_start = false;
    TriggerTest test = nullptr;
    int id = 0;
    size_t anchor = 0;  // the pair bytes[anchor], bytes[anchor + 1] (or bytes[0] and any byte)
  };
  static bool MatchesAt(const Form& f, std::string_view text, long start);
  // FewAnchors: with few anchor pairs (a dictionary's) and AVX-512, every position
  // of the text where one of them is, compared 64 positions at a time, into *at.
  // False when that path does not apply (the bitmap scan runs instead).
  bool FewAnchors(const unsigned char* d, size_t n, std::vector<uint32_t>* at) const;
  template <class Want, class Hit>
  void At(std::string_view text, size_t i, unsigned pair, Want& want, Hit& hit) const;

  std::vector<Form> forms_;
  int ids_ = 0;
  // Each trigger added once: (pattern, literal, fold, test) -> id.
  std::map<std::tuple<std::string, bool, bool, TriggerTest>, int> ids_of_;
  // Buckets: a power of two, at least twice the distinct anchor pairs (up to 4096):
  // a short text's dictionary is built for every call, and clears only what it uses.
  unsigned bucket_mask_ = 0;
  unsigned Bucket(unsigned pair) const { return (pair * 40503u >> 4) & bucket_mask_; }
  std::array<uint64_t, 1024> pairs_{};  // bit (a | b << 8): some form is anchored on the pair (a, b)
  // Whether some form is anchored on `pair` (the text's last byte pairs with 0).
  uint64_t Anchored(uint16_t pair) const { return pairs_[pair >> 6] >> (pair & 63) & 1; }
  // The forms anchored on each pair, by a hash of the pair: entries_[first_[h], first_[h + 1])
  // hold (pair, form) for every pair of hash h (a few; cheap to build for a short text's dictionary).
  std::vector<uint32_t> first_;
  std::vector<std::pair<uint16_t, uint16_t>> entries_;
  std::vector<uint16_t> line_starts_;   // forms to try at the start of the text
  static bool use_vectors_;
  std::vector<uint16_t> few_;           // the distinct anchor pairs, when there are few (kFewPairs in triggers.cc)
};

// Inline: it runs at every anchor pair the scan meets.
inline bool TriggerGate::MatchesAt(const Form& f, std::string_view text, long start) {
  const long n = static_cast<long>(text.size());
  const size_t len = f.bytes.size();
  if (start < -1 || start + static_cast<long>(len) > n || (start < 0 && !f.line_start)) return false;
  const std::bitset<256>* bytes = f.bytes.data();
  // The anchor pair is known to match: the bytes after it first (they differ most).
  for (size_t k = f.anchor + 2; k < len; ++k)
    if (!bytes[k][static_cast<unsigned char>(text[static_cast<size_t>(start + static_cast<long>(k))])]) return false;
  for (size_t k = 0; k < f.anchor; ++k) {
    long p = start + static_cast<long>(k);
    unsigned char c = p < 0 ? '\n' : static_cast<unsigned char>(text[static_cast<size_t>(p)]);  // before the text: a line start
    if (!bytes[k][c]) return false;
  }
  return !f.test || f.test(text, static_cast<size_t>(start + (f.line_start ? 1 : 0)));
}

template <class Want, class Hit>
void TriggerGate::At(std::string_view text, size_t i, unsigned pair, Want& want, Hit& hit) const {
  const unsigned h = Bucket(pair);
  for (uint32_t j = first_[h]; j < first_[h + 1]; ++j) {
    if (entries_[j].first != pair) continue;
    const Form& f = forms_[entries_[j].second];
    long start = static_cast<long>(i) - static_cast<long>(f.anchor);
    if (start < -1) continue;
    size_t begin = static_cast<size_t>(start + (f.line_start ? 1 : 0));
    if (want(f.id, begin) && MatchesAt(f, text, start)) hit(f.id, begin);
  }
}

template <class Want, class Hit>
void TriggerGate::Scan(std::string_view text, Want&& want, Hit&& hit) const {
  for (uint16_t i : line_starts_)  // the text's first line: a line start before it
    if (want(forms_[i].id, size_t{0}) && MatchesAt(forms_[i], text, -1)) hit(forms_[i].id, size_t{0});
  const auto* d = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  thread_local std::vector<uint32_t> at;
  if (n < UINT32_MAX && FewAnchors(d, n, &at)) {
    for (uint32_t i : at) At(text, i, static_cast<unsigned>(d[i] | (i + 1 < n ? d[i + 1] : 0) << 8), want, hit);
    return;
  }
  // A chunk of positions at a time: the anchors are written down without a
  // branch (one in twelve positions is one, too many to predict), then handled.
  constexpr size_t kChunk = 4096;
  uint16_t out[kChunk];  // offsets in the chunk
  for (size_t c = 0; c + 1 < n; c += kChunk) {
    const size_t e = std::min(n - 1, c + kChunk);
    size_t k = 0;
    for (size_t i = c; i < e; ++i) {
      uint16_t pair;
      std::memcpy(&pair, d + i, 2);  // d[i] | d[i + 1] << 8 on little-endian x86
      out[k] = static_cast<uint16_t>(i - c);
      k += Anchored(pair);
    }
    for (size_t j = 0; j < k; ++j) {
      size_t i = c + out[j];
      At(text, i, static_cast<unsigned>(d[i] | d[i + 1] << 8), want, hit);
    }
  }
  if (n > 0 && Anchored(d[n - 1])) At(text, n - 1, d[n - 1], want, hit);  // 0 stands for the next byte
}

}  // namespace warden::anonymizer
