// sshca/pkcs11.h: the PKCS#11 plumbing under sshca/pkcs11_signer.h: loading
// a module, RFC 7512 URIs, finding the token and logging in. Internal to
// sshca/ (and its tests, which use Module to act on a token from "another
// component" of the same process, as an HSM client library would).
//
// Why this shape. The module is the plain PKCS#11 C API of the vendor's
// library, loaded at run time with dlopen (RTLD_LOCAL|RTLD_NODELETE) and
// reached through C_GetFunctionList; p11-kit (Debian's libp11-kit) provides
// the header and parses and matches RFC 7512 URIs. p11-kit's own module
// loading is not used: it also reads the system's p11-kit module registry
// (/etc/pkcs11/modules), and the only module Warden loads is the one its
// operator named. OpenSSL's pkcs11-provider is not in Debian 12's main
// archive, and key generation (`warden ca init --pkcs11`) needs the C API anyway.
//
// Trust: the module path, the URI and the PIN file are operator input. The
// module file must be a regular file that neither group nor others may write
// (loading it runs its code in Warden). The PIN file must not be accessible
// by group or others (the CA key file's rule). The module itself is trusted
// code once loaded; what it returns (token labels, attribute bytes) is still
// checked for size before use.
//
// Key material: the PIN is read from its file at each login into a buffer
// that is wiped right after C_Login, and appears in no message or log.
#pragma once

// The GNU flavour of p11-kit's pkcs11.h: its default ("compat") flavour
// defines macros such as `value` and `count` that would rename members of
// every C++ type declared after it. uri.h uses a handful of the compat type
// names; they are declared here with the same meaning.
#ifndef CRYPTOKI_GNU
#define CRYPTOKI_GNU 1
#endif
#include <p11-kit/pkcs11.h>
typedef unsigned long CK_ULONG;
typedef ck_slot_id_t CK_SLOT_ID;
typedef ck_attribute_type_t CK_ATTRIBUTE_TYPE;
typedef struct ck_attribute CK_ATTRIBUTE;
typedef struct ck_attribute* CK_ATTRIBUTE_PTR;
typedef struct ck_info CK_INFO;
typedef struct ck_info* CK_INFO_PTR;
typedef struct ck_slot_info CK_SLOT_INFO;
typedef struct ck_slot_info* CK_SLOT_INFO_PTR;
typedef struct ck_token_info CK_TOKEN_INFO;
typedef struct ck_token_info* CK_TOKEN_INFO_PTR;
#include <p11-kit/uri.h>

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace warden::sshca::pkcs11 {

// RvName is the CKR_ name of a PKCS#11 return value ("CKR_PIN_INCORRECT"),
// or "CKR 0x..." for one this code does not name.
std::string RvName(ck_rv_t rv);

// Module is one PKCS#11 library loaded in this process. Load returns the
// same Module for the same file while any holder keeps it; the library is
// C_Initialize'd once (with CKF_OS_LOCKING_OK) and C_Finalize'd when the last
// holder lets go, unless something else in the process had initialized it.
//
// Thread safety: every call Warden makes into the module holds mutex(), so a
// module that is not thread-safe (CKR_CANT_LOCK) is still used correctly, and
// two signers on one module never interleave on a token.
class Module {
 public:
  ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Load opens `path`. Errors: InvalidArgument (not absolute, not a regular
  // file, not a shared library, or no C_GetFunctionList: "is not a PKCS#11
  // module"), NotFound (no such file), PermissionDenied (group or others may
  // write it), Unavailable (C_Initialize failed; the message names the CKR).
  static Result<std::shared_ptr<Module>> Load(const std::string& path);

  struct ck_function_list* fn() const { return fn_; }
  const std::string& path() const { return path_; }
  // Describe is "<path> (<manufacturer>, <library description> <version>)".
  std::string Describe() const;
  const struct ck_info& info() const { return info_; }
  std::mutex& mutex() const { return mutex_; }

  // Reinitialize calls C_Initialize again, for when another user of the
  // module in this process called C_Finalize under Warden
  // (CKR_CRYPTOKI_NOT_INITIALIZED). REQUIRES: mutex() is held.
  Status Reinitialize();

 private:
  Module() = default;
  Status Initialize();

  std::string path_;
  void* handle_ = nullptr;
  struct ck_function_list* fn_ = nullptr;
  struct ck_info info_ {};
  bool finalize_ = false;  // Warden's C_Initialize succeeded, so C_Finalize is Warden's to call
  mutable std::mutex mutex_;
};

// Uri is a parsed RFC 7512 PKCS#11 URI naming one key on one token.
struct Uri {
  std::string module_path;  // query attribute module-path (absolute), or empty
  std::string pin_file;     // query attribute pin-source ("file:" or an absolute path), or empty
  std::string label;        // path attribute object (CKA_LABEL), or empty
  std::string id;           // path attribute id (CKA_ID, raw bytes), or empty
  std::string text;         // the URI as canonically formatted, without pin or module attributes
  std::shared_ptr<P11KitUri> parsed;  // for matching modules, slots and tokens
};

// ParseUri parses `text` ("pkcs11:token=warden-ca;object=ca?module-path=...").
// Errors (InvalidArgument; the message never repeats a pin-value): not a
// pkcs11: URI, malformed, an unknown attribute, a pin-value (a PIN never sits
// in a config), a relative module-path, a pin-source that is not a file.
Result<Uri> ParseUri(std::string_view text);

// TokenLabel gives a token's label without its space padding.
std::string TokenLabel(const struct ck_token_info& info);

// FindSlot returns the one slot whose module, slot and token match `uri`.
// Errors: NotFound (no token matches; the message lists the tokens present,
// by label, and which slots are empty), InvalidArgument (several match: the
// URI must say which, e.g. with token=<label>), Unavailable (the module
// failed: the CKR). REQUIRES: module.mutex() is held.
Result<ck_slot_id_t> FindSlot(Module& module, const Uri& uri, struct ck_token_info* token);

// Login logs the session's application in as CKU_USER with the PIN read from
// `pin_file` (empty: no PIN; then Login succeeds only if the token needs
// none). CKR_USER_ALREADY_LOGGED_IN is success (login is per application
// and token, shared by all its sessions). Errors: PermissionDenied (the
// token refused the PIN, or the PIN is locked; or the PIN file's mode),
// NotFound (no PIN file), FailedPrecondition (the token needs a PIN and none
// is configured), Unavailable (other CKRs). REQUIRES: module.mutex() is held.
Status Login(Module& module, ck_session_handle_t session, const struct ck_token_info& token,
             const std::string& pin_file);

// FindObjects returns up to `max` handles of objects of `klass` whose label and
// id equal the non-empty ones given. REQUIRES: module.mutex() is held.
Result<std::vector<ck_object_handle_t>> FindObjects(Module& module, ck_session_handle_t session,
                                                     ck_object_class_t klass, const std::string& label,
                                                     const std::string& id, size_t max = 2);

// ReadAttribute reads one attribute's bytes. Errors: Unavailable with the CKR
// (CKR_ATTRIBUTE_SENSITIVE for a secret value). REQUIRES: module.mutex() is held.
Result<std::string> ReadAttribute(Module& module, ck_session_handle_t session, ck_object_handle_t object,
                                  ck_attribute_type_t type);
// ReadBool reads a CK_BBOOL attribute; *known (if given) tells whether the
// token reported it at all (false is returned then). REQUIRES: module.mutex() is held.
bool ReadBool(Module& module, ck_session_handle_t session, ck_object_handle_t object, ck_attribute_type_t type,
              bool* known);

// Ed25519PointFromEcPoint takes CKA_EC_POINT of an Edwards key as tokens
// give it (the 32 bytes, or them in a DER OCTET STRING) and returns the 32
// bytes, or empty when it is neither.
std::string Ed25519PointFromEcPoint(std::string_view ec_point);

}  // namespace warden::sshca::pkcs11
