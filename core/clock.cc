#include "core/clock.h"

#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>

#include "core/hex.h"

namespace warden {

int64_t UnixMillis(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    std::fputs("warden: OpenSSL RAND_bytes failed; refusing to continue without a CSPRNG\n", stderr);
    std::abort();
  }
  return out;
}

std::string RandomHex(size_t n) { return HexOf(RandomBytes(n)); }

std::string RandomId() {
  static const char* kAlphabet = "abcdefghijkmnpqrstuvwxyz23456789";  // 32 symbols, no look-alikes
  std::string raw = RandomBytes(16), out;
  for (unsigned char c : raw) out.push_back(kAlphabet[c & 31]);
  return out;  // 16 symbols * 5 bits = 80 bits; plenty for ids that are not secrets
}

}  // namespace warden
