#include "sshca/pkcs11.h"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <vector>

#include "sshca/secret_file.h"
#include "sshca/wire.h"

namespace warden::sshca::pkcs11 {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxPinFileBytes = 4096;

// The process-wide table of loaded modules, by canonical path. A weak_ptr:
// the Module goes (and is finalized) when its last holder does.
std::mutex& RegistryMutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, std::weak_ptr<Module>>& Registry() {
  static std::map<std::string, std::weak_ptr<Module>> r;
  return r;
}

// Padded turns one of PKCS#11's fixed-size, space-padded text fields into a string.
template <size_t N>
std::string Padded(const unsigned char (&field)[N]) {
  std::string s(reinterpret_cast<const char*>(field), N);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

std::string Version(const struct ck_version& v) {
  return std::to_string(v.major) + "." + std::to_string(v.minor);
}

// CheckAttributeNames refuses attributes RFC 7512 does not define: a typo
// such as "objet=ca" would otherwise widen the match silently (p11-kit keeps
// unknown query attributes as vendor queries, and Warden has none).
Status CheckAttributeNames(std::string_view text) {
  static const char* const kPath[] = {"token",  "manufacturer", "serial", "model", "library-manufacturer",
                                      "library-description", "library-version", "object", "type", "id",
                                      "slot-description", "slot-manufacturer", "slot-id"};
  static const char* const kQuery[] = {"module-name", "module-path", "pin-source", "pin-value"};
  std::string_view rest = text.substr(std::string_view("pkcs11:").size());
  const size_t q = rest.find('?');
  const std::string_view path = rest.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? std::string_view() : rest.substr(q + 1);
  auto check = [](std::string_view list, char sep, const char* const* known, size_t n, const char* where) {
    while (!list.empty()) {
      const std::string_view item = list.substr(0, list.find(sep));
      list.remove_prefix(std::min(list.size(), item.size() + 1));
      const std::string_view name = item.substr(0, item.find('='));
      if (!item.empty() && std::none_of(known, known + n, [&](const char* k) { return name == k; }))
        return InvalidArgument("the PKCS#11 URI has an unknown " + std::string(where) + " attribute \"" +
                               std::string(name) + "\" (RFC 7512)");
    }
    return Status::Ok();
  };
  if (Status s = check(path, ';', kPath, std::size(kPath), "path"); !s.ok()) return s;
  return check(query, '&', kQuery, std::size(kQuery), "query");
}

}  // namespace

std::string RvName(ck_rv_t rv) {
  switch (rv) {
#define WARDEN_CKR(name) \
  case name:             \
    return #name;
    WARDEN_CKR(CKR_OK)
    WARDEN_CKR(CKR_CANCEL)
    WARDEN_CKR(CKR_HOST_MEMORY)
    WARDEN_CKR(CKR_SLOT_ID_INVALID)
    WARDEN_CKR(CKR_GENERAL_ERROR)
    WARDEN_CKR(CKR_FUNCTION_FAILED)
    WARDEN_CKR(CKR_ARGUMENTS_BAD)
    WARDEN_CKR(CKR_NEED_TO_CREATE_THREADS)
    WARDEN_CKR(CKR_CANT_LOCK)
    WARDEN_CKR(CKR_ATTRIBUTE_READ_ONLY)
    WARDEN_CKR(CKR_ATTRIBUTE_SENSITIVE)
    WARDEN_CKR(CKR_ATTRIBUTE_TYPE_INVALID)
    WARDEN_CKR(CKR_ATTRIBUTE_VALUE_INVALID)
    WARDEN_CKR(CKR_ACTION_PROHIBITED)
    WARDEN_CKR(CKR_DATA_INVALID)
    WARDEN_CKR(CKR_DATA_LEN_RANGE)
    WARDEN_CKR(CKR_DEVICE_ERROR)
    WARDEN_CKR(CKR_DEVICE_MEMORY)
    WARDEN_CKR(CKR_DEVICE_REMOVED)
    WARDEN_CKR(CKR_FUNCTION_CANCELED)
    WARDEN_CKR(CKR_FUNCTION_NOT_SUPPORTED)
    WARDEN_CKR(CKR_KEY_HANDLE_INVALID)
    WARDEN_CKR(CKR_KEY_SIZE_RANGE)
    WARDEN_CKR(CKR_KEY_TYPE_INCONSISTENT)
    WARDEN_CKR(CKR_KEY_FUNCTION_NOT_PERMITTED)
    WARDEN_CKR(CKR_KEY_UNEXTRACTABLE)
    WARDEN_CKR(CKR_MECHANISM_INVALID)
    WARDEN_CKR(CKR_MECHANISM_PARAM_INVALID)
    WARDEN_CKR(CKR_OBJECT_HANDLE_INVALID)
    WARDEN_CKR(CKR_OPERATION_ACTIVE)
    WARDEN_CKR(CKR_OPERATION_NOT_INITIALIZED)
    WARDEN_CKR(CKR_PIN_INCORRECT)
    WARDEN_CKR(CKR_PIN_INVALID)
    WARDEN_CKR(CKR_PIN_LEN_RANGE)
    WARDEN_CKR(CKR_PIN_EXPIRED)
    WARDEN_CKR(CKR_PIN_LOCKED)
    WARDEN_CKR(CKR_SESSION_CLOSED)
    WARDEN_CKR(CKR_SESSION_COUNT)
    WARDEN_CKR(CKR_SESSION_HANDLE_INVALID)
    WARDEN_CKR(CKR_SESSION_PARALLEL_NOT_SUPPORTED)
    WARDEN_CKR(CKR_SESSION_READ_ONLY)
    WARDEN_CKR(CKR_SESSION_EXISTS)
    WARDEN_CKR(CKR_SESSION_READ_ONLY_EXISTS)
    WARDEN_CKR(CKR_SESSION_READ_WRITE_SO_EXISTS)
    WARDEN_CKR(CKR_SIGNATURE_INVALID)
    WARDEN_CKR(CKR_SIGNATURE_LEN_RANGE)
    WARDEN_CKR(CKR_TEMPLATE_INCOMPLETE)
    WARDEN_CKR(CKR_TEMPLATE_INCONSISTENT)
    WARDEN_CKR(CKR_TOKEN_NOT_PRESENT)
    WARDEN_CKR(CKR_TOKEN_NOT_RECOGNIZED)
    WARDEN_CKR(CKR_TOKEN_WRITE_PROTECTED)
    WARDEN_CKR(CKR_USER_ALREADY_LOGGED_IN)
    WARDEN_CKR(CKR_USER_NOT_LOGGED_IN)
    WARDEN_CKR(CKR_USER_PIN_NOT_INITIALIZED)
    WARDEN_CKR(CKR_USER_TYPE_INVALID)
    WARDEN_CKR(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)
    WARDEN_CKR(CKR_USER_TOO_MANY_TYPES)
    WARDEN_CKR(CKR_RANDOM_NO_RNG)
    WARDEN_CKR(CKR_DOMAIN_PARAMS_INVALID)
    WARDEN_CKR(CKR_CURVE_NOT_SUPPORTED)
    WARDEN_CKR(CKR_BUFFER_TOO_SMALL)
    WARDEN_CKR(CKR_CRYPTOKI_NOT_INITIALIZED)
    WARDEN_CKR(CKR_CRYPTOKI_ALREADY_INITIALIZED)
    WARDEN_CKR(CKR_FUNCTION_REJECTED)
#undef WARDEN_CKR
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "CKR 0x%lx", static_cast<unsigned long>(rv));
      return buf;
    }
  }
}

Result<std::shared_ptr<Module>> Module::Load(const std::string& path) {
  if (path.empty()) return InvalidArgument("no PKCS#11 module given");
  if (!fs::path(path).is_absolute())
    return InvalidArgument("PKCS#11 module " + path + " must be an absolute path");
  // stat follows symlinks: the file that dlopen maps is the one checked.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    int e = errno;
    if (e == ENOENT) return NotFound("PKCS#11 module " + path + " does not exist");
    return PermissionDenied("cannot stat PKCS#11 module " + path + ": " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) return InvalidArgument("PKCS#11 module " + path + " is not a regular file");
  // Loading a library runs its code inside Warden, next to the tokens' sessions.
  if ((st.st_mode & 022) != 0)
    return PermissionDenied("PKCS#11 module " + path + " may be written by group or others; run chmod go-w on it");
  std::error_code ec;
  const std::string canonical = fs::canonical(path, ec).string();
  const std::string key = ec ? path : canonical;

  std::lock_guard<std::mutex> registry_lock(RegistryMutex());
  if (std::shared_ptr<Module> existing = Registry()[key].lock()) return existing;

  std::shared_ptr<Module> m(new Module());
  m->path_ = path;
  ::dlerror();
  // RTLD_LOCAL: the module's symbols stay its own. RTLD_NODELETE: a module is
  // never unmapped while a thread it started might still run (several vendor
  // libraries start threads that outlive C_Finalize).
  m->handle_ = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (m->handle_ == nullptr) {
    const char* why = ::dlerror();
    return InvalidArgument("cannot load PKCS#11 module " + path + ": " + (why ? why : "dlopen failed"));
  }
  using GetFunctionList = ck_rv_t (*)(struct ck_function_list**);
  auto get = reinterpret_cast<GetFunctionList>(::dlsym(m->handle_, "C_GetFunctionList"));
  if (get == nullptr)
    return InvalidArgument(path + " is not a PKCS#11 module (it has no C_GetFunctionList)");
  if (ck_rv_t rv = get(&m->fn_); rv != CKR_OK || m->fn_ == nullptr)
    return InvalidArgument(path + " is not a usable PKCS#11 module (C_GetFunctionList: " + RvName(rv) + ")");
  if (m->fn_->version.major < 2)
    return InvalidArgument("PKCS#11 module " + path + " implements Cryptoki " + Version(m->fn_->version) +
                           "; Warden needs 2.x or later");
  if (Status s = m->Initialize(); !s.ok()) return s;
  if (ck_rv_t rv = m->fn_->C_GetInfo(&m->info_); rv != CKR_OK)
    return Unavailable("PKCS#11 module " + path + ": C_GetInfo failed: " + RvName(rv));
  Registry()[key] = m;
  return m;
}

Status Module::Initialize() {
  struct ck_c_initialize_args args {};
  args.flags = CKF_OS_LOCKING_OK;  // the module may use OS locks; Warden passes no mutex callbacks
  ck_rv_t rv = fn_->C_Initialize(&args);
  if (rv == CKR_CANT_LOCK) rv = fn_->C_Initialize(nullptr);  // no locking: mutex_ serializes Warden's calls
  if (rv == CKR_OK) {
    finalize_ = true;
    return Status::Ok();
  }
  // Another part of this process initialized the module first; it owns C_Finalize.
  if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) return Status::Ok();
  return Unavailable("PKCS#11 module " + path_ + ": C_Initialize failed: " + RvName(rv));
}

Status Module::Reinitialize() { return Initialize(); }

Module::~Module() {
  if (fn_ != nullptr && finalize_) fn_->C_Finalize(nullptr);
  if (handle_ != nullptr) ::dlclose(handle_);  // RTLD_NODELETE keeps it mapped
}

std::string Module::Describe() const {
  return path_ + " (" + Padded(info_.manufacturer_id) + ", " + Padded(info_.library_description) + " " +
         Version(info_.library_version) + ")";
}

Result<Uri> ParseUri(std::string_view text) {
  constexpr std::string_view kScheme = "pkcs11:";
  if (text.substr(0, kScheme.size()) != kScheme)
    return InvalidArgument("not a PKCS#11 URI (RFC 7512 URIs start with \"pkcs11:\")");
  if (text.find('\0') != std::string_view::npos) return InvalidArgument("the PKCS#11 URI contains a NUL byte");
  // Checked before parsing so that no message below can echo a PIN.
  if (text.find("pin-value") != std::string_view::npos)
    return InvalidArgument("the PKCS#11 URI carries a pin-value; a PIN never belongs in a config. Put it in a file "
                           "(mode 0600) and name that file with pin-source=file:<path> or ssh.pkcs11_pin_file");
  if (Status s = CheckAttributeNames(text); !s.ok()) return s;

  Uri out;
  out.parsed.reset(p11_kit_uri_new(), p11_kit_uri_free);
  if (!out.parsed) return Internal("p11_kit_uri_new failed");
  const std::string owned(text);
  int rc = p11_kit_uri_parse(owned.c_str(), P11_KIT_URI_FOR_ANY, out.parsed.get());
  if (rc != P11_KIT_URI_OK)
    return InvalidArgument(std::string("malformed PKCS#11 URI: ") + p11_kit_uri_message(rc));
  if (p11_kit_uri_any_unrecognized(out.parsed.get()))
    return InvalidArgument("the PKCS#11 URI has an attribute p11-kit does not recognise (RFC 7512)");

  if (const char* m = p11_kit_uri_get_module_path(out.parsed.get()); m != nullptr && *m != '\0') {
    out.module_path = m;
    if (!fs::path(out.module_path).is_absolute())
      return InvalidArgument("module-path in the PKCS#11 URI must be an absolute path");
  }
  if (const char* p = p11_kit_uri_get_pin_source(out.parsed.get()); p != nullptr && *p != '\0') {
    std::string source = p;
    // RFC 7512 leaves the form of pin-source open; Warden reads files only
    // ("file:/path", "file:///path" or "/path"), never runs a program ("|cmd").
    if (source.rfind("file://", 0) == 0)
      source = source.substr(7);
    else if (source.rfind("file:", 0) == 0)
      source = source.substr(5);
    if (source.empty() || source[0] != '/')
      return InvalidArgument("pin-source in the PKCS#11 URI must name a file by absolute path (file:/path)");
    out.pin_file = source;
  }
  if (CK_ATTRIBUTE_PTR a = p11_kit_uri_get_attribute(out.parsed.get(), CKA_LABEL); a != nullptr)
    out.label.assign(static_cast<const char*>(a->value), a->value_len);
  if (CK_ATTRIBUTE_PTR a = p11_kit_uri_get_attribute(out.parsed.get(), CKA_ID); a != nullptr)
    out.id.assign(static_cast<const char*>(a->value), a->value_len);
  if (CK_ATTRIBUTE_PTR a = p11_kit_uri_get_attribute(out.parsed.get(), CKA_CLASS); a != nullptr) {
    ck_object_class_t klass = 0;
    if (a->value_len == sizeof klass) std::memcpy(&klass, a->value, sizeof klass);
    if (klass != CKO_PRIVATE_KEY && klass != CKO_PUBLIC_KEY)
      return InvalidArgument("type= in the PKCS#11 URI must be private (the CA key) or be left out");
    // The type is Warden's to choose (the private key to sign, its public
    // twin for the public key): matching uses only label and id.
    p11_kit_uri_clear_attribute(out.parsed.get(), CKA_CLASS);
  }

  // The canonical text for messages: without module and PIN attributes.
  std::shared_ptr<P11KitUri> shown(p11_kit_uri_new(), p11_kit_uri_free);
  if (shown && p11_kit_uri_parse(owned.c_str(), P11_KIT_URI_FOR_ANY, shown.get()) == P11_KIT_URI_OK) {
    p11_kit_uri_set_module_path(shown.get(), nullptr);
    p11_kit_uri_set_pin_source(shown.get(), nullptr);
    p11_kit_uri_clear_attribute(shown.get(), CKA_CLASS);
    char* formatted = nullptr;
    if (p11_kit_uri_format(shown.get(), P11_KIT_URI_FOR_ANY, &formatted) == P11_KIT_URI_OK && formatted) {
      out.text = formatted;
      std::free(formatted);
    }
  }
  if (out.text.empty()) out.text = "pkcs11:";
  return out;
}

std::string TokenLabel(const struct ck_token_info& info) { return Padded(info.label); }

Result<ck_slot_id_t> FindSlot(Module& module, const Uri& uri, struct ck_token_info* token) {
  struct ck_function_list* f = module.fn();
  if (!p11_kit_uri_match_module_info(uri.parsed.get(), const_cast<struct ck_info*>(&module.info())))
    return NotFound("PKCS#11 module " + module.Describe() + " is not the library " + uri.text + " names");
  unsigned long count = 0;
  ck_rv_t rv = f->C_GetSlotList(1, nullptr, &count);
  std::vector<ck_slot_id_t> slots;
  for (int tries = 0; rv == CKR_OK && tries < 4; ++tries) {  // the list may grow between the two calls
    slots.resize(count);
    rv = f->C_GetSlotList(1, slots.data(), &count);
    if (rv != CKR_BUFFER_TOO_SMALL) break;
    rv = f->C_GetSlotList(1, nullptr, &count);
  }
  if (rv != CKR_OK) return Unavailable("C_GetSlotList failed: " + RvName(rv));
  slots.resize(count);
  const CK_SLOT_ID wanted_slot = p11_kit_uri_get_slot_id(uri.parsed.get());
  std::vector<std::pair<ck_slot_id_t, struct ck_token_info>> matches;
  std::string seen;
  for (ck_slot_id_t slot : slots) {
    struct ck_slot_info slot_info {};
    struct ck_token_info info {};
    if (f->C_GetSlotInfo(slot, &slot_info) != CKR_OK || (slot_info.flags & CKF_TOKEN_PRESENT) == 0) continue;
    if (f->C_GetTokenInfo(slot, &info) != CKR_OK) continue;
    if ((info.flags & CKF_TOKEN_INITIALIZED) == 0) continue;
    seen += (seen.empty() ? "\"" : ", \"") + TokenLabel(info) + "\" (slot " + std::to_string(slot) + ")";
    if (wanted_slot != static_cast<CK_SLOT_ID>(-1) && wanted_slot != slot) continue;
    if (!p11_kit_uri_match_slot_info(uri.parsed.get(), &slot_info)) continue;
    if (!p11_kit_uri_match_token_info(uri.parsed.get(), &info)) continue;
    matches.emplace_back(slot, info);
  }
  if (matches.empty())
    return NotFound("no token matches " + uri.text + " in PKCS#11 module " + module.path() + " (tokens present: " +
                    (seen.empty() ? std::string("none") : seen) + ")");
  if (matches.size() > 1)
    return InvalidArgument(std::to_string(matches.size()) + " tokens match " + uri.text + " (" + seen +
                           "); name one with token=<label> in the URI");
  if (token != nullptr) *token = matches[0].second;
  return matches[0].first;
}

Status Login(Module& module, ck_session_handle_t session, const struct ck_token_info& token,
             const std::string& pin_file) {
  const std::string where = "token \"" + TokenLabel(token) + "\"";
  if (pin_file.empty()) {
    if ((token.flags & CKF_LOGIN_REQUIRED) != 0)
      return FailedPrecondition(where + " needs a PIN: put it in a file (mode 0600) and set ssh.pkcs11_pin_file, "
                                        "or pin-source=file:<path> in the URI");
    return Status::Ok();
  }
  // Read at every login, never kept: a rotated PIN file is picked up at the
  // next reopen, and no copy lives beyond this function.
  SecretString pin;
  if (Status s = ReadSecretFile(pin_file, "PKCS#11 PIN file", "create it with the token's user PIN (mode 0600)",
                                kMaxPinFileBytes, &pin);
      !s.ok())
    return s;
  // One trailing newline is the editor's, not the PIN's.
  if (!pin.bytes.empty() && pin.bytes.back() == '\n') pin.bytes.pop_back();
  if (!pin.bytes.empty() && pin.bytes.back() == '\r') pin.bytes.pop_back();
  if (pin.bytes.empty()) return InvalidArgument("PKCS#11 PIN file " + pin_file + " holds an empty PIN");
  ck_rv_t rv = module.fn()->C_Login(session, CKU_USER, reinterpret_cast<unsigned char*>(pin.bytes.data()),
                                    pin.bytes.size());
  pin.Wipe();
  switch (rv) {
    case CKR_OK:
    case CKR_USER_ALREADY_LOGGED_IN:
      return Status::Ok();
    case CKR_PIN_INCORRECT:
    case CKR_PIN_INVALID:
    case CKR_PIN_LEN_RANGE:
      return PermissionDenied(where + " refused the PIN from " + pin_file + " (" + RvName(rv) + ")");
    case CKR_PIN_LOCKED:
    case CKR_PIN_EXPIRED:
      return PermissionDenied(where + ": the user PIN is " + (rv == CKR_PIN_LOCKED ? "locked" : "expired") + " (" +
                              RvName(rv) + "); reset it with the token's tools");
    default:
      return Unavailable(where + ": C_Login failed: " + RvName(rv));
  }
}

Result<std::vector<ck_object_handle_t>> FindObjects(Module& module, ck_session_handle_t session,
                                                     ck_object_class_t klass, const std::string& label,
                                                     const std::string& id, size_t max) {
  struct ck_function_list* f = module.fn();
  std::vector<struct ck_attribute> tmpl;
  tmpl.push_back({CKA_CLASS, &klass, sizeof klass});
  if (!label.empty()) tmpl.push_back({CKA_LABEL, const_cast<char*>(label.data()), label.size()});
  if (!id.empty()) tmpl.push_back({CKA_ID, const_cast<char*>(id.data()), id.size()});
  ck_rv_t rv = f->C_FindObjectsInit(session, tmpl.data(), tmpl.size());
  if (rv != CKR_OK) return Status(Unavailable("C_FindObjectsInit failed: " + RvName(rv)));
  std::vector<ck_object_handle_t> found(max);
  unsigned long n = 0;
  rv = f->C_FindObjects(session, found.data(), found.size(), &n);
  f->C_FindObjectsFinal(session);
  if (rv != CKR_OK) return Status(Unavailable("C_FindObjects failed: " + RvName(rv)));
  found.resize(n);
  return found;
}

Result<std::string> ReadAttribute(Module& module, ck_session_handle_t session, ck_object_handle_t object,
                                  ck_attribute_type_t type) {
  struct ck_attribute a {type, nullptr, 0};
  ck_rv_t rv = module.fn()->C_GetAttributeValue(session, object, &a, 1);
  if (rv != CKR_OK) return Status(Unavailable(RvName(rv)));
  if (a.value_len == static_cast<unsigned long>(-1)) return Status(Unavailable("CKR_ATTRIBUTE_TYPE_INVALID"));
  if (a.value_len > 64 * 1024) return Status(Unavailable("attribute too large"));
  std::string value(a.value_len, '\0');
  a.value = value.data();
  rv = module.fn()->C_GetAttributeValue(session, object, &a, 1);
  if (rv != CKR_OK) return Status(Unavailable(RvName(rv)));
  value.resize(a.value_len);
  return value;
}

bool ReadBool(Module& module, ck_session_handle_t session, ck_object_handle_t object, ck_attribute_type_t type,
              bool* known) {
  unsigned char v = 0;
  struct ck_attribute a {type, &v, sizeof v};
  const bool ok = module.fn()->C_GetAttributeValue(session, object, &a, 1) == CKR_OK && a.value_len == sizeof v;
  if (known != nullptr) *known = ok;
  return ok && v != 0;
}

std::string Ed25519PointFromEcPoint(std::string_view p) {
  if (p.size() == 32) return std::string(p);
  // DER OCTET STRING: tag 0x04, length 0x20, then the point (PKCS#11 3.0
  // asks for this form; SoftHSM gives it).
  if (p.size() == 34 && static_cast<unsigned char>(p[0]) == 0x04 && static_cast<unsigned char>(p[1]) == 0x20)
    return std::string(p.substr(2));
  return "";
}

}  // namespace warden::sshca::pkcs11
