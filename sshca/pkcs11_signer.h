// sshca/pkcs11_signer.h: Warden's CA key inside a PKCS#11 token (an HSM, a
// cloud KMS's PKCS#11 library, SoftHSM). The token signs; Warden holds a
// session handle and the public key, never the private key: it is generated
// in the token (CreatePkcs11CaKey) or imported there by the operator, and
// Warden refuses a key the token would let out (CKA_EXTRACTABLE) or show
// (not CKA_SENSITIVE).
//
// Configuration: ssh.ca_key is an RFC 7512 URI naming the key
// ("pkcs11:token=warden-ca;object=ca"). The module comes from
// ssh.pkcs11_module or the URI's module-path; the PIN from the file
// ssh.pkcs11_pin_file or the URI's pin-source (a file). Giving one of them
// both ways with different values is an error. Tokens that need no login
// (CKF_LOGIN_REQUIRED clear) may have no PIN.
//
// Sessions. One read-only session per signer, opened at Open(). A session
// that breaks under Warden (CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED,
// CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT, CKR_USER_NOT_LOGGED_IN, a stale
// key handle, a module finalized by someone else...) is reopened once per
// Sign call: find the token again, open, log in (reading the PIN file
// again), find the key, check that its public key is still the one Warden
// started with, and sign again. If that fails, the call fails with a clear
// error and the next call tries again (a re-inserted token recovers).
//
// Every signature the token returns is verified against the CA public key
// before it is used, so a faulty or swapped key never yields a certificate.
//
// Thread safety: Sign may be called from many threads at once. Calls are
// serialised on the module's mutex (one session, one operation at a time).
// A session per thread was not chosen: tokens cap sessions (a YubiHSM 2 has
// 16 for all its clients), login state is per application anyway, and a
// signature costs far less than the SSH connection it is made for.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "core/result.h"
#include "sshca/pkcs11.h"
#include "sshca/signer.h"

namespace warden::sshca {

// Pkcs11Options: where the key is and how to reach it (see above).
struct Pkcs11Options {
  std::string uri;          // RFC 7512, "pkcs11:..."
  std::string module_path;  // ssh.pkcs11_module; empty: the URI's module-path
  std::string pin_file;     // ssh.pkcs11_pin_file; empty: the URI's pin-source, or no PIN
};

class Pkcs11Signer final : public Signer {
 public:
  // Open loads the module, finds the token and the key, logs in, checks the
  // key (Ed25519: CKK_EC_EDWARDS with CKM_EDDSA; CKA_SIGN; CKA_SENSITIVE;
  // not CKA_EXTRACTABLE), reads the public key from its public key object,
  // and signs a probe that it verifies. Errors, each naming the module, token
  // or key (never the PIN): InvalidArgument (bad URI, no module, module and
  // PIN given twice, not a PKCS#11 module, several tokens or keys match, not
  // an Ed25519 key), NotFound (module file, token, key, public key or PIN file
  // missing), PermissionDenied (PIN refused or locked, unsafe file modes),
  // FailedPrecondition (the key may leave the token, the token needs a PIN
  // that is not configured, the public key does not belong to the private
  // key), Unavailable (the module or token failed: the CKR name).
  static Result<std::unique_ptr<Pkcs11Signer>> Open(const Pkcs11Options& options);
  ~Pkcs11Signer() override;

  // Sign: see "Sessions" above. Errors: Unavailable (the token could not
  // sign, also after reopening: the message names the CKR and, when the
  // reopen failed, why), PermissionDenied (the PIN was refused on reopen),
  // FailedPrecondition (the token now holds another key under the URI),
  // Internal (the token returned a signature that does not verify).
  Result<std::string> Sign(std::string_view data) const override;
  const std::string& public_key() const override { return public_key_; }
  std::string Describe() const override { return description_; }

  // reopens counts sessions reopened after a break (tests count work, not time).
  int reopens() const { return reopens_.load(); }

 private:
  Pkcs11Signer() = default;
  // OpenSession finds the token and key and logs in. At Open() the key's
  // public key goes to *first_public_key; later it must equal public_key_.
  // REQUIRES: module_->mutex() is held (here and in the two below).
  Status OpenSession(std::string* first_public_key = nullptr) const;
  void CloseSession() const;
  ck_rv_t SignOnce(std::string_view data, std::string* signature) const;

  std::shared_ptr<pkcs11::Module> module_;
  pkcs11::Uri uri_;
  std::string pin_file_;
  std::string description_;
  std::string public_key_;  // 32 bytes, fixed at Open()
  // Guarded by module_->mutex().
  mutable ck_session_handle_t session_ = CK_INVALID_HANDLE;
  mutable ck_object_handle_t key_ = CK_INVALID_HANDLE;
  mutable std::atomic<int> reopens_{0};
};

// CreatePkcs11CaKey generates the CA's Ed25519 key pair inside the token
// named by options.uri (CKM_EC_EDWARDS_KEY_PAIR_GEN): both objects CKA_TOKEN,
// labelled with the URI's object= and given its id= (a random 16-byte id when
// the URI has none); the private key CKA_PRIVATE, CKA_SENSITIVE, not
// CKA_EXTRACTABLE, CKA_SIGN only. It never replaces a key: an object with
// that label (and id) makes it FailedPrecondition. Returns the CA's
// TrustedUserCAKeys line. Errors: as Open, plus InvalidArgument (the URI has
// no object=), FailedPrecondition (a key exists; the token lacks Ed25519;
// the generated key is not sensitive or is extractable: it is destroyed).
Result<std::string> CreatePkcs11CaKey(const Pkcs11Options& options);

}  // namespace warden::sshca
