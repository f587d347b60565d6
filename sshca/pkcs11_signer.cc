#include "sshca/pkcs11_signer.h"

#include <algorithm>
#include <cstring>
#include <tuple>

#include "core/clock.h"
#include "sshca/ed25519_key.h"

namespace warden::sshca {
namespace {

using pkcs11::Module;
using pkcs11::RvName;
using pkcs11::Uri;

constexpr size_t kSignatureBytes = 64;
// CKA_EC_PARAMS of an Ed25519 key: the OID id-Ed25519 (RFC 8410, 1.3.101.112)
// in DER, or the PrintableString "edwards25519" (PKCS#11 3.0 allows both;
// some tokens know only one).
constexpr unsigned char kEd25519Oid[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
constexpr unsigned char kEd25519Name[] = {0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's', '2', '5', '5', '1', '9'};

std::string_view AsView(const unsigned char* p, size_t n) { return {reinterpret_cast<const char*>(p), n}; }

// BrokenSession: return values after which the session (or the key handle
// found in it) is no use, and a fresh one may well work.
bool BrokenSession(ck_rv_t rv) {
  switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_DEVICE_REMOVED:
    case CKR_DEVICE_ERROR:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_KEY_HANDLE_INVALID:
    case CKR_OBJECT_HANDLE_INVALID:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
      return true;
    default:
      return false;
  }
}

struct Resolved {
  std::shared_ptr<Module> module;
  Uri uri;
  std::string pin_file;
};

// Resolve parses the URI, settles where the module and the PIN come from,
// and loads the module.
Result<Resolved> Resolve(const Pkcs11Options& o) {
  Result<Uri> uri = pkcs11::ParseUri(o.uri);
  if (!uri.ok()) return uri.status();
  Resolved r;
  r.uri = std::move(uri.value());
  // Each of the two may come from the config or from the URI, not from both differently.
  auto pick = [](const std::string& config, const std::string& in_uri, const std::string& what,
                 const std::string& key, const std::string& attribute, std::string* out) {
    if (!config.empty() && !in_uri.empty() && config != in_uri)
      return InvalidArgument("the PKCS#11 " + what + " is given twice, differently: " + key + " is " + config +
                             " and the URI's " + attribute + " is " + in_uri + "; keep one");
    *out = config.empty() ? in_uri : config;
    return Status::Ok();
  };
  std::string module_path;
  if (Status s = pick(o.module_path, r.uri.module_path, "module", "ssh.pkcs11_module", "module-path", &module_path);
      !s.ok())
    return s;
  if (Status s = pick(o.pin_file, r.uri.pin_file, "PIN file", "ssh.pkcs11_pin_file", "pin-source", &r.pin_file);
      !s.ok())
    return s;
  if (module_path.empty())
    return InvalidArgument("no PKCS#11 module for " + r.uri.text +
                           ": set ssh.pkcs11_module, or module-path=<library> in the URI "
                           "(e.g. /usr/lib/softhsm/libsofthsm2.so)");
  Result<std::shared_ptr<Module>> module = Module::Load(module_path);
  if (!module.ok()) return module.status();
  r.module = std::move(module.value());
  return r;
}

// Session closes a session it owns (key creation's read-write session).
struct Session {
  Module* module;
  ck_session_handle_t handle = CK_INVALID_HANDLE;
  ~Session() {
    if (handle != CK_INVALID_HANDLE) module->fn()->C_CloseSession(handle);
  }
};

ck_rv_t SignWith(Module& m, ck_session_handle_t session, ck_object_handle_t key, std::string_view data,
                 std::string* signature) {
  struct ck_mechanism mechanism {CKM_EDDSA, nullptr, 0};  // no parameters: pure Ed25519
  ck_rv_t rv = m.fn()->C_SignInit(session, &mechanism, key);
  if (rv != CKR_OK) return rv;
  // Room for an Ed448 signature too: a short buffer would leave the
  // operation active (CKR_BUFFER_TOO_SMALL); a wrong length fails verification.
  unsigned char buf[128];
  unsigned long len = sizeof buf;
  rv = m.fn()->C_Sign(session, reinterpret_cast<unsigned char*>(const_cast<char*>(data.data())), data.size(), buf,
                      &len);
  if (rv == CKR_OK) signature->assign(reinterpret_cast<char*>(buf), std::min<unsigned long>(len, sizeof buf));
  return rv;
}

// FoundKey is the CA key on a token: the private key's handle and the public key.
struct FoundKey {
  ck_object_handle_t handle = CK_INVALID_HANDLE;
  std::string public_key;  // 32 bytes
};

// FindKey finds the one private key the URI names, checks that Warden may use
// it as its CA key, and reads its public key from the public key object with
// the same label and id.
Result<FoundKey> FindKey(Module& m, ck_session_handle_t session, const Uri& uri, const std::string& token) {
  const std::string where = uri.text + " on token \"" + token + "\"";
  auto privs = pkcs11::FindObjects(m, session, CKO_PRIVATE_KEY, uri.label, uri.id);
  if (!privs.ok()) return Unavailable("token \"" + token + "\": " + privs.status().message());
  if (privs->empty())
    return NotFound("no private key matches " + where + " (removed? a typo in object= or id=?); create one with "
                    "`warden ca init --pkcs11 '<uri>'`");
  if (privs->size() > 1)
    return InvalidArgument("several private keys match " + where + "; name one with id= in the URI");
  FoundKey key;
  key.handle = privs->front();

  Result<std::string> type = pkcs11::ReadAttribute(m, session, key.handle, CKA_KEY_TYPE);
  ck_key_type_t key_type = ~0UL;
  if (type.ok() && type->size() == sizeof key_type) std::memcpy(&key_type, type->data(), sizeof key_type);
  if (key_type != CKK_EC_EDWARDS)
    return InvalidArgument("the key " + where + " is not an Ed25519 key (CKA_KEY_TYPE is not CKK_EC_EDWARDS); "
                           "Warden's SSH CA is Ed25519");
  if (Result<std::string> params = pkcs11::ReadAttribute(m, session, key.handle, CKA_EC_PARAMS);
      params.ok() && params.value() != AsView(kEd25519Oid, sizeof kEd25519Oid) &&
      params.value() != AsView(kEd25519Name, sizeof kEd25519Name))
    return InvalidArgument("the key " + where + " is an Edwards key on another curve than edwards25519 (Ed448?)");
  bool known = false;
  if (!pkcs11::ReadBool(m, session, key.handle, CKA_SIGN, &known) && known)
    return FailedPrecondition("the key " + where + " may not sign (CKA_SIGN is false)");
  // The point of a token: the key can neither be read nor leave it.
  if (!pkcs11::ReadBool(m, session, key.handle, CKA_SENSITIVE, &known))
    return FailedPrecondition("the key " + where + " is not sensitive (CKA_SENSITIVE " +
                              (known ? "is false" : "not reported") +
                              "): its value could be read out of the token; Warden refuses it as its CA key");
  if (pkcs11::ReadBool(m, session, key.handle, CKA_EXTRACTABLE, &known) || !known)
    return FailedPrecondition("the key " + where + " is extractable (CKA_EXTRACTABLE " +
                              (known ? "is true" : "not reported") +
                              "): it could be wrapped out of the token; Warden refuses it as its CA key");

  // The public twin shares the label and, where set, the id (what
  // C_GenerateKeyPair, pkcs11-tool and p11tool all write).
  Result<std::string> id = pkcs11::ReadAttribute(m, session, key.handle, CKA_ID);
  const std::string& pub_id = id.ok() && !id->empty() ? id.value() : uri.id;
  auto pubs = pkcs11::FindObjects(m, session, CKO_PUBLIC_KEY, uri.label, pub_id);
  if (!pubs.ok()) return Unavailable("token \"" + token + "\": " + pubs.status().message());
  if (pubs->empty())
    return NotFound("no public key object goes with the private key " + where +
                    " (same label and id); Warden reads the CA public key from it");
  if (pubs->size() > 1)
    return InvalidArgument("several public key objects go with the private key " + where + "; name one with id=");
  Result<std::string> point = pkcs11::ReadAttribute(m, session, pubs->front(), CKA_EC_POINT);
  if (point.ok()) key.public_key = pkcs11::Ed25519PointFromEcPoint(point.value());
  if (key.public_key.empty())
    return InvalidArgument("the public key object of " + where + " holds no Ed25519 point (CKA_EC_POINT" +
                           (point.ok() ? ")" : ": " + point.status().message() + ")"));
  return key;
}

std::string Probe() { return "warden PKCS#11 signer probe " + RandomHex(16); }

}  // namespace

Result<std::unique_ptr<Pkcs11Signer>> Pkcs11Signer::Open(const Pkcs11Options& options) {
  Result<Resolved> resolved = Resolve(options);
  if (!resolved.ok()) return resolved.status();
  std::unique_ptr<Pkcs11Signer> s(new Pkcs11Signer());
  s->module_ = std::move(resolved->module);
  s->uri_ = std::move(resolved->uri);
  s->pin_file_ = std::move(resolved->pin_file);
  s->description_ = "PKCS#11 key " + s->uri_.text + " (module " + s->module_->path() + ")";
  std::lock_guard<std::mutex> lock(s->module_->mutex());
  if (Status st = s->OpenSession(&s->public_key_); !st.ok()) return st;
  const std::string probe = Probe();
  std::string signature;
  if (ck_rv_t rv = s->SignOnce(probe, &signature); rv != CKR_OK)
    return Unavailable(s->description_ + ": the token cannot sign with CKM_EDDSA: " + RvName(rv));
  if (!VerifyEd25519(s->public_key_, probe, signature))
    return FailedPrecondition(s->description_ + ": the public key object does not belong to the private key "
                                                "(a probe signature does not verify)");
  return s;
}

Pkcs11Signer::~Pkcs11Signer() {
  if (!module_) return;
  std::lock_guard<std::mutex> lock(module_->mutex());
  CloseSession();
}

Status Pkcs11Signer::OpenSession(std::string* first_public_key) const {
  Module& m = *module_;
  // Someone else in the process may have finalized the module under Warden.
  unsigned long n = 0;
  if (m.fn()->C_GetSlotList(1, nullptr, &n) == CKR_CRYPTOKI_NOT_INITIALIZED)
    if (Status s = m.Reinitialize(); !s.ok()) return s;
  struct ck_token_info token {};
  Result<ck_slot_id_t> slot = pkcs11::FindSlot(m, uri_, &token);
  if (!slot.ok()) return slot.status();
  const std::string label = pkcs11::TokenLabel(token);
  ck_session_handle_t session = CK_INVALID_HANDLE;
  // Read-only: signing needs nothing more, and a token's read-write session
  // count is often smaller.
  ck_rv_t rv = m.fn()->C_OpenSession(slot.value(), CKF_SERIAL_SESSION, nullptr, nullptr, &session);
  if (rv != CKR_OK) return Unavailable("token \"" + label + "\": C_OpenSession failed: " + RvName(rv));
  Session guard{&m, session};
  if (Status s = pkcs11::Login(m, session, token, pin_file_); !s.ok()) return s;
  Result<FoundKey> key = FindKey(m, session, uri_, label);
  if (!key.ok()) return key.status();
  if (first_public_key != nullptr) {
    *first_public_key = key->public_key;
  } else if (key->public_key != public_key_) {
    return FailedPrecondition("the key " + uri_.text + " on token \"" + label +
                              "\" is no longer the CA key Warden started with (" +
                              FingerprintOfBlob(Ed25519PublicKeyBlob(public_key_)) + "; the token now has " +
                              FingerprintOfBlob(Ed25519PublicKeyBlob(key->public_key)) +
                              "); restart Warden once targets trust the new key");
  }
  guard.handle = CK_INVALID_HANDLE;  // kept
  session_ = session;
  key_ = key->handle;
  return Status::Ok();
}

void Pkcs11Signer::CloseSession() const {
  if (session_ != CK_INVALID_HANDLE) module_->fn()->C_CloseSession(session_);  // may fail: it may be gone already
  session_ = CK_INVALID_HANDLE;
  key_ = CK_INVALID_HANDLE;
}

ck_rv_t Pkcs11Signer::SignOnce(std::string_view data, std::string* signature) const {
  return SignWith(*module_, session_, key_, data, signature);
}

Result<std::string> Pkcs11Signer::Sign(std::string_view data) const {
  std::lock_guard<std::mutex> lock(module_->mutex());
  bool reopened = false;
  if (session_ == CK_INVALID_HANDLE) {  // an earlier reopen failed; try again now
    reopened = true;
    ++reopens_;
    if (Status s = OpenSession(); !s.ok())
      return Status(s.code(), description_ + ": cannot reopen the session to the token: " + s.message());
  }
  std::string signature;
  ck_rv_t rv = SignOnce(data, &signature);
  if (rv != CKR_OK && BrokenSession(rv) && !reopened) {
    CloseSession();
    ++reopens_;
    if (Status s = OpenSession(); !s.ok())
      return Status(s.code(), description_ + ": the session to the token broke (" + RvName(rv) +
                                  ") and could not be reopened: " + s.message());
    rv = SignOnce(data, &signature);
  }
  if (rv != CKR_OK) {
    if (BrokenSession(rv)) CloseSession();
    return Unavailable(description_ + ": C_Sign failed: " + RvName(rv));
  }
  if (signature.size() != kSignatureBytes || !VerifyEd25519(public_key_, data, signature))
    return Internal(description_ + ": the token returned a signature that does not verify under the CA public key");
  return signature;
}

Result<std::string> CreatePkcs11CaKey(const Pkcs11Options& options) {
  Result<Resolved> resolved = Resolve(options);
  if (!resolved.ok()) return resolved.status();
  Module& m = *resolved->module;
  const Uri& uri = resolved->uri;
  if (uri.label.empty())
    return InvalidArgument("name the new key in the URI with object=<label> (e.g. pkcs11:token=warden-ca;object=ca)");
  std::lock_guard<std::mutex> lock(m.mutex());
  struct ck_token_info token {};
  Result<ck_slot_id_t> slot = pkcs11::FindSlot(m, uri, &token);
  if (!slot.ok()) return slot.status();
  const std::string label = pkcs11::TokenLabel(token);
  const std::string where = "token \"" + label + "\"";
  for (auto [mechanism, flag, what] : {std::tuple{CKM_EC_EDWARDS_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR,
                                                  "CKM_EC_EDWARDS_KEY_PAIR_GEN"},
                                       std::tuple{CKM_EDDSA, CKF_SIGN, "CKM_EDDSA"}}) {
    struct ck_mechanism_info info {};
    ck_rv_t rv = m.fn()->C_GetMechanismInfo(slot.value(), mechanism, &info);
    if (rv != CKR_OK || (info.flags & flag) == 0)
      return FailedPrecondition(where + " does not support Ed25519 (" + what +
                                (rv != CKR_OK ? ": " + RvName(rv) : std::string(" lacks the flag")) + ")");
  }
  Session session{&m};
  ck_rv_t rv = m.fn()->C_OpenSession(slot.value(), CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr,
                                     &session.handle);
  if (rv != CKR_OK) return Unavailable(where + ": C_OpenSession (read-write) failed: " + RvName(rv));
  if (Status s = pkcs11::Login(m, session.handle, token, resolved->pin_file); !s.ok()) return s;

  // Never replace a key that targets may already trust.
  for (ck_object_class_t klass : {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY}) {
    auto existing = pkcs11::FindObjects(m, session.handle, klass, uri.label, uri.id);
    if (!existing.ok()) return Unavailable(where + ": " + existing.status().message());
    if (!existing->empty())
      return FailedPrecondition(where + " already holds a key named by " + uri.text +
                                "; Warden never replaces a CA key (targets may trust it). Use it as is "
                                "(`warden ca pubkey`), or delete it with the token's tools first");
  }

  const std::string id = uri.id.empty() ? RandomBytes(16) : uri.id;
  unsigned char yes = 1, no = 0;
  std::string label_bytes = uri.label, id_bytes = id;
  auto generate = [&](const unsigned char* params, size_t params_len, ck_object_handle_t* pub,
                      ck_object_handle_t* priv) {
    struct ck_attribute pub_tmpl[] = {
        {CKA_TOKEN, &yes, 1},
        {CKA_PRIVATE, &no, 1},
        {CKA_VERIFY, &yes, 1},
        {CKA_EC_PARAMS, const_cast<unsigned char*>(params), params_len},
        {CKA_LABEL, label_bytes.data(), label_bytes.size()},
        {CKA_ID, id_bytes.data(), id_bytes.size()},
    };
    struct ck_attribute priv_tmpl[] = {
        {CKA_TOKEN, &yes, 1},       {CKA_PRIVATE, &yes, 1},
        {CKA_SENSITIVE, &yes, 1},   {CKA_EXTRACTABLE, &no, 1},
        {CKA_SIGN, &yes, 1},        {CKA_DERIVE, &no, 1},
        {CKA_LABEL, label_bytes.data(), label_bytes.size()},
        {CKA_ID, id_bytes.data(), id_bytes.size()},
    };
    struct ck_mechanism mechanism {CKM_EC_EDWARDS_KEY_PAIR_GEN, nullptr, 0};
    return m.fn()->C_GenerateKeyPair(session.handle, &mechanism, pub_tmpl, std::size(pub_tmpl), priv_tmpl,
                                     std::size(priv_tmpl), pub, priv);
  };
  ck_object_handle_t pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
  rv = generate(kEd25519Oid, sizeof kEd25519Oid, &pub, &priv);
  if (rv == CKR_ATTRIBUTE_VALUE_INVALID || rv == CKR_CURVE_NOT_SUPPORTED || rv == CKR_DOMAIN_PARAMS_INVALID ||
      rv == CKR_TEMPLATE_INCONSISTENT)
    rv = generate(kEd25519Name, sizeof kEd25519Name, &pub, &priv);
  if (rv != CKR_OK) return Unavailable(where + ": C_GenerateKeyPair (Ed25519) failed: " + RvName(rv));

  // What Warden will check at every start, checked now: a key that fails it
  // is destroyed rather than left for an operator to find.
  auto destroy = [&] {
    m.fn()->C_DestroyObject(session.handle, priv);
    m.fn()->C_DestroyObject(session.handle, pub);
  };
  Uri named = uri;
  named.id = id;
  Result<FoundKey> key = FindKey(m, session.handle, named, label);
  if (!key.ok()) {
    destroy();
    return key.status();
  }
  bool known = false;
  if (!pkcs11::ReadBool(m, session.handle, key->handle, CKA_TOKEN, &known)) {
    destroy();
    return FailedPrecondition(where + " made a key that is not a token object (CKA_TOKEN); it was destroyed");
  }
  const std::string probe = Probe();
  std::string signature;
  rv = SignWith(m, session.handle, key->handle, probe, &signature);
  if (rv != CKR_OK || !VerifyEd25519(key->public_key, probe, signature)) {
    destroy();
    return FailedPrecondition(where + ": the new key does not sign correctly with CKM_EDDSA (" + RvName(rv) +
                              "); it was destroyed");
  }
  return Ed25519PublicKeyLine(key->public_key, "warden-ssh-ca");
}

}  // namespace warden::sshca
