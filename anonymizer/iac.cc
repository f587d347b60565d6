#include "anonymizer/iac.h"

#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>

#include "anonymizer/checks.h"
#include "anonymizer/triggers.h"

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
// Every occurrence of every term is found by one TriggerGate scan (each term
// anchored on its rarest byte pair); they are then taken as an alternation of
// the terms, longest first, would take them: at the earliest start, the longest
// term there.
class DictionarySource final : public SpanSource {
 public:
  explicit DictionarySource(const std::map<std::string, std::vector<std::string>>& terms) {
    std::vector<std::pair<std::string, std::string>> all;  // term, category
    for (const auto& [category, list] : terms)
      for (const std::string& t : list)
        if (!t.empty()) all.emplace_back(t, category);
    std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    for (const auto& [t, category] : all) {
      if (category_.count(t)) continue;
      category_[t] = InternName(category);
      order_.push_back(t);
      order_category_.push_back(category_[t]);
    }
    for (const std::string& t : order_) {
      std::string error;
      if (gate_.Add(Trigger::Literal(t), &error) < 0) {  // more terms than the gate holds: RE2's alternation
        std::string alt;
        for (const std::string& u : order_) alt += (alt.empty() ? "" : "|") + RE2::QuoteMeta(u);
        RE2::Options o;
        o.set_log_errors(false);
        o.set_max_mem(64 << 20);
        re_ = std::make_unique<RE2>("(" + alt + ")", o);
        return;
      }
    }
    gate_.Finish();
  }

  void Find(std::string_view text, std::vector<Span>* out) const override {
    if (re_) {
      re2::StringPiece input(text.data(), text.size()), m;
      size_t pos = 0;
      while (pos < text.size() && re_->Match(input, pos, text.size(), RE2::UNANCHORED, &m, 1))
        pos = Accept(text, static_cast<size_t>(m.data() - input.data()), m.size(),
                     category_.find(std::string_view(m.data(), m.size()))->second, out);
      return;
    }
    thread_local std::vector<std::pair<size_t, int>> at;  // (start, term): term ids are order_'s indexes
    at.clear();
    gate_.Scan(
        text, [](int, size_t) { return true; }, [&](int id, size_t start) { at.emplace_back(start, id); });
    std::sort(at.begin(), at.end());  // by start, then the longer term
    size_t pos = 0;
    for (const auto& [b, id] : at)
      if (b >= pos)
        pos = Accept(text, b, order_[static_cast<size_t>(id)].size(), order_category_[static_cast<size_t>(id)], out);
  }

 private:
  // Accept reports a whole-word occurrence of a term of `category` at [b, b+n) and says where to search next.
  size_t Accept(std::string_view text, size_t b, size_t n, std::string_view category, std::vector<Span>* out) const {
    size_t e = b + n;
    // Whole words; '-' and '.' end a word, so "pro-dev" is found in "pro-dev-profile".
    bool left = b == 0 || !IsWordByte(text[b - 1]);
    bool right = e >= text.size() || !IsWordByte(text[e]);
    if (!left || !right) return b + 1;
    out->push_back({b, e, Kind::kIdentifier, category, "dictionary", 0});
    return e > b ? e : e + 1;
  }

  std::vector<std::string> order_;  // the terms in alternation order: longest first
  std::vector<std::string_view> order_category_;  // their interned categories (the gate's ids are order_'s indexes)
  TriggerGate gate_;
  std::map<std::string, std::string_view, std::less<>> category_;  // term -> interned category
  std::unique_ptr<RE2> re_;
};

}  // namespace

std::unique_ptr<SpanSource> MakeDictionarySource(const std::map<std::string, std::vector<std::string>>& terms) {
  return std::make_unique<DictionarySource>(terms);
}

}  // namespace warden::anonymizer
