// Tests for sshca/pkcs11_signer.h against a real PKCS#11 token: SoftHSM2 in a
// scratch directory (tests/unit/softhsm_fixture.h), a fresh token per test.
// "Another component" acting on the token from inside this process uses the
// same module through pkcs11::Module (as a second library would); another
// process is SoftHSM's or OpenSC's own tools.
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstring>
#include <functional>
#include <thread>

#include "core/clock.h"
#include "sshca/ca.h"
#include "sshca/pkcs11.h"
#include "sshca/pkcs11_signer.h"
#include "tests/unit/softhsm_fixture.h"

namespace warden::sshca {
namespace {

using testing::CommandResult;
using testing::ReadFile;
using testing::Run;
using testing::SoftHsm;
using testing::TempDir;
using testing::WriteFile;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::chrono::system_clock::time_point kT0 = std::chrono::system_clock::from_time_t(1767225600);
constexpr unsigned char kEd25519Oid[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
constexpr unsigned char kP256Oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};

std::unique_ptr<SoftHsm> Token() {
  if (!SoftHsm::Available()) FAIL("SoftHSM2 is not installed: run scripts/setup.sh --tests");
  auto hsm = SoftHsm::Start();
  INFO((hsm.ok() ? "" : hsm.status().message()));
  REQUIRE(hsm.ok());
  return std::move(hsm.value());
}

CertificateRequest SampleRequest() {
  CertificateRequest r;
  r.key_id = "warden:call-1:session-1:ssh_run";
  r.principals = {"warden-a", "warden-b"};
  r.force_command = "timeout -s KILL 60 sh -c 'uname -a'";
  r.source_addresses = {"127.0.0.1/32", "10.0.0.0/8"};
  r.lifetime = 300s;
  r.clock_skew = 30s;
  return r;
}

// SignatureHolds checks a certificate's signature with OpenSSL: the last
// field is string(string "ssh-ed25519", string sig[64]) = 87 bytes.
bool SignatureHolds(const CertificateAuthority& ca, const Certificate& cert) {
  if (cert.blob.size() < 87) return false;
  const std::string tbs = cert.blob.substr(0, cert.blob.size() - 87);
  const std::string sig = cert.blob.substr(cert.blob.size() - 64);
  return VerifyEd25519(ca.signer().public_key(), tbs, sig);
}

std::string KeygenList(const TempDir& dir, const std::string& line, const std::string& name) {
  WriteFile(dir.path() / name, line + "\n");
  CommandResult r = Run({"ssh-keygen", "-L", "-f", (dir.path() / name).string()});
  INFO(r.err);
  REQUIRE(r.status == 0);
  return r.out.substr(r.out.find('\n') + 1);
}

// Other is another component of this process on the same token: it loads the
// same module (Module::Load shares it, as dlopen would), has its own
// read-write session, and is logged in.
struct Other {
  explicit Other(const SoftHsm& hsm) {
    auto loaded = pkcs11::Module::Load(SoftHsm::ModulePath());
    REQUIRE(loaded.ok());
    module = loaded.value();
    auto uri = pkcs11::ParseUri(hsm.Uri());
    REQUIRE(uri.ok());
    std::lock_guard<std::mutex> lock(module->mutex());
    struct ck_token_info info {};
    auto found = pkcs11::FindSlot(*module, uri.value(), &info);
    REQUIRE(found.ok());
    slot = found.value();
    REQUIRE(f()->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &session) == CKR_OK);
    REQUIRE(pkcs11::Login(*module, session, info, hsm.pin_file()).ok());
  }
  ~Other() {
    std::lock_guard<std::mutex> lock(module->mutex());
    if (session != CK_INVALID_HANDLE) f()->C_CloseSession(session);
  }
  struct ck_function_list* f() const { return module->fn(); }

  std::vector<ck_object_handle_t> Find(ck_object_class_t klass, const std::string& label) {
    std::lock_guard<std::mutex> lock(module->mutex());
    auto found = pkcs11::FindObjects(*module, session, klass, label, "", 8);
    REQUIRE(found.ok());
    return found.value();
  }
  // CloseAll closes every session of this application on the token: the
  // signer's too, and with the last one the login goes.
  void CloseAll() {
    std::lock_guard<std::mutex> lock(module->mutex());
    REQUIRE(f()->C_CloseAllSessions(slot) == CKR_OK);
    session = CK_INVALID_HANDLE;
  }
  // GenerateKeyPair makes a pair named `label` with the given private-key flags.
  void GenerateKeyPair(const std::string& label, bool sensitive, bool extractable,
                       ck_mechanism_type_t mechanism = CKM_EC_EDWARDS_KEY_PAIR_GEN,
                       std::string_view params = {reinterpret_cast<const char*>(kEd25519Oid), sizeof kEd25519Oid}) {
    unsigned char yes = 1, no = 0, sens = sensitive, ext = extractable;
    std::string l = label, id = "id-" + label, p(params);
    struct ck_attribute pub[] = {{CKA_TOKEN, &yes, 1}, {CKA_VERIFY, &yes, 1}, {CKA_EC_PARAMS, p.data(), p.size()},
                                 {CKA_LABEL, l.data(), l.size()}, {CKA_ID, id.data(), id.size()}};
    struct ck_attribute priv[] = {{CKA_TOKEN, &yes, 1},       {CKA_PRIVATE, &yes, 1}, {CKA_SENSITIVE, &sens, 1},
                                  {CKA_EXTRACTABLE, &ext, 1}, {CKA_SIGN, &yes, 1},    {CKA_DERIVE, &no, 1},
                                  {CKA_LABEL, l.data(), l.size()}, {CKA_ID, id.data(), id.size()}};
    struct ck_mechanism m {mechanism, nullptr, 0};
    ck_object_handle_t h1 = 0, h2 = 0;
    std::lock_guard<std::mutex> lock(module->mutex());
    REQUIRE(pkcs11::RvName(f()->C_GenerateKeyPair(session, &m, pub, std::size(pub), priv, std::size(priv), &h1,
                                                  &h2)) == "CKR_OK");
  }
  // Import puts a known Ed25519 key (seed) into the token as a sensitive,
  // non-extractable private key and its public twin: how an operator moves an
  // existing file CA into an HSM without changing what targets trust.
  void Import(const std::string& label, const std::string& seed, const std::string& public_key) {
    unsigned char yes = 1, no = 0;
    ck_object_class_t priv_class = CKO_PRIVATE_KEY, pub_class = CKO_PUBLIC_KEY;
    ck_key_type_t type = CKK_EC_EDWARDS;
    std::string l = label, id = "id-" + label, s = seed;
    std::string point = std::string("\x04\x20", 2) + public_key;
    struct ck_attribute priv[] = {
        {CKA_CLASS, &priv_class, sizeof priv_class}, {CKA_KEY_TYPE, &type, sizeof type}, {CKA_TOKEN, &yes, 1},
        {CKA_PRIVATE, &yes, 1}, {CKA_SENSITIVE, &yes, 1}, {CKA_EXTRACTABLE, &no, 1}, {CKA_SIGN, &yes, 1},
        {CKA_EC_PARAMS, const_cast<unsigned char*>(kEd25519Oid), sizeof kEd25519Oid},
        {CKA_VALUE, s.data(), s.size()}, {CKA_LABEL, l.data(), l.size()}, {CKA_ID, id.data(), id.size()}};
    struct ck_attribute pub[] = {
        {CKA_CLASS, &pub_class, sizeof pub_class}, {CKA_KEY_TYPE, &type, sizeof type}, {CKA_TOKEN, &yes, 1},
        {CKA_VERIFY, &yes, 1}, {CKA_EC_PARAMS, const_cast<unsigned char*>(kEd25519Oid), sizeof kEd25519Oid},
        {CKA_EC_POINT, point.data(), point.size()}, {CKA_LABEL, l.data(), l.size()}, {CKA_ID, id.data(), id.size()}};
    ck_object_handle_t h = 0;
    std::lock_guard<std::mutex> lock(module->mutex());
    REQUIRE(pkcs11::RvName(f()->C_CreateObject(session, priv, std::size(priv), &h)) == "CKR_OK");
    REQUIRE(pkcs11::RvName(f()->C_CreateObject(session, pub, std::size(pub), &h)) == "CKR_OK");
  }
  void Destroy(ck_object_handle_t h) {
    std::lock_guard<std::mutex> lock(module->mutex());
    REQUIRE(f()->C_DestroyObject(session, h) == CKR_OK);
  }

  std::shared_ptr<pkcs11::Module> module;
  ck_slot_id_t slot = 0;
  ck_session_handle_t session = CK_INVALID_HANDLE;
};

Result<Certificate> IssueOne(const CertificateAuthority& ca) {
  auto subject = Ed25519Key::Generate();
  REQUIRE(subject.ok());
  SystemClock clock;
  return ca.Issue(SampleRequest(), subject.value()->public_key(), clock);
}

Pkcs11Signer& TokenSigner(const CertificateAuthority& ca) {
  auto* s = dynamic_cast<const Pkcs11Signer*>(&ca.signer());
  REQUIRE(s != nullptr);
  return const_cast<Pkcs11Signer&>(*s);
}

TEST_CASE("warden ca init --pkcs11 makes the key inside the token: sensitive, never extractable, value unreadable") {
  auto hsm = Token();
  Result<std::string> line = CreateCaKey(hsm->Source());
  INFO((line.ok() ? "" : line.status().message()));
  REQUIRE(line.ok());
  CHECK_THAT(line.value(), Catch::Matches("^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43} warden-ssh-ca$"));

  Other other(*hsm);
  auto privs = other.Find(CKO_PRIVATE_KEY, "ca");
  REQUIRE(privs.size() == 1);
  std::lock_guard<std::mutex> lock(other.module->mutex());
  for (auto [attribute, expected, name] :
       {std::tuple{CKA_TOKEN, true, "CKA_TOKEN"}, std::tuple{CKA_PRIVATE, true, "CKA_PRIVATE"},
        std::tuple{CKA_SENSITIVE, true, "CKA_SENSITIVE"}, std::tuple{CKA_ALWAYS_SENSITIVE, true, "CKA_ALWAYS_SENSITIVE"},
        std::tuple{CKA_EXTRACTABLE, false, "CKA_EXTRACTABLE"},
        std::tuple{CKA_NEVER_EXTRACTABLE, true, "CKA_NEVER_EXTRACTABLE"}, std::tuple{CKA_LOCAL, true, "CKA_LOCAL"},
        std::tuple{CKA_SIGN, true, "CKA_SIGN"}}) {
    INFO(name);
    bool known = false;
    CHECK(pkcs11::ReadBool(*other.module, other.session, privs[0], attribute, &known) == expected);
    CHECK(known);
  }
  // The private value cannot be read out, even by a logged-in user.
  unsigned char buf[64];
  struct ck_attribute value {CKA_VALUE, buf, sizeof buf};
  CHECK(pkcs11::RvName(other.f()->C_GetAttributeValue(other.session, privs[0], &value, 1)) == "CKR_ATTRIBUTE_SENSITIVE");
  CHECK(value.value_len == static_cast<unsigned long>(-1));
  // Nor wrapped out of it.
  struct ck_mechanism wrap {CKM_AES_KEY_WRAP, nullptr, 0};
  unsigned long wrapped_len = sizeof buf;
  CHECK(other.f()->C_WrapKey(other.session, &wrap, privs[0], privs[0], buf, &wrapped_len) != CKR_OK);
}

TEST_CASE("warden ca init --pkcs11 never replaces a key, and needs a label") {
  auto hsm = Token();
  Result<std::string> first = CreateCaKey(hsm->Source());
  REQUIRE(first.ok());
  Result<std::string> again = CreateCaKey(hsm->Source());
  REQUIRE_FALSE(again.ok());
  CHECK(again.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(again.status().message(), Catch::Contains("never replaces a CA key"));
  auto ca = CertificateAuthority::Open(hsm->Source());
  REQUIRE(ca.ok());
  CHECK(ca.value()->PublicKeyLine() == first.value());  // the first key is still the one

  CaKeySource unnamed = hsm->Source();
  unnamed.ca_key = "pkcs11:token=" + hsm->label();
  Result<std::string> no_label = CreateCaKey(unnamed);
  REQUIRE_FALSE(no_label.ok());
  CHECK(no_label.status().code() == Code::kInvalidArgument);
  CHECK_THAT(no_label.status().message(), Catch::Contains("object=<label>"));
}

TEST_CASE("a token-signed certificate reads in ssh-keygen like ssh-keygen's own, and the token signs as the file does") {
  auto hsm = Token();
  TempDir dir;
  // One Ed25519 key, twice: in a file for ssh-keygen and FileSigner, and
  // imported into the token.
  const std::string seed = RandomBytes(32);
  EVP_PKEY* pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr,
                                                reinterpret_cast<const unsigned char*>(seed.data()), seed.size());
  REQUIRE(pkey != nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  REQUIRE(PEM_write_bio_PrivateKey(bio, pkey, nullptr, nullptr, 0, nullptr, nullptr) == 1);
  char* pem_data = nullptr;
  long pem_len = BIO_get_mem_data(bio, &pem_data);
  auto file_key = Ed25519Key::FromPrivateKeyText(std::string_view(pem_data, static_cast<size_t>(pem_len)));
  BIO_free(bio);
  EVP_PKEY_free(pkey);
  REQUIRE(file_key.ok());
  SecretString openssh;
  REQUIRE(file_key.value()->WriteOpenSshPrivateKey("ca", &openssh).ok());
  WriteFile(dir.path() / "ca", openssh.bytes, fs::perms(0600));
  Other(*hsm).Import("imported", seed, file_key.value()->public_key());

  auto ca = CertificateAuthority::Open(hsm->Source("imported"));
  INFO((ca.ok() ? "" : ca.status().message()));
  REQUIRE(ca.ok());
  FileSigner file_signer(std::move(file_key.value()), "test");
  CHECK(ca.value()->signer().public_key() == file_signer.public_key());
  // Ed25519 is deterministic: the same key signs the same bytes identically.
  for (const std::string& data : {std::string("x"), std::string(5000, 'y'), RandomBytes(300)})
    CHECK(ca.value()->signer().Sign(data).value() == file_signer.Sign(data).value());

  auto subject = Ed25519Key::Generate();
  REQUIRE(subject.ok());
  WriteFile(dir.path() / "k.pub", subject.value()->PublicKeyLine("k") + "\n");
  ManualClock clock(kT0);
  Result<Certificate> ours = ca.value()->Issue(SampleRequest(), subject.value()->public_key(), clock);
  REQUIRE(ours.ok());
  CommandResult r = Run({"ssh-keygen", "-q", "-s", (dir.path() / "ca").string(), "-I",
                         "warden:call-1:session-1:ssh_run", "-n", "warden-a,warden-b", "-z",
                         std::to_string(ours->serial), "-V", "20251231235930:20260101000500", "-O", "clear", "-O",
                         "force-command=timeout -s KILL 60 sh -c 'uname -a'", "-O",
                         "source-address=127.0.0.1/32,10.0.0.0/8", (dir.path() / "k.pub").string()});
  INFO(r.err);
  REQUIRE(r.status == 0);
  std::string theirs = ReadFile(dir.path() / "k-cert.pub");
  theirs = theirs.substr(0, theirs.find('\n'));
  const std::string listed = KeygenList(dir, ours->OpenSshLine(), "ours-cert.pub");
  CHECK(listed == KeygenList(dir, theirs, "theirs-cert.pub"));
  CHECK_THAT(listed, Catch::Contains("Signing CA: ED25519 " + ca.value()->Fingerprint()));
}

TEST_CASE("keys Warden refuses as its CA: extractable, not sensitive, not Ed25519, without a public key object") {
  auto hsm = Token();
  {
    Other other(*hsm);
    other.GenerateKeyPair("extractable", true, true);
    other.GenerateKeyPair("readable", false, false);
    other.GenerateKeyPair("p256", true, false, CKM_EC_KEY_PAIR_GEN,
                          std::string_view(reinterpret_cast<const char*>(kP256Oid), sizeof kP256Oid));
    other.GenerateKeyPair("lonely", true, false);
    auto pubs = other.Find(CKO_PUBLIC_KEY, "lonely");
    REQUIRE(pubs.size() == 1);
    other.Destroy(pubs[0]);
  }
  struct Case {
    const char* object;
    Code code;
    const char* message;
  };
  for (const Case& c : {Case{"extractable", Code::kFailedPrecondition, "is extractable (CKA_EXTRACTABLE is true)"},
                        Case{"readable", Code::kFailedPrecondition, "is not sensitive (CKA_SENSITIVE is false)"},
                        Case{"p256", Code::kInvalidArgument, "is not an Ed25519 key"},
                        Case{"lonely", Code::kNotFound, "no public key object goes with the private key"}}) {
    INFO(c.object);
    auto ca = CertificateAuthority::Open(hsm->Source(c.object));
    REQUIRE_FALSE(ca.ok());
    CHECK(ca.status().code() == c.code);
    CHECK_THAT(ca.status().message(), Catch::Contains(c.message));
    CHECK_THAT(ca.status().message(), Catch::Contains("object=" + std::string(c.object)));
  }
}

TEST_CASE("a wrong PIN, a missing token or key, or a module that is not PKCS#11 is a clear error at open") {
  auto hsm = Token();
  REQUIRE(CreateCaKey(hsm->Source()).ok());
  REQUIRE(hsm->Tool({"softhsm2-util", "--init-token", "--free", "--label", "second", "--pin", "0000", "--so-pin",
                     "000000"})
              .status == 0);
  TempDir dir;
  const std::string wrong_pin = dir.Write("wrong-pin", "9999-wrong\n", 0600);
  const std::string open_pin = dir.Write("open-pin", hsm->pin() + "\n", 0644);
  struct Case {
    const char* name;
    std::function<void(CaKeySource&)> change;
    Code code;
    std::vector<std::string> messages;
  };
  const std::string module = SoftHsm::ModulePath();
  const std::vector<Case> cases = {
      {"wrong PIN", [&](CaKeySource& s) { s.pkcs11_pin_file = wrong_pin; }, Code::kPermissionDenied,
       {"token \"warden-ca\" refused the PIN from " + wrong_pin, "CKR_PIN_INCORRECT"}},
      {"PIN file readable by others", [&](CaKeySource& s) { s.pkcs11_pin_file = open_pin; },
       Code::kPermissionDenied, {"PKCS#11 PIN file " + open_pin, "mode 0644", "chmod 600"}},
      {"PIN file missing", [&](CaKeySource& s) { s.pkcs11_pin_file = (dir.path() / "none").string(); },
       Code::kNotFound, {"PKCS#11 PIN file", "does not exist"}},
      {"no PIN at all", [&](CaKeySource& s) { s.pkcs11_pin_file.clear(); }, Code::kFailedPrecondition,
       {"needs a PIN", "ssh.pkcs11_pin_file"}},
      {"missing token", [&](CaKeySource& s) { s.ca_key = "pkcs11:token=absent;object=ca"; }, Code::kNotFound,
       {"no token matches pkcs11:token=absent;object=ca", "\"warden-ca\"", "\"second\""}},
      {"two tokens match", [&](CaKeySource& s) { s.ca_key = "pkcs11:object=ca"; }, Code::kInvalidArgument,
       {"2 tokens match", "token=<label>"}},
      {"missing key", [&](CaKeySource& s) { s.ca_key = "pkcs11:token=warden-ca;object=absent"; }, Code::kNotFound,
       {"no private key matches pkcs11:token=warden-ca;object=absent", "warden ca init --pkcs11"}},
      {"libc as the module", [&](CaKeySource& s) { s.pkcs11_module = "/lib/x86_64-linux-gnu/libc.so.6"; },
       Code::kInvalidArgument, {"/lib/x86_64-linux-gnu/libc.so.6 is not a PKCS#11 module"}},
      {"a text file as the module", [&](CaKeySource& s) { s.pkcs11_module = hsm->conf(); }, Code::kInvalidArgument,
       {"cannot load PKCS#11 module " + hsm->conf()}},
      {"no module file", [&](CaKeySource& s) { s.pkcs11_module = "/nonexistent/libp11.so"; }, Code::kNotFound,
       {"PKCS#11 module /nonexistent/libp11.so does not exist"}},
      {"no module at all", [&](CaKeySource& s) { s.pkcs11_module.clear(); }, Code::kInvalidArgument,
       {"no PKCS#11 module", "ssh.pkcs11_module", "module-path="}},
      {"module given twice", [&](CaKeySource& s) { s.ca_key += "?module-path=/usr/lib/other.so"; },
       Code::kInvalidArgument, {"given twice", "/usr/lib/other.so", module}},
      {"a PIN in the URI", [&](CaKeySource& s) { s.ca_key += "?pin-value=" + hsm->pin(); }, Code::kInvalidArgument,
       {"pin-value", "never belongs in a config"}},
      {"a typo in the URI", [&](CaKeySource& s) { s.ca_key = "pkcs11:token=warden-ca;objet=ca"; },
       Code::kInvalidArgument, {"unknown path attribute \"objet\""}},
      {"a pin-source that runs a program", [&](CaKeySource& s) { s.ca_key += "?pin-source=%7C/bin/echo%201234"; },
       Code::kInvalidArgument, {"pin-source"}},
      {"pkcs11 keys with a key file", [&](CaKeySource& s) { s.ca_key = hsm->pin_file(); }, Code::kInvalidArgument,
       {"apply only when ssh.ca_key is a pkcs11: URI"}},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    CaKeySource source = hsm->Source();
    c.change(source);
    auto ca = CertificateAuthority::Open(source);
    REQUIRE_FALSE(ca.ok());
    CHECK(ca.status().code() == c.code);
    for (const std::string& m : c.messages) CHECK_THAT(ca.status().message(), Catch::Contains(m));
    CHECK_THAT(ca.status().message(), !Catch::Contains(hsm->pin()));
    CHECK_THAT(ca.status().message(), !Catch::Contains("9999-wrong"));
  }
  // And the right settings work, after all of that.
  auto ca = CertificateAuthority::Open(hsm->Source());
  REQUIRE(ca.ok());
  CHECK_THAT(ca.value()->Describe(), Catch::Contains("pkcs11:token=warden-ca;object=ca"));
}

TEST_CASE("a session closed under Warden is reopened once and the certificate is signed") {
  auto hsm = Token();
  auto ca = hsm->CreateCa();
  REQUIRE(ca.ok());
  Pkcs11Signer& signer = TokenSigner(*ca.value());
  REQUIRE(IssueOne(*ca.value()).ok());
  CHECK(signer.reopens() == 0);

  Other other(*hsm);
  other.CloseAll();  // Warden's session is gone, and with it the login
  Result<Certificate> after = IssueOne(*ca.value());
  INFO((after.ok() ? "" : after.status().message()));
  REQUIRE(after.ok());
  CHECK(SignatureHolds(*ca.value(), after.value()));
  CHECK(signer.reopens() == 1);
  REQUIRE(IssueOne(*ca.value()).ok());
  CHECK(signer.reopens() == 1);  // the reopened session is kept
}

TEST_CASE("a PIN refused at reopen fails that call once, clearly; a fixed PIN file recovers the next call") {
  auto hsm = Token();
  auto ca = hsm->CreateCa();
  REQUIRE(ca.ok());
  Pkcs11Signer& signer = TokenSigner(*ca.value());
  Other other(*hsm);
  WriteFile(hsm->pin_file(), "0000-rotated-wrongly\n", fs::perms(0600));
  other.CloseAll();
  Result<Certificate> refused = IssueOne(*ca.value());
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == Code::kPermissionDenied);
  CHECK_THAT(refused.status().message(), Catch::Contains("the session to the token broke (CKR_SESSION_HANDLE_INVALID)"));
  CHECK_THAT(refused.status().message(), Catch::Contains("refused the PIN from " + hsm->pin_file()));
  CHECK_THAT(refused.status().message(), !Catch::Contains("0000-rotated-wrongly"));
  CHECK(signer.reopens() == 1);  // one reopen per call, no loop
  Result<Certificate> still = IssueOne(*ca.value());
  REQUIRE_FALSE(still.ok());
  CHECK_THAT(still.status().message(), Catch::Contains("cannot reopen the session to the token"));
  CHECK(signer.reopens() == 2);

  WriteFile(hsm->pin_file(), hsm->pin() + "\n", fs::perms(0600));
  Result<Certificate> recovered = IssueOne(*ca.value());
  INFO((recovered.ok() ? "" : recovered.status().message()));
  REQUIRE(recovered.ok());
  CHECK(SignatureHolds(*ca.value(), recovered.value()));
  CHECK(signer.reopens() == 3);
}

TEST_CASE("a key deleted from the token by another process fails the call, naming the key") {
  auto hsm = Token();
  auto ca = hsm->CreateCa();
  REQUIRE(ca.ok());
  REQUIRE(IssueOne(*ca.value()).ok());
  if (::access("/usr/bin/pkcs11-tool", X_OK) != 0) FAIL("pkcs11-tool (opensc) is not installed: run scripts/setup.sh --tests");
  CommandResult del = hsm->Tool({"pkcs11-tool", "--module", SoftHsm::ModulePath(), "--token-label", hsm->label(),
                                 "--login", "--pin", hsm->pin(), "--delete-object", "--type", "privkey", "--label",
                                 "ca"});
  INFO(del.out << del.err);
  REQUIRE(del.status == 0);
  Result<Certificate> r = IssueOne(*ca.value());
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kNotFound);
  CHECK_THAT(r.status().message(), Catch::Contains("no private key matches pkcs11:token=warden-ca;object=ca"));
  CHECK(TokenSigner(*ca.value()).reopens() == 1);
  // At open (what check-config and serve do), the same.
  auto reopened = CertificateAuthority::Open(hsm->Source());
  REQUIRE_FALSE(reopened.ok());
  CHECK_THAT(reopened.status().message(), Catch::Contains("no private key matches"));
}

TEST_CASE("a token deleted by another process fails the call, naming the token") {
  auto hsm = Token();
  auto ca = hsm->CreateCa();
  REQUIRE(ca.ok());
  REQUIRE(IssueOne(*ca.value()).ok());
  CommandResult del = hsm->Tool({"softhsm2-util", "--delete-token", "--token", hsm->label()});
  INFO(del.out << del.err);
  REQUIRE(del.status == 0);
  Result<Certificate> r = IssueOne(*ca.value());
  REQUIRE_FALSE(r.ok());
  INFO(r.status().message());
  CHECK(r.status().code() == Code::kNotFound);
  CHECK_THAT(r.status().message(), Catch::Contains("no token matches pkcs11:token=warden-ca;object=ca"));
}

TEST_CASE("another key under the same URI is refused: the CA key does not change under a running Warden") {
  auto hsm = Token();
  auto ca = hsm->CreateCa();
  REQUIRE(ca.ok());
  const std::string fingerprint = ca.value()->Fingerprint();
  {
    Other other(*hsm);
    for (ck_object_class_t klass : {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY})
      for (ck_object_handle_t h : other.Find(klass, "ca")) other.Destroy(h);
    other.GenerateKeyPair("ca", true, false);
    other.CloseAll();
  }
  Result<Certificate> r = IssueOne(*ca.value());
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(r.status().message(), Catch::Contains("is no longer the CA key Warden started with (" + fingerprint));
}

TEST_CASE("a module finalized by another component under Warden is initialized again") {
  auto hsm = Token();
  auto ca = hsm->CreateCa();
  REQUIRE(ca.ok());
  {
    auto module = pkcs11::Module::Load(SoftHsm::ModulePath());
    REQUIRE(module.ok());
    std::lock_guard<std::mutex> lock(module.value()->mutex());
    REQUIRE(module.value()->fn()->C_Finalize(nullptr) == CKR_OK);
  }
  Result<Certificate> r = IssueOne(*ca.value());
  INFO((r.ok() ? "" : r.status().message()));
  REQUIRE(r.ok());
  CHECK(SignatureHolds(*ca.value(), r.value()));
  CHECK(TokenSigner(*ca.value()).reopens() == 1);
}

TEST_CASE("signing from many threads at once through one token session gives valid certificates") {
  auto hsm = Token();
  auto ca = hsm->CreateCa();
  REQUIRE(ca.ok());
  constexpr int kThreads = 8, kEach = 25;
  std::atomic<int> good{0}, bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        auto subject = Ed25519Key::Generate();
        SystemClock clock;
        Result<Certificate> c = ca.value()->Issue(SampleRequest(), subject.value()->public_key(), clock);
        (c.ok() && SignatureHolds(*ca.value(), c.value()) ? good : bad)++;
      }
    });
  for (auto& t : threads) t.join();
  CHECK(good == kThreads * kEach);
  CHECK(bad == 0);
  CHECK(TokenSigner(*ca.value()).reopens() == 0);
}

}  // namespace
}  // namespace warden::sshca
