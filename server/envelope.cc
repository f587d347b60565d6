#include "server/envelope.h"

#include <re2/re2.h>

#include <cstdio>

#include "core/clock.h"

namespace warden::server {
namespace {

// DecodeUtf8 reads one code point at s[i]; returns its length, 0 if invalid.
size_t DecodeUtf8(std::string_view s, size_t i, uint32_t* cp) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  size_t n;
  uint32_t v;
  if (c < 0x80) {
    *cp = c;
    return 1;
  } else if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    v = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    v = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    v = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    v = (v << 6) | (b(i + k) & 0x3F);
  }
  if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10FFFF)) || (v >= 0xD800 && v <= 0xDFFF))
    return 0;  // overlong forms and surrogates
  *cp = v;
  return n;
}

bool IsInvisibleControl(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9F) ||                   // C1 controls
         cp == 0x061C || cp == 0x200B || cp == 0x200C ||  // arabic letter mark, zero-width space/non-joiner
         cp == 0x200D || cp == 0x200E || cp == 0x200F ||  // zero-width joiner, LRM, RLM
         (cp >= 0x202A && cp <= 0x202E) ||                // embeddings and overrides
         (cp >= 0x2060 && cp <= 0x2069) ||                // word joiner .. isolates
         cp == 0xFEFF ||                                  // zero-width no-break space
         (cp >= 0xE0000 && cp <= 0xE007F);                // tag characters (invisible ASCII smuggling)
}

// SkipEscape returns the length of the ANSI escape sequence at s[i] (s[i] == ESC).
size_t SkipEscape(std::string_view s, size_t i) {
  size_t j = i + 1;
  if (j >= s.size()) return 1;
  char k = s[j];
  if (k == '[') {  // CSI: parameters and intermediates, then one final byte 0x40-0x7E
    for (++j; j < s.size(); ++j)
      if (s[j] >= 0x40 && s[j] <= 0x7E) return j + 1 - i;
    return s.size() - i;
  }
  if (k == ']' || k == 'P' || k == '_' || k == '^' || k == 'X') {  // OSC/DCS/APC/PM/SOS: until BEL or ST
    for (++j; j < s.size(); ++j) {
      if (s[j] == '\a') return j + 1 - i;
      if (s[j] == 0x1B && j + 1 < s.size() && s[j + 1] == '\\') return j + 2 - i;
    }
    return s.size() - i;
  }
  return 2;  // two-byte escape (ESC c, ESC 7, ...)
}

}  // namespace

bool LooksBinary(std::string_view raw) {
  std::string_view head = raw.substr(0, 8192);
  if (head.find('\0') != std::string_view::npos) return true;
  // Control characters mark binary data; invalid UTF-8 alone does not (Latin-1
  // logs are text, and RepairUtf8 makes them valid), unless it is most of it.
  size_t controls = 0, invalid = 0, i = 0;
  while (i < head.size()) {
    uint32_t cp;
    size_t n = DecodeUtf8(head, i, &cp);
    if (n == 0) {
      if (head.size() < raw.size() && i + 4 > head.size()) break;  // cut by the window, not bad
      ++invalid;
      n = 1;
    } else if (cp < 0x20 && cp != '\n' && cp != '\r' && cp != '\t' && cp != 0x1B) {
      ++controls;
    }
    i += n;
  }
  return controls * 10 > head.size() || invalid * 10 > head.size() * 3;
}

std::string RepairUtf8(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  size_t i = 0;
  while (i < raw.size()) {
    uint32_t cp;
    size_t n = DecodeUtf8(raw, i, &cp);
    if (n == 0) {
      out.append("\xEF\xBF\xBD");
      ++i;
    } else {
      out.append(raw.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string Neutralize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  char buf[16];
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0x1B) {
      i += SkipEscape(s, i);
      continue;
    }
    if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') {
      ++i;
      continue;
    }
    if (c < 0x20 && c != '\n' && c != '\t') {
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out.append(buf);
      ++i;
      continue;
    }
    if (c == 0x7F) {
      out.append("\\x7f");
      ++i;
      continue;
    }
    uint32_t cp = c;
    size_t n = c < 0x80 ? 1 : DecodeUtf8(s, i, &cp);
    if (n == 0) {  // REQUIRES says valid UTF-8; stay safe anyway
      out.append("\xEF\xBF\xBD");
      ++i;
      continue;
    }
    if (IsInvisibleControl(cp)) {
      std::snprintf(buf, sizeof buf, "\\u{%04X}", cp);
      out.append(buf);
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  return out;
}

std::string DefuseEnvelopeTags(std::string_view text) {
  static const RE2 kTag(R"((?i)<(\s*/?\s*untrusted_data))");
  std::string out(text);
  RE2::GlobalReplace(&out, kTag, R"(&lt;\1)");
  return out;
}

std::string TruncateMiddle(std::string_view text, size_t max_bytes, bool* truncated) {
  *truncated = false;
  if (text.size() <= max_bytes) return std::string(text);
  *truncated = true;
  auto boundary = [&](size_t p) {  // move back to the start of a UTF-8 sequence
    while (p > 0 && p < text.size() && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80) --p;
    return p;
  };
  size_t budget = max_bytes > 200 ? max_bytes - 100 : max_bytes / 2;
  size_t head = boundary(budget * 2 / 3);
  size_t tail_start = boundary(text.size() - (budget - head));
  std::string out(text.substr(0, head));
  out.append("\n[... " + std::to_string(tail_start - head) + " bytes cut by Warden; narrow the command to see them ...]\n");
  out.append(text.substr(tail_start));
  return out;
}

std::string NewEnvelopeId(const std::vector<std::string_view>& contents) {
  for (;;) {
    std::string id = RandomHex(12);
    bool clash = false;
    for (std::string_view c : contents) clash = clash || c.find(id) != std::string_view::npos;
    if (!clash) return id;
  }
}

std::string Wrap(const std::string& id, const std::vector<std::pair<std::string, std::string>>& attrs,
                 std::string_view content) {
  auto escape = [](std::string_view v) {
    std::string o;
    for (char c : v) {
      switch (c) {
        case '"': o += "&quot;"; break;
        case '<': o += "&lt;"; break;
        case '>': o += "&gt;"; break;
        case '&': o += "&amp;"; break;
        case '\n': o += ' '; break;
        default: o += c;
      }
    }
    return o;
  };
  std::string out = "<UNTRUSTED_DATA id=\"" + id + "\"";
  for (const auto& [k, v] : attrs) out += " " + k + "=\"" + escape(v) + "\"";
  out += ">\n";
  out.append(content);
  if (!content.empty() && content.back() != '\n') out += '\n';
  out += "</UNTRUSTED_DATA id=\"" + id + "\">";
  return out;
}

}  // namespace warden::server
