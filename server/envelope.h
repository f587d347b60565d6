// server/envelope.h: making untrusted text safe to show a model (defence D2).
//
// Untrusted: every input here is target output (already anonymized when it
// reaches Wrap). These functions make sure that the bytes stay valid UTF-8,
// that terminal escapes, control characters and bidi overrides cannot hide or
// reorder text, and that the content can neither close its envelope nor forge
// a new one: the envelope's id is random per response and the content's own
// "<UNTRUSTED_DATA" / "</UNTRUSTED_DATA" sequences are defused.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace warden::server {

// LooksBinary: NUL bytes, or mostly non-text in the first 8 KiB.
bool LooksBinary(std::string_view raw);

// RepairUtf8 replaces every invalid UTF-8 sequence with U+FFFD.
std::string RepairUtf8(std::string_view raw);

// Neutralize removes ANSI escape sequences and makes other control characters
// (except \n and \t), C1 controls, bidi controls and zero-width characters
// visible as \xNN or \u{NNNN}; CRLF becomes LF. REQUIRES: valid UTF-8.
std::string Neutralize(std::string_view text);

// DefuseEnvelopeTags rewrites "<UNTRUSTED_DATA" and "</UNTRUSTED_DATA" (any
// case) to "&lt;UNTRUSTED_DATA" so content cannot open or close an envelope.
std::string DefuseEnvelopeTags(std::string_view text);

// TruncateMiddle keeps the head and the tail of `text` within max_bytes
// (on UTF-8 boundaries) with a marker that says how much was cut.
std::string TruncateMiddle(std::string_view text, size_t max_bytes, bool* truncated);

// NewEnvelopeId returns a random id that does not occur in any of `contents`.
std::string NewEnvelopeId(const std::vector<std::string_view>& contents);

// Wrap builds <UNTRUSTED_DATA id=".." k="v"...>\ncontent\n</UNTRUSTED_DATA id="..">.
// Attribute values are escaped; REQUIRES: content already defused.
std::string Wrap(const std::string& id, const std::vector<std::pair<std::string, std::string>>& attrs,
                 std::string_view content);

}  // namespace warden::server
