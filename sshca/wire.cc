#include "sshca/wire.h"

#include <openssl/crypto.h>

namespace warden::sshca {

void SecretString::Wipe() {
  // resize to the capacity first so that every byte ever written is inside
  // the string when it is cleansed (bytes past size() may hold old data).
  bytes.resize(bytes.capacity());
  if (!bytes.empty()) OPENSSL_cleanse(bytes.data(), bytes.size());
  bytes.clear();
}

void WireWriter::U32(uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out_->push_back(static_cast<char>((v >> shift) & 0xff));
}

void WireWriter::U64(uint64_t v) {
  U32(static_cast<uint32_t>(v >> 32));
  U32(static_cast<uint32_t>(v));
}

void WireWriter::String(std::string_view s) {
  U32(static_cast<uint32_t>(s.size()));
  out_->append(s);
}

void WireWriter::Raw(std::string_view s) { out_->append(s); }

bool WireReader::U32(uint32_t* v) {
  if (in_.size() < 4) return false;
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r = (r << 8) | static_cast<unsigned char>(in_[i]);
  in_.remove_prefix(4);
  *v = r;
  return true;
}

bool WireReader::U64(uint64_t* v) {
  uint32_t hi = 0, lo = 0;
  std::string_view saved = in_;
  if (!U32(&hi) || !U32(&lo)) {
    in_ = saved;
    return false;
  }
  *v = (uint64_t{hi} << 32) | lo;
  return true;
}

bool WireReader::String(std::string_view* s) {
  std::string_view saved = in_;
  uint32_t n = 0;
  if (!U32(&n) || in_.size() < n) {
    in_ = saved;
    return false;
  }
  *s = in_.substr(0, n);
  in_.remove_prefix(n);
  return true;
}

bool WireReader::Raw(size_t n, std::string_view* s) {
  if (in_.size() < n) return false;
  *s = in_.substr(0, n);
  in_.remove_prefix(n);
  return true;
}

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int Sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}
}  // namespace

std::string Base64Encode(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  Base64Append(data, &out);
  return out;
}

void Base64Append(std::string_view data, std::string* out_ptr) {
  std::string& out = *out_ptr;
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = (uint32_t{static_cast<unsigned char>(data[i])} << 16) |
                 (uint32_t{static_cast<unsigned char>(data[i + 1])} << 8) | static_cast<unsigned char>(data[i + 2]);
    for (int shift = 18; shift >= 0; shift -= 6) out.push_back(kAlphabet[(v >> shift) & 63]);
  }
  if (size_t rest = data.size() - i; rest > 0) {
    uint32_t v = uint32_t{static_cast<unsigned char>(data[i])} << 16;
    if (rest == 2) v |= uint32_t{static_cast<unsigned char>(data[i + 1])} << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
}

// Decoding keeps its state in locals that hold at most 3 decoded bytes; they
// are cleared before returning because the input may be a private key.
bool Base64Decode(std::string_view text, std::string* out) {
  out->clear();
  uint32_t acc = 0;
  int bits = 0, padding = 0;
  bool ok = true;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    int v = Sextet(c);
    if (v < 0 || padding > 0) {  // a non-alphabet byte, or data after padding
      ok = false;
      break;
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be padding zeros, and the padding must fit them.
  if (ok && (padding > 2 || (bits > 0 && (acc & ((1u << bits) - 1)) != 0) || (bits == 6))) ok = false;
  acc = 0;
  if (!ok) out->clear();
  return ok;
}

}  // namespace warden::sshca
