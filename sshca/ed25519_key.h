// sshca/ed25519_key.h: an Ed25519 key pair held in memory (OpenSSL), in the
// forms OpenSSH uses: the public key blob and line, the SHA256 fingerprint,
// raw signatures, and OpenSSH's private key format.
//
// Used for both Warden's CA key (loaded from a file by sshca/ca.h) and the
// ephemeral key of each ssh_run call (generated here, never written to disk).
//
// Key material: the private key lives only inside OpenSSL's EVP_PKEY, which
// OpenSSL clears when it is freed; every temporary copy made here (seed,
// decoded file bytes, PEM text) is wiped with OPENSSL_cleanse before the
// function returns, on success and on error alike. Nothing here logs.
//
// Trust: FromPrivateKeyText parses operator input (a key file) that may be
// corrupt or of the wrong type; it checks everything and never crashes on it.
//
// Thread safety: a const Ed25519Key may be used from many threads at once
// (Sign creates its own OpenSSL context per call).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/result.h"
#include "sshca/wire.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace warden::sshca {

class Ed25519Key {
 public:
  ~Ed25519Key();
  Ed25519Key(const Ed25519Key&) = delete;
  Ed25519Key& operator=(const Ed25519Key&) = delete;

  // Generate makes a new key pair from a 32-byte seed drawn with
  // warden::RandomBytes. Error: Internal if OpenSSL refuses the seed.
  static Result<std::unique_ptr<Ed25519Key>> Generate();

  // FromPrivateKeyText parses an unencrypted Ed25519 private key in OpenSSH
  // format ("-----BEGIN OPENSSH PRIVATE KEY-----") or PKCS#8 PEM ("-----BEGIN
  // PRIVATE KEY-----"). Errors (InvalidArgument, the message never quotes the
  // input): another key type, a passphrase-protected key, a malformed file.
  static Result<std::unique_ptr<Ed25519Key>> FromPrivateKeyText(std::string_view text);

  // public_key is the raw 32-byte public key.
  const std::string& public_key() const { return public_key_; }
  // PublicKeyBlob is the SSH wire form: string "ssh-ed25519", string key.
  std::string PublicKeyBlob() const;
  // PublicKeyLine is "ssh-ed25519 <base64 blob>[ <comment>]", the line for
  // TrustedUserCAKeys or authorized_keys.
  std::string PublicKeyLine(std::string_view comment) const;
  // Fingerprint is "SHA256:<unpadded base64>", as `ssh-keygen -l` prints it.
  std::string Fingerprint() const;

  // Sign returns the raw 64-byte Ed25519 signature of `data`.
  // Error: Internal when OpenSSL fails.
  Result<std::string> Sign(std::string_view data) const;

  // WriteOpenSshPrivateKey replaces out->bytes with the key in OpenSSH's
  // unencrypted private key format (PEM text, the form `ssh-keygen` writes
  // and libssh's ssh_pki_import_privkey_base64 reads). `out` wipes it.
  // Error: Internal when OpenSSL cannot export the key.
  Status WriteOpenSshPrivateKey(std::string_view comment, SecretString* out) const;

 private:
  Ed25519Key(EVP_PKEY* pkey, std::string public_key) : pkey_(pkey), public_key_(std::move(public_key)) {}
  // FromSeed takes ownership of nothing; it copies the 32-byte seed into OpenSSL.
  static Result<std::unique_ptr<Ed25519Key>> FromSeed(std::string_view seed);

  EVP_PKEY* pkey_;          // owned; holds the private key
  std::string public_key_;  // 32 bytes
};

// FingerprintOfBlob is "SHA256:<unpadded base64 of SHA-256(blob)>".
std::string FingerprintOfBlob(std::string_view blob);

// The same public forms from a raw 32-byte Ed25519 public key, for keys whose
// private half is not in this process (sshca/pkcs11_signer.h).
std::string Ed25519PublicKeyBlob(std::string_view public_key);
std::string Ed25519PublicKeyLine(std::string_view public_key, std::string_view comment);

// VerifyEd25519 tells whether `signature` (64 bytes) is a valid Ed25519
// signature of `data` under the raw 32-byte `public_key` (OpenSSL).
bool VerifyEd25519(std::string_view public_key, std::string_view data, std::string_view signature);

}  // namespace warden::sshca
