// anonymizer/crypto_pan.h: prefix-preserving IP pseudonyms (Crypto-PAn, Xu et
// al. 2002) with AES-128 from OpenSSL. Two addresses that share a k-bit prefix
// get pseudonyms that share a k-bit prefix, so subnets stay subnets.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace warden::anonymizer {

// CryptoPan maps an IPv4 or IPv6 address (text) to its pseudonym (text) under
// a 32-byte key; nullopt if `ip` is not an address. Deterministic per key.
std::optional<std::string> CryptoPan(std::string_view key32, std::string_view ip);

}  // namespace warden::anonymizer
