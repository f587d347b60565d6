// sshca/signer.h: the seam between building a certificate and signing it.
//
// CertificateAuthority (sshca/ca.h) builds every certificate itself; only the
// Ed25519 signature over the to-be-signed bytes is asked of a Signer. Two
// implementations exist:
//   - FileSigner: the CA key loaded from a file into this process (OpenSSL);
//     the embedded default (`ssh.ca_key: <path>`).
//   - Pkcs11Signer (sshca/pkcs11_signer.h): the key stays inside a PKCS#11
//     token (an HSM, a cloud KMS, SoftHSM); Warden holds a session handle and
//     never the key (`ssh.ca_key: pkcs11:...`).
//
// Key material: a Signer never returns or logs private key bytes; Describe()
// and every error message name where the key is, never what it is.
//
// Thread safety: Sign may be called from many threads at once on a const
// Signer (each implementation says how it achieves that).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/result.h"
#include "sshca/ed25519_key.h"

namespace warden::sshca {

class Signer {
 public:
  virtual ~Signer() = default;

  // Sign returns the raw 64-byte Ed25519 signature (RFC 8032, pure Ed25519)
  // of `data`. Errors depend on the implementation; the message starts with
  // Describe() so that an operator knows which key failed.
  virtual Result<std::string> Sign(std::string_view data) const = 0;
  // public_key is the raw 32-byte Ed25519 public key.
  virtual const std::string& public_key() const = 0;
  // Describe names the key for logs and errors ("CA key file /path",
  // "PKCS#11 key \"ca\" on token \"warden-ca\" (module ...)"). Never secret.
  virtual std::string Describe() const = 0;
};

// FileSigner signs with an Ed25519Key held in this process.
// Thread safety: as Ed25519Key::Sign (a fresh OpenSSL context per call).
class FileSigner final : public Signer {
 public:
  // `description` is what Describe() returns (e.g. "CA key file /path").
  FileSigner(std::unique_ptr<Ed25519Key> key, std::string description)
      : key_(std::move(key)), description_(std::move(description)) {}

  // Errors: Internal when OpenSSL fails.
  Result<std::string> Sign(std::string_view data) const override { return key_->Sign(data); }
  const std::string& public_key() const override { return key_->public_key(); }
  std::string Describe() const override { return description_; }

 private:
  std::unique_ptr<Ed25519Key> key_;
  std::string description_;
};

}  // namespace warden::sshca
