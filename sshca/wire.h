// sshca/wire.h: SSH wire encoding (RFC 4251 section 5) and base64, for
// building certificates and reading and writing OpenSSH key files, and
// SecretString, the buffer every copy of key material lives in.
// The wire and base64 helpers are internal to sshca/; other modules use
// sshca/ca.h and sshca/ed25519_key.h (and SecretString with the latter).
//
// Trust: WireReader parses key files, which are operator input but may be
// truncated or corrupt; every read is bounds-checked and reports failure
// instead of reading past the end. Nothing here logs its input (it may be
// key material).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace warden::sshca {

// SecretString is a byte buffer for key material: not copyable, and wiped
// (OPENSSL_cleanse over its whole capacity) when destroyed. Callers reserve
// the final size up front so that appending never reallocates (a
// reallocation would leave an unwiped copy in freed memory).
class SecretString {
 public:
  explicit SecretString(size_t reserve = 0) { bytes.reserve(reserve); }
  ~SecretString() { Wipe(); }
  SecretString(const SecretString&) = delete;
  SecretString& operator=(const SecretString&) = delete;
  // Wipe clears the bytes now; the buffer stays usable (empty).
  void Wipe();
  std::string bytes;
};

// WireWriter appends SSH wire types to a string it does not own.
class WireWriter {
 public:
  explicit WireWriter(std::string* out) : out_(out) {}
  void U32(uint32_t v);
  void U64(uint64_t v);
  void String(std::string_view s);  // uint32 length, then the bytes
  void Raw(std::string_view s);

 private:
  std::string* out_;
};

// WireReader reads SSH wire types from a view it does not own. Each read
// returns false, and leaves its out-param unchanged, when the input is too short.
class WireReader {
 public:
  explicit WireReader(std::string_view in) : in_(in) {}
  bool U32(uint32_t* v);
  bool U64(uint64_t* v);
  bool String(std::string_view* s);  // a view into the input
  bool Raw(size_t n, std::string_view* s);
  std::string_view rest() const { return in_; }
  bool empty() const { return in_.empty(); }

 private:
  std::string_view in_;
};

// Base64Encode gives standard base64 with padding and no line breaks.
std::string Base64Encode(std::string_view data);
// Base64Append appends the same to *out; with out->capacity() reserved for
// it, no reallocation happens (for secret text).
void Base64Append(std::string_view data, std::string* out);
// Base64Decode decodes standard base64, ignoring ASCII whitespace (line
// breaks of PEM bodies), into `out` (whose previous contents are replaced
// without reallocation when it has the capacity). False on malformed input.
bool Base64Decode(std::string_view text, std::string* out);

}  // namespace warden::sshca
