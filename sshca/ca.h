// sshca/ca.h: Warden's SSH certificate authority. It loads the CA's Ed25519
// key and issues one short-lived OpenSSH user certificate per ssh_run call
// (format: OpenSSH PROTOCOL.certkeys, ssh-ed25519-cert-v01@openssh.com),
// built and signed in-process with OpenSSL.
//
// Operators put PublicKeyLine() in each target's sshd TrustedUserCAKeys; a
// certificate from Issue() then logs in as the host's user when it carries a
// principal that sshd accepts, from a permitted source address, within its
// validity window, and runs only its force-command.
//
// Policy enforced here, whatever the caller asks for:
//   - the validity window [valid_after, valid_before) is at most
//     kMaxCertificateLifetime (15 minutes), the clock-skew allowance included;
//   - the principal list is never empty;
//   - extensions are always empty: no pty, no port/agent/X11 forwarding, no
//     user rc (OpenSSH grants nothing that is not listed);
//   - the serial is random (64 bits, never 0) and the nonce is 32 random bytes.
//
// Signing: the certificate is built here; only the signature over its bytes
// is asked of a Signer (sshca/signer.h): the CA key file loaded into this
// process (the default), or a key inside a PKCS#11 token that never enters
// this process (sshca/pkcs11_signer.h; ssh.ca_key: pkcs11:...).
//
// Key material: the CA key is never logged and never leaves this module;
// certificates hold only public data. Error messages never quote key bytes.
//
// Trust: the CA key file is operator input, refused when group or others may
// access it; so is a PKCS#11 URI with its module and PIN file. CertificateRequest
// comes from trusted code (the ssh_run tool) but is checked before anything is signed.
//
// Thread safety: a const CertificateAuthority may issue from many threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "sshca/ed25519_key.h"
#include "sshca/signer.h"

namespace warden::sshca {

// The hard cap on a certificate's whole validity window.
inline constexpr std::chrono::seconds kMaxCertificateLifetime{900};
// The largest clock-skew allowance (backdating of valid_after) accepted.
inline constexpr std::chrono::seconds kMaxClockSkew{300};

struct CertificateRequest {
  std::string key_id;                         // printable ASCII, 1-256 chars; names the call
  std::vector<std::string> principals;        // 1-256 entries, each 1-256 chars, no control chars or ','
  std::optional<std::string> force_command;   // the only command sshd will run; nullopt: none (opt-out)
  std::vector<std::string> source_addresses;  // CIDRs for source-address; empty: no restriction
  std::chrono::seconds lifetime{300};         // from now; capped as above
  std::chrono::seconds clock_skew{30};        // valid_after = now - clock_skew; 0..kMaxClockSkew
};

// Certificate is what Issue() made: public data only.
struct Certificate {
  uint64_t serial = 0;
  std::string key_id;
  std::vector<std::string> principals;
  int64_t valid_after = 0;   // Unix seconds, inclusive
  int64_t valid_before = 0;  // Unix seconds, exclusive
  std::optional<std::string> force_command;
  std::vector<std::string> source_addresses;
  std::string blob;  // the wire form

  // Base64 is the blob in base64: the middle field of OpenSshLine(), and
  // what libssh's ssh_pki_import_cert_base64 takes.
  std::string Base64() const;
  // OpenSshLine is "ssh-ed25519-cert-v01@openssh.com <base64> <key_id>", the
  // content of a -cert.pub file.
  std::string OpenSshLine() const;
};

// CaKeySource is where the CA key is: ssh.ca_key and, for a PKCS#11 URI, the
// module and PIN file keys (see sshca/pkcs11_signer.h).
struct CaKeySource {
  std::string ca_key;           // a file path, or an RFC 7512 "pkcs11:" URI
  std::string pkcs11_module;    // ssh.pkcs11_module
  std::string pkcs11_pin_file;  // ssh.pkcs11_pin_file
};

// IsPkcs11Uri tells whether ssh.ca_key names a key in a PKCS#11 token.
bool IsPkcs11Uri(std::string_view ca_key);

class CertificateAuthority {
 public:
  explicit CertificateAuthority(std::unique_ptr<Signer> signer) : signer_(std::move(signer)) {}
  // A CA whose key is `key`, in memory (tests and benchmarks).
  explicit CertificateAuthority(std::unique_ptr<Ed25519Key> key)
      : signer_(std::make_unique<FileSigner>(std::move(key), "in-memory CA key")) {}

  // Open is LoadFile for a path, and a Pkcs11Signer for a "pkcs11:" URI
  // (errors as Pkcs11Signer::Open). The pkcs11 keys are refused with a path.
  static Result<std::unique_ptr<CertificateAuthority>> Open(const CaKeySource& source);

  // LoadFile reads the CA key from `path` (OpenSSH or PKCS#8 PEM, unencrypted
  // Ed25519). Symlinks are followed (a Kubernetes Secret mount is a symlink).
  // Errors: NotFound (no such file; the message says to run `warden ca init`),
  // PermissionDenied (group or others have any access: mode & 077; or the
  // file cannot be opened), InvalidArgument (not a regular file, too large,
  // not an unencrypted Ed25519 private key). Messages name the path, never
  // the contents.
  static Result<std::unique_ptr<CertificateAuthority>> LoadFile(const std::string& path);

  // Issue signs a certificate for `subject_public_key` (32 raw Ed25519
  // bytes) with the validity taken from `clock`. Errors: InvalidArgument for
  // a request outside the limits above (the message names the field); when
  // signing fails, the Signer's error (Internal for a key file; for a token
  // Unavailable, PermissionDenied... naming the token and the CKR).
  Result<Certificate> Issue(const CertificateRequest& request, std::string_view subject_public_key,
                            const Clock& clock) const;

  // PublicKeyLine is the line for sshd's TrustedUserCAKeys file.
  std::string PublicKeyLine() const { return Ed25519PublicKeyLine(signer_->public_key(), "warden-ssh-ca"); }
  // Fingerprint is "SHA256:..." of the CA public key (safe to log).
  std::string Fingerprint() const { return FingerprintOfBlob(Ed25519PublicKeyBlob(signer_->public_key())); }
  // Describe says where the key is (safe to log): Signer::Describe().
  std::string Describe() const { return signer_->Describe(); }
  const Signer& signer() const { return *signer_; }

 private:
  std::unique_ptr<Signer> signer_;
};

// CreateCaKeyFile generates a CA key and writes it to `path` in OpenSSH
// format, mode 0600, creating missing parent directories (the last one made
// or found is set to 0700). It never overwrites: AlreadyExists is reported as
// FailedPrecondition naming the path. Returns the CA's PublicKeyLine().
// Errors: FailedPrecondition (file exists), Unavailable (I/O errors, with
// strerror), Internal (key generation). A partly written file is removed.
Result<std::string> CreateCaKeyFile(const std::string& path);

// CreateCaKey is CreateCaKeyFile for a path and CreatePkcs11CaKey (the key
// pair generated inside the token, never extractable) for a "pkcs11:" URI.
Result<std::string> CreateCaKey(const CaKeySource& source);

}  // namespace warden::sshca
