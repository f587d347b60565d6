#include "anonymizer/crypto_pan.h"

#include <arpa/inet.h>
#include <openssl/evp.h>

#include <cstring>
#include <memory>

namespace warden::anonymizer {
namespace {

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};

bool Aes(EVP_CIPHER_CTX* ctx, const unsigned char in[16], unsigned char out[16]) {
  int n = 0;
  return EVP_EncryptUpdate(ctx, out, &n, in, 16) == 1 && n == 16;
}

bool Bit(const unsigned char* a, int i) { return (a[i / 8] >> (7 - i % 8)) & 1; }
void SetBit(unsigned char* a, int i, bool v) {
  if (v) a[i / 8] |= static_cast<unsigned char>(1 << (7 - i % 8));
  else a[i / 8] &= static_cast<unsigned char>(~(1 << (7 - i % 8)));
}

}  // namespace

std::optional<std::string> CryptoPan(std::string_view key32, std::string_view ip) {
  if (key32.size() != 32) return std::nullopt;
  std::string text(ip);
  unsigned char addr[16] = {};
  int family = text.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  if (inet_pton(family, text.c_str(), addr) != 1) return std::nullopt;
  int bits = family == AF_INET ? 32 : 128;

  std::unique_ptr<EVP_CIPHER_CTX, CtxFree> ctx(EVP_CIPHER_CTX_new());
  const auto* key = reinterpret_cast<const unsigned char*>(key32.data());
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_128_ecb(), nullptr, key, nullptr) != 1) return std::nullopt;
  EVP_CIPHER_CTX_set_padding(ctx.get(), 0);
  unsigned char pad[16];
  if (!Aes(ctx.get(), key + 16, pad)) return std::nullopt;

  // Bit i of the pseudonym flips bit i of the address by the first bit of
  // AES(prefix of the address up to i, then the pad): equal prefixes, equal flips.
  unsigned char out[16];
  std::memcpy(out, addr, sizeof out);
  for (int i = 0; i < bits; ++i) {
    unsigned char block[16];
    std::memcpy(block, pad, sizeof block);
    for (int j = 0; j < i; ++j) SetBit(block, j, Bit(addr, j));
    unsigned char enc[16];
    if (!Aes(ctx.get(), block, enc)) return std::nullopt;
    SetBit(out, i, Bit(addr, i) ^ (enc[0] >> 7));
  }
  char buf[INET6_ADDRSTRLEN];
  if (!inet_ntop(family, out, buf, sizeof buf)) return std::nullopt;
  return std::string(buf);
}

}  // namespace warden::anonymizer
