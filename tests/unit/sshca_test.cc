// Tests for sshca/: certificates checked by OpenSSH's own ssh-keygen (it
// parses them, verifies the CA signature and prints every field), CA key
// files in every accepted form and every refused one.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <functional>
#include <set>

#include "sshca/ca.h"
#include "tests/unit/ssh_fixture.h"

namespace warden::sshca {
namespace {

using testing::CommandResult;
using testing::ReadFile;
using testing::Run;
using testing::TempDir;
using testing::WriteFile;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

// 2026-01-01T00:00:00Z
const std::chrono::system_clock::time_point kT0 = std::chrono::system_clock::from_time_t(1767225600);

std::unique_ptr<CertificateAuthority> NewCa() {
  auto key = Ed25519Key::Generate();
  REQUIRE(key.ok());
  return std::make_unique<CertificateAuthority>(std::move(key.value()));
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

// KeygenList is `ssh-keygen -L` of a certificate line, minus the first line
// (the file name), in UTC.
std::string KeygenList(const TempDir& dir, const std::string& cert_line, const std::string& name = "c-cert.pub") {
  WriteFile(dir.path() / name, cert_line + "\n");
  CommandResult r = Run({"ssh-keygen", "-L", "-f", (dir.path() / name).string()});
  INFO(r.err);
  REQUIRE(r.status == 0);
  return r.out.substr(r.out.find('\n') + 1);
}

std::string KeygenPublicLine(const std::string& private_key_file) {
  CommandResult r = Run({"ssh-keygen", "-y", "-f", private_key_file});
  INFO(r.err);
  REQUIRE(r.status == 0);
  std::string line = r.out.substr(0, r.out.find('\n'));
  // ssh-keygen appends the comment; compare type and key only.
  return line.substr(0, line.find(' ', line.find(' ') + 1));
}

std::string TypeAndKey(const std::string& line) { return line.substr(0, line.find(' ', line.find(' ') + 1)); }

TEST_CASE("a certificate parses with ssh-keygen -L and shows exactly the requested fields") {
  TempDir dir;
  auto ca = NewCa();
  auto subject = Ed25519Key::Generate();
  REQUIRE(subject.ok());
  ManualClock clock(kT0);
  Result<Certificate> cert = ca->Issue(SampleRequest(), subject.value()->public_key(), clock);
  REQUIRE(cert.ok());
  CHECK(cert->valid_after == 1767225600 - 30);
  CHECK(cert->valid_before == 1767225600 + 300);
  CHECK(cert->serial != 0);

  const std::string expected =
      "        Type: ssh-ed25519-cert-v01@openssh.com user certificate\n"
      "        Public key: ED25519-CERT " + subject.value()->Fingerprint() + "\n"
      "        Signing CA: ED25519 " + ca->Fingerprint() + " (using ssh-ed25519)\n"
      "        Key ID: \"warden:call-1:session-1:ssh_run\"\n"
      "        Serial: " + std::to_string(cert->serial) + "\n"
      "        Valid: from 2025-12-31T23:59:30 to 2026-01-01T00:05:00\n"
      "        Principals: \n"
      "                warden-a\n"
      "                warden-b\n"
      "        Critical Options: \n"
      "                force-command timeout -s KILL 60 sh -c 'uname -a'\n"
      "                source-address 127.0.0.1/32,10.0.0.0/8\n"
      "        Extensions: (none)\n";
  CHECK(KeygenList(dir, cert->OpenSshLine()) == expected);
}

TEST_CASE("a certificate matches the one ssh-keygen -s makes from the same request") {
  TempDir dir;
  Result<std::string> ca_line = CreateCaKeyFile((dir.path() / "ca").string());
  REQUIRE(ca_line.ok());
  auto ca = CertificateAuthority::LoadFile((dir.path() / "ca").string());
  REQUIRE(ca.ok());
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
  CHECK(KeygenList(dir, ours->OpenSshLine(), "ours-cert.pub") == KeygenList(dir, theirs, "theirs-cert.pub"));
}

TEST_CASE("ssh-keygen refuses a certificate whose signature was tampered with") {
  TempDir dir;
  auto ca = NewCa();
  auto subject = Ed25519Key::Generate();
  REQUIRE(subject.ok());
  SystemClock clock;
  Result<Certificate> cert = ca->Issue(SampleRequest(), subject.value()->public_key(), clock);
  REQUIRE(cert.ok());
  Certificate bad = cert.value();
  bad.blob[bad.blob.size() - 5] ^= 0x01;  // inside the Ed25519 signature
  WriteFile(dir.path() / "bad-cert.pub", bad.OpenSshLine() + "\n");
  CHECK(Run({"ssh-keygen", "-L", "-f", (dir.path() / "bad-cert.pub").string()}).status != 0);
}

TEST_CASE("the validity window never exceeds 15 minutes, skew included, whatever the lifetime asked") {
  TempDir dir;
  auto ca = NewCa();
  auto subject = Ed25519Key::Generate();
  REQUIRE(subject.ok());
  ManualClock clock(kT0);
  struct Case {
    std::chrono::seconds lifetime, skew;
    int64_t after, before;
  };
  const int64_t t0 = 1767225600;
  for (const Case& c : {Case{3600s, 30s, t0 - 30, t0 - 30 + 900}, Case{900s, 0s, t0, t0 + 900},
                        Case{870s, 30s, t0 - 30, t0 + 870}, Case{86400s, 300s, t0 - 300, t0 + 600},
                        Case{60s, 30s, t0 - 30, t0 + 60}}) {
    CertificateRequest r = SampleRequest();
    r.lifetime = c.lifetime;
    r.clock_skew = c.skew;
    Result<Certificate> cert = ca->Issue(r, subject.value()->public_key(), clock);
    REQUIRE(cert.ok());
    INFO("lifetime " << c.lifetime.count() << " skew " << c.skew.count());
    CHECK(cert->valid_after == c.after);
    CHECK(cert->valid_before == c.before);
    CHECK(cert->valid_before - cert->valid_after <= 900);
  }
  // And as OpenSSH reads it: a TTL of 60 minutes gives a 15-minute window.
  CertificateRequest r = SampleRequest();
  r.lifetime = 3600s;
  Result<Certificate> cert = ca->Issue(r, subject.value()->public_key(), clock);
  REQUIRE(cert.ok());
  CHECK_THAT(KeygenList(dir, cert->OpenSshLine()),
             Catch::Contains("Valid: from 2025-12-31T23:59:30 to 2026-01-01T00:14:30\n"));
}

TEST_CASE("serials and nonces are fresh for every certificate") {
  auto ca = NewCa();
  auto subject = Ed25519Key::Generate();
  REQUIRE(subject.ok());
  ManualClock clock(kT0);
  std::set<uint64_t> serials;
  std::set<std::string> blobs;
  for (int i = 0; i < 64; ++i) {
    Result<Certificate> cert = ca->Issue(SampleRequest(), subject.value()->public_key(), clock);
    REQUIRE(cert.ok());
    serials.insert(cert->serial);
    blobs.insert(cert->blob);
  }
  CHECK(serials.size() == 64);
  CHECK(blobs.size() == 64);
}

TEST_CASE("requests outside the policy are refused before anything is signed") {
  auto ca = NewCa();
  auto subject = Ed25519Key::Generate();
  REQUIRE(subject.ok());
  ManualClock clock(kT0);
  struct Case {
    const char* name;
    std::function<void(CertificateRequest&)> change;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"no principals", [](CertificateRequest& r) { r.principals.clear(); }, "principals must not be empty"},
      {"empty principal", [](CertificateRequest& r) { r.principals = {""}; }, "each principal"},
      {"principal with a comma", [](CertificateRequest& r) { r.principals = {"a,b"}; }, "each principal"},
      {"empty key id", [](CertificateRequest& r) { r.key_id.clear(); }, "key_id"},
      {"key id with a newline", [](CertificateRequest& r) { r.key_id = "warden:a\nb"; }, "key_id"},
      {"empty force-command", [](CertificateRequest& r) { r.force_command = ""; }, "force_command"},
      {"force-command with NUL", [](CertificateRequest& r) { r.force_command = std::string("ls\0x", 4); },
       "force_command"},
      {"bad source address", [](CertificateRequest& r) { r.source_addresses = {"10.0.0.0/33"}; }, "10.0.0.0/33"},
      {"source address that is a name", [](CertificateRequest& r) { r.source_addresses = {"example.com"}; },
       "example.com"},
      {"zero lifetime", [](CertificateRequest& r) { r.lifetime = 0s; }, "lifetime"},
      {"skew too large", [](CertificateRequest& r) { r.clock_skew = 301s; }, "clock_skew"},
      {"negative skew", [](CertificateRequest& r) { r.clock_skew = -1s; }, "clock_skew"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    CertificateRequest r = SampleRequest();
    c.change(r);
    Result<Certificate> cert = ca->Issue(r, subject.value()->public_key(), clock);
    REQUIRE_FALSE(cert.ok());
    CHECK(cert.status().code() == Code::kInvalidArgument);
    CHECK_THAT(cert.status().message(), Catch::Contains(c.message));
  }
  Result<Certificate> short_key = ca->Issue(SampleRequest(), "too short", clock);
  CHECK(short_key.status().code() == Code::kInvalidArgument);
}

TEST_CASE("warden ca init's key file: 0600 in a new 0700 directory, never overwritten, read by ssh-keygen") {
  TempDir dir;
  const std::string path = (dir.path() / "state" / "ca" / "ssh_ca").string();
  Result<std::string> line = CreateCaKeyFile(path);
  REQUIRE(line.ok());
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  REQUIRE(::stat((dir.path() / "state" / "ca").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  CHECK(TypeAndKey(line.value()) == KeygenPublicLine(path));

  auto ca = CertificateAuthority::LoadFile(path);
  REQUIRE(ca.ok());
  CHECK(ca.value()->PublicKeyLine() == line.value());

  const std::string before = ReadFile(path);
  Result<std::string> again = CreateCaKeyFile(path);
  REQUIRE_FALSE(again.ok());
  CHECK(again.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(again.status().message(), Catch::Contains("already exists"));
  CHECK(ReadFile(path) == before);
}

TEST_CASE("CA keys load from OpenSSH and PKCS#8 files, also through a symlink") {
  TempDir dir;
  const std::string openssh = (dir.path() / "openssh_ca").string();
  REQUIRE(Run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", openssh}).status == 0);
  const std::string pkcs8 = (dir.path() / "pkcs8_ca.pem").string();
  REQUIRE(Run({"openssl", "genpkey", "-algorithm", "ed25519", "-out", pkcs8}).status == 0);
  ::chmod(pkcs8.c_str(), 0600);
  auto from_openssh = CertificateAuthority::LoadFile(openssh);
  REQUIRE(from_openssh.ok());
  CHECK(TypeAndKey(from_openssh.value()->PublicKeyLine()) == KeygenPublicLine(openssh));
  // OpenSSH 9.2 cannot read a PKCS#8 Ed25519 key; OpenSSL gives the expected
  // public key instead (the last 32 bytes of its DER SubjectPublicKeyInfo).
  auto from_pkcs8 = CertificateAuthority::LoadFile(pkcs8);
  REQUIRE(from_pkcs8.ok());
  CommandResult der = Run({"openssl", "pkey", "-in", pkcs8, "-pubout", "-outform", "DER"});
  REQUIRE(der.status == 0);
  const std::string line = from_pkcs8.value()->PublicKeyLine();
  std::string blob;
  REQUIRE(Base64Decode(line.substr(12, line.find(' ', 12) - 12), &blob));
  REQUIRE(der.out.size() >= 32);
  CHECK(blob.substr(blob.size() - 32) == der.out.substr(der.out.size() - 32));
  // A Kubernetes Secret mount: the file is reached through ..data symlinks.
  fs::create_directories(dir.path() / "..2026_01_01");
  fs::copy_file(openssh, dir.path() / "..2026_01_01" / "ssh_ca");
  fs::create_directory_symlink("..2026_01_01", dir.path() / "..data");
  fs::create_symlink("..data/ssh_ca", dir.path() / "ssh_ca");
  fs::permissions(dir.path() / "..2026_01_01" / "ssh_ca", fs::perms(0400));
  CHECK(CertificateAuthority::LoadFile((dir.path() / "ssh_ca").string()).ok());
}

TEST_CASE("unsafe or unusable CA key files are refused with a clear error that never quotes the key") {
  TempDir dir;
  const fs::path good = dir.path() / "good";
  REQUIRE(Run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", good.string()}).status == 0);
  const std::string body = ReadFile(good);
  const std::string body_line = body.substr(body.find('\n') + 1, 40);

  struct Case {
    const char* name;
    std::function<fs::path()> make;
    Code code;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"missing", [&] { return dir.path() / "missing"; }, Code::kNotFound, "warden ca init"},
      {"group readable",
       [&] {
         fs::copy_file(good, dir.path() / "g", fs::copy_options::overwrite_existing);
         fs::permissions(dir.path() / "g", fs::perms(0640));
         return dir.path() / "g";
       },
       Code::kPermissionDenied, "mode 0640"},
      {"world readable",
       [&] {
         fs::copy_file(good, dir.path() / "w", fs::copy_options::overwrite_existing);
         fs::permissions(dir.path() / "w", fs::perms(0604));
         return dir.path() / "w";
       },
       Code::kPermissionDenied, "chmod 600"},
      {"a directory",
       [&] {
         fs::create_directories(dir.path() / "d");
         fs::permissions(dir.path() / "d", fs::perms(0700));
         return dir.path() / "d";
       },
       Code::kInvalidArgument, "not a regular file"},
      {"an RSA key",
       [&] {
         REQUIRE(Run({"ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", (dir.path() / "rsa").string()})
                     .status == 0);
         return dir.path() / "rsa";
       },
       Code::kInvalidArgument, "not an Ed25519 key"},
      {"a passphrase-protected key",
       [&] {
         REQUIRE(Run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "secret-pass", "-f", (dir.path() / "enc").string()})
                     .status == 0);
         return dir.path() / "enc";
       },
       Code::kInvalidArgument, "passphrase-protected"},
      {"a truncated key",
       [&] {
         WriteFile(dir.path() / "t", body.substr(0, body.size() / 2) + "\n-----END OPENSSH PRIVATE KEY-----\n",
                   fs::perms(0600));
         return dir.path() / "t";
       },
       Code::kInvalidArgument, "malformed"},
      {"a public key",
       [&] {
         fs::copy_file(good.string() + ".pub", dir.path() / "p");
         fs::permissions(dir.path() / "p", fs::perms(0600));
         return dir.path() / "p";
       },
       Code::kInvalidArgument, "not a private key"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    fs::path path = c.make();
    auto ca = CertificateAuthority::LoadFile(path.string());
    REQUIRE_FALSE(ca.ok());
    CHECK(ca.status().code() == c.code);
    CHECK_THAT(ca.status().message(), Catch::Contains(c.message));
    CHECK_THAT(ca.status().message(), Catch::Contains(path.string()));
    CHECK_THAT(ca.status().message(), !Catch::Contains(body_line));
  }
}

TEST_CASE("an ephemeral key exports to OpenSSH's format, which ssh-keygen and sshca read back") {
  TempDir dir;
  auto key = Ed25519Key::Generate();
  REQUIRE(key.ok());
  SecretString pem;
  REQUIRE(key.value()->WriteOpenSshPrivateKey("test", &pem).ok());
  WriteFile(dir.path() / "k", pem.bytes, fs::perms(0600));  // the test writes it; Warden never does
  CHECK(KeygenPublicLine((dir.path() / "k").string()) == TypeAndKey(key.value()->PublicKeyLine("")));
  auto back = Ed25519Key::FromPrivateKeyText(pem.bytes);
  REQUIRE(back.ok());
  CHECK(back.value()->public_key() == key.value()->public_key());
  // Same key, same signature (Ed25519 is deterministic).
  CHECK(back.value()->Sign("data").value() == key.value()->Sign("data").value());
  pem.Wipe();
  CHECK(pem.bytes.empty());
}

}  // namespace
}  // namespace warden::sshca
