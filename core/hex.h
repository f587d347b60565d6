// core/hex.h: lower-case hex encoding, and SHA-256 digests as hex (the form
// they take in the audit rows, the certificate pins and the layer-2 cache keys).
#pragma once

#include <openssl/types.h>

#include <string>
#include <string_view>

namespace warden {

// HexOf returns `bytes` as lower-case hex (two characters per byte).
std::string HexOf(std::string_view bytes);
// Sha256Hex returns the SHA-256 of `data` as 64 lower-case hex digits.
std::string Sha256Hex(std::string_view data);
// CertSha256 returns the SHA-256 of a certificate's DER form as hex, as
// `openssl x509 -noout -fingerprint -sha256` and `incus remote add` show it
// (without colons); "" for no certificate.
std::string CertSha256(X509* cert);

}  // namespace warden
