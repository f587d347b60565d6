#include "anonymizer/iac.h"

#include <re2/re2.h>
#include <yaml-cpp/yaml.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>

#include "anonymizer/checks.h"

namespace warden::anonymizer {

Result<std::map<std::string, std::vector<std::string>>> InfraNames(const std::string& path) {
  std::map<std::string, std::vector<std::string>> out;
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return InvalidArgument("cannot read infra.yml " + path + ": " + e.what());
  }
  try {
    // Lookups on const nodes: a missing key must read as absent, not create a node.
    const YAML::Node& croot = root;
    if (const YAML::Node p = croot["project_name"]; p.IsDefined() && p.IsScalar()) out["project"].push_back(p.Scalar());
    const YAML::Node domains = croot["domains"];
    if (!domains.IsDefined() || !domains.IsMap()) return InvalidArgument(path + ": no `domains:` mapping (is this an anklume infra.yml?)");
    for (const auto& d : domains) {
      std::string domain = d.first.Scalar();
      const YAML::Node body = d.second;
      if (!body.IsMap()) continue;
      out["network"].push_back("net-" + domain);
      // A description names a customer or a contract more often than not; one short word
      // ("Personal") would only blank that word everywhere.
      if (const YAML::Node desc = body["description"]; desc.IsDefined() && desc.IsScalar() && desc.Scalar().size() >= 12)
        out["project"].push_back(desc.Scalar());
      if (const YAML::Node machines = body["machines"]; machines.IsDefined() && machines.IsMap())
        for (const auto& m : machines) out["instance"].push_back(m.first.Scalar());
    }
  } catch (const YAML::Exception& e) {
    return InvalidArgument(path + ": " + e.what());
  }
  return out;
}

namespace {

// Terms are matched as whole words (not inside a longer name), longest first.
class DictionarySource final : public SpanSource {
 public:
  explicit DictionarySource(const std::map<std::string, std::vector<std::string>>& terms) {
    std::vector<std::pair<std::string, std::string>> all;  // term, category
    for (const auto& [category, list] : terms)
      for (const std::string& t : list)
        if (!t.empty()) all.emplace_back(t, category);
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    std::string alt;
    for (const auto& [t, category] : all) {
      if (category_.count(t)) continue;
      category_[t] = InternName(category);
      order_.push_back(t);
      alt += (alt.empty() ? "" : "|") + RE2::QuoteMeta(t);
    }
    for (size_t i = 0; i < order_.size(); ++i) {
      const auto* u = reinterpret_cast<const unsigned char*>(order_[i].data());
      by_first_byte_[u[0]].push_back(static_cast<uint32_t>(i));
      for (unsigned second = 0; second < 256; ++second) {
        if (order_[i].size() > 1 && second != u[1]) continue;
        unsigned pair = u[0] << 8 | second;
        pairs_[pair >> 6] |= uint64_t{1} << (pair & 63);
      }
    }
    // A few distinct two-byte starts (the usual case: the identifiers learned
    // in one text) are looked for sixteen bytes at a time.
    std::set<std::pair<unsigned char, unsigned char>> starts;
    bool short_term = false;
    for (const std::string& term : order_) {
      if (term.size() < 2) short_term = true;
      else starts.emplace(static_cast<unsigned char>(term[0]), static_cast<unsigned char>(term[1]));
    }
    if (!short_term && starts.size() <= kVectorStarts) starts_.assign(starts.begin(), starts.end());
    if (order_.size() > kLiteralTerms) {
      RE2::Options o;
      o.set_log_errors(false);
      o.set_max_mem(64 << 20);
      re_ = std::make_unique<RE2>("(" + alt + ")", o);
    }
  }

  void Find(std::string_view text, std::vector<Span>* out) const override {
    if (re_) {
      re2::StringPiece input(text.data(), text.size()), m;
      size_t pos = 0;
      while (pos < text.size() && re_->Match(input, pos, text.size(), RE2::UNANCHORED, &m, 1))
        pos = Accept(text, static_cast<size_t>(m.data() - input.data()), m.size(), out);
      return;
    }
    // A few terms (the identifiers learned in one text, a small infra.yml): no
    // compilation. Positions are tried in order and, at each, the terms that
    // start with that byte in alternation order: the alternation's
    // leftmost-first match (earliest start, then the longest term).
    const unsigned char* t = reinterpret_cast<const unsigned char*>(text.data());
    const size_t n = text.size();
    size_t pos = 0;
    while (pos < n) {
      size_t found = std::string_view::npos, len = 0;
      for (size_t p = pos; p < n && found == std::string_view::npos; ++p) {
        if (!starts_.empty()) {
          p = NextStart(t, p, n);  // every term has two bytes or more: none starts at the last byte
          if (p + 1 >= n) break;
        }
        // Two bytes rule most positions out ("pro-dev" starts "pr"); a one-byte
        // term, or the text's last byte, goes to the bucket directly.
        for (unsigned pair = t[p]; p + 1 < n; ++p) {
          pair = (pair << 8 | t[p + 1]) & 0xFFFF;
          if (pairs_[pair >> 6] >> (pair & 63) & 1) break;
        }
        for (uint32_t i : by_first_byte_[t[p]]) {
          const std::string& term = order_[i];
          if (term.size() <= n - p && std::memcmp(t + p, term.data(), term.size()) == 0) {
            found = p;
            len = term.size();
            break;
          }
        }
      }
      if (found == std::string_view::npos) return;
      pos = Accept(text, found, len, out);
    }
  }

 private:
  static constexpr size_t kLiteralTerms = 64;
  static constexpr size_t kVectorStarts = 24;

  // NextStart: the first p' >= p where two bytes that start a term begin, or
  // n - 1 when none does before the last byte (starts_ is not empty).
  size_t NextStart(const unsigned char* t, size_t p, size_t n) const {
#ifdef __SSE2__
    __m128i first[kVectorStarts], second[kVectorStarts];
    const size_t k = starts_.size();
    for (size_t i = 0; i < k; ++i) {
      first[i] = _mm_set1_epi8(static_cast<char>(starts_[i].first));
      second[i] = _mm_set1_epi8(static_cast<char>(starts_[i].second));
    }
    for (; p + 17 <= n; p += 16) {
      __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t + p));
      __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t + p + 1));
      __m128i hit = _mm_and_si128(_mm_cmpeq_epi8(a, first[0]), _mm_cmpeq_epi8(b, second[0]));
      for (size_t i = 1; i < k; ++i)
        hit = _mm_or_si128(hit, _mm_and_si128(_mm_cmpeq_epi8(a, first[i]), _mm_cmpeq_epi8(b, second[i])));
      if (int mask = _mm_movemask_epi8(hit)) return p + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
    }
#endif
    for (; p + 1 < n; ++p)
      for (const auto& [a, b] : starts_)
        if (t[p] == a && t[p + 1] == b) return p;
    return n - 1;
  }

  // Accept reports a whole-word occurrence at [b, b+n) and says where to search next.
  size_t Accept(std::string_view text, size_t b, size_t n, std::vector<Span>* out) const {
    size_t e = b + n;
    // Whole words; '-' and '.' end a word, so "pro-dev" is found in "pro-dev-profile".
    bool left = b == 0 || !IsWordByte(text[b - 1]);
    bool right = e >= text.size() || !IsWordByte(text[e]);
    if (!left || !right) return b + 1;
    out->push_back({b, e, Kind::kIdentifier, category_.find(text.substr(b, n))->second, "dictionary", 0});
    return e > b ? e : e + 1;
  }

  std::vector<std::string> order_;  // the terms in alternation order: longest first
  std::vector<uint32_t> by_first_byte_[256];  // indexes into order_, ascending
  uint64_t pairs_[65536 / 64] = {};           // the first two bytes of the terms (any second byte for a 1-byte term)
  std::vector<std::pair<unsigned char, unsigned char>> starts_;  // the same, when few and no term is shorter
  std::map<std::string, std::string_view, std::less<>> category_;  // term -> interned category
  std::unique_ptr<RE2> re_;
};

}  // namespace

std::unique_ptr<SpanSource> MakeDictionarySource(const std::map<std::string, std::vector<std::string>>& terms) {
  return std::make_unique<DictionarySource>(terms);
}

}  // namespace warden::anonymizer
