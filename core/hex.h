// core/hex.h: lower-case hex encoding, and the SHA-256 of bytes as hex (the
// form digests take in the audit rows, the pins and the layer-2 cache keys).
#pragma once

#include <string>
#include <string_view>

namespace warden {

// HexOf returns `bytes` as lower-case hex (two characters per byte).
std::string HexOf(std::string_view bytes);
// Sha256Hex returns the SHA-256 of `data` as 64 lower-case hex digits.
std::string Sha256Hex(std::string_view data);

}  // namespace warden
